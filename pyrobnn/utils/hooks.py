"""Hooks: a function that a higher layer supplies to a lower one.

Layers import only downwards, yet a few conveniences of a lower layer are carried out by a
higher one (``BNN.from_spec`` is spec building, ``Posterior.to_datatree`` is the ArviZ export).
The lower layer declares a :class:`Hook` and calls it; the package's ``__init__``, which
composes the layers, installs the function.  Calling a hook that nothing installed raises an
error that says what is missing and how to get it.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Hook", "HookNotInstalledError"]


class HookNotInstalledError(RuntimeError):
    """A hook was called before any function was installed in it."""


class Hook:
    """A named slot for a function that a higher layer installs (:meth:`install`) and a lower
    layer calls (``hook(*args, **kwargs)``).

    ``what`` names the caller (e.g. ``"BNN.from_spec"``), ``needs`` what it needs (e.g. ``"a spec
    loader"``) and ``hint`` how to get it, for the error raised when nothing is installed.
    """

    def __init__(self, what: str, needs: str, hint: str):
        self.what, self.needs, self.hint = what, needs, hint
        self._fn: Callable | None = None

    @property
    def installed(self) -> bool:
        """Whether a function is installed."""
        return self._fn is not None

    def install(self, fn: Callable | None) -> Callable | None:
        """Install ``fn`` (``None`` removes the installed one); returns the function installed before."""
        if fn is not None and not callable(fn):
            raise TypeError(f"the function installed for {self.what} must be callable or None, got "
                            f"{type(fn).__name__}.")
        previous, self._fn = self._fn, fn
        return previous

    def __call__(self, *args, **kwargs):
        if self._fn is None:
            raise HookNotInstalledError(f"{self.what} needs {self.needs}, and none is installed. {self.hint}")
        return self._fn(*args, **kwargs)

    def __repr__(self) -> str:
        state = getattr(self._fn, "__qualname__", repr(self._fn)) if self._fn is not None else "nothing installed"
        return f"Hook({self.what}: {state})"
