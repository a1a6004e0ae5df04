"""The package's layers import only downwards.

Every module of ``pyrobnn`` is read with :mod:`ast` (nothing is imported or run): each
``import`` / ``from ... import`` statement — at module level or inside a function, absolute or
relative — and each ``importlib.import_module("pyrobnn...")`` call is mapped to the layer it
reaches, and a layer may reach only the layers below it (``pyrobnn/__init__.py`` describes
the picture)::

    utils ← data, model ← infer ← spec, diagnostics ← apps, sklearn ← cli, pyrobnn/__init__.py

``data`` and ``model`` do not import each other; neither do ``spec`` and ``diagnostics``.
``diagnostics``, ``apps`` and ``sklearn`` use only the public names of ``infer``: those listed in a
module's ``__all__`` or exported by ``pyrobnn/infer/__init__.py``, never one with a leading
underscore.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "pyrobnn"
ROOT = "pyrobnn"
TOP = "top"  # pyrobnn/__init__.py: composes the layers

#: layer -> the layers it may import (besides itself)
MAY_IMPORT = {
    "utils": set(),
    "data": {"utils"},
    "model": {"utils"},
    "infer": {"utils", "data", "model"},
    "spec": {"utils", "data", "model", "infer"},
    "diagnostics": {"utils", "data", "model", "infer"},
    "apps": {"utils", "data", "model", "infer", "spec", "diagnostics"},
    "sklearn": {"utils", "data", "model", "infer", "spec", "diagnostics"},
    "cli": {"utils", "data", "model", "infer", "spec", "diagnostics", "apps", "sklearn"},
    TOP: {"utils", "data", "model", "infer", "spec", "diagnostics", "apps", "sklearn"},
    "__main__": {"cli"},  # python -m pyrobnn (and torchrun -m pyrobnn): the command line
}

#: (importing layer, imported layer): only the imported layer's public names may be used
PUBLIC_ONLY = {("diagnostics", "infer"), ("apps", "infer"), ("sklearn", "infer")}


# ----------------------------------------------------------------------------- the checker
def module_name(relpath: str) -> str:
    """Dotted module name of a file given relative to the package directory."""
    parts = list(Path(relpath).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([ROOT, *parts])


def layer_of(module: str) -> str:
    """Layer of a dotted ``pyrobnn`` module name (``pyrobnn`` itself is the top)."""
    parts = module.split(".")
    if parts == [ROOT]:
        return TOP
    layer = parts[1]
    if layer not in MAY_IMPORT:
        raise AssertionError(f"module {module} is in no layer: give {layer!r} a place in MAY_IMPORT of "
                             f"tests/test_layers.py (and in the picture in pyrobnn/__init__.py)")
    return layer


def _is_package_member(dotted: str, package_dir: Path) -> bool:
    rel = Path(*dotted.split(".")[1:])
    return (package_dir / rel).is_dir() or (package_dir / rel).with_suffix(".py").is_file()


def _resolve_from(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _ours(name: str) -> bool:
    return name == ROOT or name.startswith(ROOT + ".")


def imports_of(tree: ast.AST, module: str, is_package: bool, package_dir: Path):
    """``(lineno, imported module, imported names or None)`` of every import of a pyrobnn module
    in ``tree``; ``from pyrobnn import x`` with ``x`` a subpackage or module counts as importing
    ``pyrobnn.x``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _ours(alias.name):
                    yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom):
            target = _resolve_from(node, module, is_package)
            if not _ours(target):
                continue
            if target == ROOT:  # from pyrobnn import data, __version__
                for alias in node.names:
                    member = f"{ROOT}.{alias.name}"
                    yield node.lineno, member if _is_package_member(member, package_dir) else ROOT, [alias.name]
            else:
                yield node.lineno, target, [a.name for a in node.names]
        elif isinstance(node, ast.Call):  # importlib.import_module("pyrobnn.x") / __import__("pyrobnn.x")
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
            if name in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str) and _ours(node.args[0].value):
                yield node.lineno, node.args[0].value, None


