"""``python -m pyrobnn`` — the command line, also as ``torchrun --nproc-per-node N -m pyrobnn fit ...``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