def public_names(module: str, package_dir: Path) -> set[str] | None:
    """The ``__all__`` of a pyrobnn module read from its source (``set()`` without one); ``None``
    when ``module`` is not a file of the package."""
    rel = Path(*module.split(".")[1:])
    path = package_dir / rel / "__init__.py" if (package_dir / rel).is_dir() else (package_dir / rel).with_suffix(".py")
    if not path.is_file():
        return None
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets) and node.value is not None:
                names |= set(ast.literal_eval(node.value))
    return names


def _is_public(name: str, module: str, layer_package: str, package_dir: Path) -> bool:
    if name.startswith("_"):
        return False
    if name in (public_names(module, package_dir) or set()) or name in (public_names(layer_package, package_dir) or set()):
        return True
    # a submodule reached by name (``from pyrobnn.infer import mcmc``): its own names are checked where used
    return _is_package_member(f"{module}.{name}", package_dir)


def _dotted(node: ast.AST) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


def check_source(relpath: str, source: str, package_dir: Path = PACKAGE_DIR) -> list[str]:
    """Every layer violation of one module, as ``"file:line: message"`` lines."""
    module = module_name(relpath)
    is_package = Path(relpath).name == "__init__.py"
    layer = layer_of(module)
    lines = source.splitlines()
    tree = ast.parse(source, filename=relpath)
    out = []

    def where(lineno):
        return f"pyrobnn/{relpath}:{lineno}: {lines[lineno - 1].strip()!r}"

    aliases: dict[str, str] = {}  # local name -> the pyrobnn module it is bound to
    for lineno, target, names in imports_of(tree, module, is_package, package_dir):
        other = layer_of(target)
        if other != layer and other not in MAY_IMPORT[layer]:
            out.append(f"{where(lineno)} — layer {layer!r} imports {target} of layer {other!r}, which sits above it "
                       f"(it may import: {', '.join(sorted(MAY_IMPORT[layer])) or 'nothing of pyrobnn'})")
            continue
        if (layer, other) not in PUBLIC_ONLY:
            continue
        layer_package = f"{ROOT}.{other}"
        for name in names or ():
            if not _is_public(name, target, layer_package, package_dir):
                out.append(f"{where(lineno)} — layer {layer!r} uses {target}.{name}, which is not a public name of "
                           f"layer {other!r} (not in the module's __all__ nor exported by {layer_package})")
    # names bound to modules of a public-only layer, and the attributes read through them
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if _ours(a.name):
                    aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve_from(node, module, is_package)
            for a in node.names:
                member = f"{target}.{a.name}"
                if _ours(target) and _is_package_member(member, package_dir):
                    aliases[a.asname or a.name] = member
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        parts = _dotted(node)
        if not parts or parts[0] not in aliases:
            continue
        full = aliases[parts[0]].split(".") + parts[1:]
        # longest prefix that is a module of the package; the next part is the name read from it
        for cut in range(len(full) - 1, 1, -1):
            mod = ".".join(full[:cut])
            if public_names(mod, package_dir) is not None:
                break
        else:
            continue
        other = layer_of(mod)
        if (layer, other) in PUBLIC_ONLY and not _is_public(full[cut], mod, f"{ROOT}.{other}", package_dir):
            out.append(f"{where(node.lineno)} — layer {layer!r} uses {mod}.{full[cut]}, which is not a public name "
                       f"of layer {other!r} (not in the module's __all__ nor exported by {ROOT}.{other})")
    return sorted(set(out))


def package_files() -> list[Path]:
    return sorted(p for p in PACKAGE_DIR.rglob("*.py") if "__pycache__" not in p.parts)


# ----------------------------------------------------------------------------- the package
def test_every_module_imports_only_lower_layers():
    files = package_files()
    assert len(files) > 30, f"found only {len(files)} modules under {PACKAGE_DIR}"
    problems = []
    for path in files:
        rel = path.relative_to(PACKAGE_DIR).as_posix()
        problems += check_source(rel, path.read_text(encoding="utf-8"))
    assert not problems, "imports that cross a layer upwards or use private names:\n" + "\n".join(problems)


def test_every_layer_has_a_place():
    found = {layer_of(module_name(p.relative_to(PACKAGE_DIR).as_posix())) for p in package_files()}
    assert found == set(MAY_IMPORT), f"layers without modules or modules without a layer: {found ^ set(MAY_IMPORT)}"


# ----------------------------------------------------------------------------- the checker itself
@pytest.mark.parametrize("relpath, source, expected", [
    ("model/bnn.py", "def f():\n    from ..spec import build_model\n", "layer 'model' imports pyrobnn.spec"),
    ("model/bnn.py", "import pyrobnn.infer.svi as s\n", "layer 'model' imports pyrobnn.infer.svi"),
    ("data/toy.py", "from ..model import BNN\n", "layer 'data' imports pyrobnn.model"),
    ("model/x.py", "from .. import data\n", "layer 'model' imports pyrobnn.data"),
    ("infer/posterior.py", "class P:\n    def m(self):\n        from ..diagnostics.export import to_datatree\n",
     "infer/posterior.py:3:"),
    ("utils/x.py", "from pyrobnn import __version__\n", "layer 'utils' imports pyrobnn of layer 'top'"),
    ("spec/x.py", "from ..diagnostics import report\n", "layer 'spec' imports pyrobnn.diagnostics"),
    ("diagnostics/x.py", "import importlib\nm = importlib.import_module('pyrobnn.apps')\n",
     "layer 'diagnostics' imports pyrobnn.apps"),
    ("apps/x.py", "from ..cli import main\n", "layer 'apps' imports pyrobnn.cli"),
    ("cli.py", "from . import __version__\n", "layer 'cli' imports pyrobnn of layer 'top'"),
    ("diagnostics/x.py", "from ..infer.guides import _is_identity\n", "uses pyrobnn.infer.guides._is_identity"),
    ("diagnostics/x.py", "from ..infer.svi import place\n", "uses pyrobnn.infer.svi.place"),
    ("diagnostics/x.py", "from ..infer import mcmc\nmcmc._tanh(1)\n", "x.py:2:"),
    ("diagnostics/x.py", "import pyrobnn.infer.mcmc as m\nm._layout\n", "uses pyrobnn.infer.mcmc._layout"),
    ("diagnostics/x.py", "import pyrobnn.infer.mcmc\npyrobnn.infer.mcmc._layout\n", "uses pyrobnn.infer.mcmc._layout"),
])
def test_checker_finds_upward_and_private_imports(relpath, source, expected):
    problems = check_source(relpath, source)
    assert len(problems) == 1 and expected in problems[0], problems


@pytest.mark.parametrize("relpath, source", [
    ("infer/x.py", "from ..model.sites import SitePrior\nfrom ..utils.files import atomic_write\n"),
    ("spec/x.py", "from ..infer.guides import GUIDES\n"),  # spec sits above infer and is not held to its __all__
    ("diagnostics/x.py", "from ..infer.posterior import chunk_bounds\nfrom ..infer import Posterior, mcmc\n"
                         "mcmc.fit_nuts\n"),
    ("apps/x.py", "from ..diagnostics import report\nfrom ..spec import build_model\n"),
    ("__init__.py", "from . import data, spec\nfrom .diagnostics import report\n"),
    ("model/x.py", "import torch\nfrom pyro import poutine\nfrom . import priors\n"),
])
def test_checker_accepts_downward_imports(relpath, source):
    assert check_source(relpath, source) == []


# ----------------------------------------------------------------------------- what `import pyrobnn` loads
HEAVY = ("pyrobnn.diagnostics", "pyrobnn.apps", "pyrobnn.cli", "matplotlib", "xarray", "arviz")


def _runs_at_import(node: ast.AST):
    """The nodes under ``node`` that run when the module is imported: not function bodies."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        yield child
        yield from _runs_at_import(child)


def module_level_imports(module: str) -> set[str]:
    """Modules (pyrobnn's, and the top-level names of others) that importing ``module`` imports
    directly, read from its source: statements outside function bodies, with the parent packages
    of each pyrobnn module."""
    rel = Path(*module.split(".")[1:])
    is_package = (PACKAGE_DIR / rel).is_dir()
    path = PACKAGE_DIR / rel / "__init__.py" if is_package else (PACKAGE_DIR / rel).with_suffix(".py")
    out = set()
    for node in _runs_at_import(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name if _ours(a.name) else a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            target = _resolve_from(node, module, is_package)
            if not _ours(target):
                out.add(target.split(".")[0])
                continue
            out.add(target)
            out |= {f"{target}.{a.name}" for a in node.names if _is_package_member(f"{target}.{a.name}", PACKAGE_DIR)}
    for name in list(out):
        while _ours(name) and "." in name:
            name = name.rsplit(".", 1)[0]
            out.add(name)
    return out


def test_import_pyrobnn_does_not_load_diagnostics_statically():
    """The modules that ``import pyrobnn`` loads, followed through module-level imports."""
    seen, todo = set(), [ROOT]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo += [m for m in module_level_imports(module) if _ours(m)]
        seen |= {m for m in module_level_imports(module) if not _ours(m)}
    assert {"pyrobnn.spec", "pyrobnn.infer.posterior", "pyrobnn.utils.hooks", "torch", "pyro"} <= seen
    heavy = sorted(m for m in seen if m.startswith(HEAVY))
    assert not heavy, f"`import pyrobnn` loads {heavy}; import them inside the functions that need them"


@pytest.mark.slow
def test_import_pyrobnn_installs_hooks_and_leaves_diagnostics_unloaded():
    import subprocess
    import sys

    code = ("import sys, pyrobnn\n"
            "from pyrobnn.infer.conversion import datatree_converter\n"
            "from pyrobnn.model.bnn import spec_loader\n"
            "assert spec_loader.installed and datatree_converter.installed, (spec_loader, datatree_converter)\n"
            f"loaded = sorted(m for m in sys.modules if m.startswith({HEAVY!r}))\n"
            "assert not loaded, loaded\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=PACKAGE_DIR.parent)
    assert res.returncode == 0, res.stderr[-2000:]


def test_from_spec_is_load_model():
    import pyrobnn as pb

    a = pb.BNN.from_spec("toy_regression", ["prior.scale=0.5"])
    b = pb.load_model("toy_regression", ["prior.scale=0.5"])
    assert isinstance(a, pb.BNN) and a.spec == b.spec and a.spec.prior.params["scale"] == 0.5
    assert {k: v.shape for k, v in a.state_dict().items()} == {k: v.shape for k, v in b.state_dict().items()}


def test_to_datatree_passes_its_arguments_to_the_installed_converter():
    import pyrobnn as pb
    from pyrobnn.infer.conversion import datatree_converter

    calls = []
    previous = datatree_converter.install(lambda *args, **kwargs: calls.append((args, kwargs)) or "tree")
    try:
        post = object()  # the method only hands its arguments on
        assert pb.Posterior.to_datatree(post, "x", "y", num_samples=3) == "tree"
    finally:
        datatree_converter.install(previous)
    assert calls == [((post, "x", "y"), {"num_samples": 3})]


def test_hooks_without_an_installed_function_say_what_is_missing():
    import pyrobnn as pb
    from pyrobnn.infer.conversion import datatree_converter
    from pyrobnn.model.bnn import spec_loader
    from pyrobnn.utils.hooks import HookNotInstalledError

    previous = spec_loader.install(None)
    try:
        with pytest.raises(HookNotInstalledError, match=r"^BNN.from_spec needs a spec loader, and none is installed\. "
                                                        r"`import pyrobnn` installs"):
            pb.BNN.from_spec("toy_regression")
    finally:
        spec_loader.install(previous)
    previous = datatree_converter.install(None)
    try:
        with pytest.raises(HookNotInstalledError, match=r"^Posterior.to_datatree needs a DataTree converter, and "
                                                        r"none is installed\..*pyrobnn.diagnostics.to_datatree"):
            pb.Posterior.to_datatree(object(), None, None)
    finally:
        datatree_converter.install(previous)
    assert spec_loader.installed and datatree_converter.installed
    with pytest.raises(TypeError, match="the function installed for BNN.from_spec must be callable or None, got str"):
        spec_loader.install("load_model")
    assert spec_loader.installed
