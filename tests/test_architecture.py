"""The layering the README's Architecture section states, checked on the source (AST).

Each rule names a layer and what it may not import; a new import that breaks one fails here
with the file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "nbody_core"
UI_PACKAGES = ("panel", "param", "holoviews", "bokeh", "app")


def imports(path: Path, *, top_level_only: bool = False):
    """``(line, absolute module name)`` of every import in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:  # from . import x: x is a module or a facade name
                    for alias in node.names:
                        yield node.lineno, f"{module}.{alias.name}"
                    continue
            else:
                module = node.module
            yield node.lineno, module


def core_files(*, cli: bool):
    return [p for p in CORE.rglob("*.py") if ("cli" in p.relative_to(CORE).parts) == cli]


@pytest.mark.parametrize("path", core_files(cli=False), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_never_imports_the_ui(path):
    bad = [(line, name) for line, name in imports(path) if name.split(".")[0] in UI_PACKAGES]
    assert not bad, bad


@pytest.mark.parametrize("path", core_files(cli=True), ids=lambda p: str(p.relative_to(ROOT)))
def test_cli_imports_the_app_only_lazily(path):
    # `nbody serve` starts the dashboard: it may import app/panel inside its handler, never at
    # module level (every other sub-command stays free of the UI stack).
    bad = [(line, name) for line, name in imports(path, top_level_only=True) if name.split(".")[0] in UI_PACKAGES]
    assert not bad, bad


@pytest.mark.parametrize("path", core_files(cli=False), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_modules_import_neither_the_cli_nor_the_facade(path):
    for line, name in imports(path):
        assert not name.startswith("nbody_core.cli"), (line, name)
        parts = name.split(".")
        if parts[0] == "nbody_core" and len(parts) == 2:
            # nbody_core.X must be a module (a file or package), never a name of __init__.
            assert (CORE / f"{parts[1]}.py").is_file() or (CORE / parts[1]).is_dir(), (line, name)
        assert name != "nbody_core", (line, name)


@pytest.mark.parametrize("name", ["presets.py", "units.py", "provenance.py", "__init__.py"])
def test_registry_and_facade_load_without_jax(name):
    # `nbody presets` and `import nbody_core` stay instant: JAX loads with the first module that
    # computes. (Imports inside functions are lazy and allowed.)
    bad = [(line, n) for line, n in imports(CORE / name, top_level_only=True) if n.split(".")[0] in ("jax", "jaxlib", "diffrax")]
    bad += [(line, n) for line, n in imports(CORE / name, top_level_only=True)
            if n.startswith("nbody_core.") and n not in ("nbody_core.units", "nbody_core.provenance")]
    assert not bad, bad


@pytest.mark.parametrize("path", sorted((ROOT / "app" / "state").glob("*.py")), ids=lambda p: p.name)
def test_app_state_never_imports_panel_or_plotting(path):
    bad = [(line, name) for line, name in imports(path) if name.split(".")[0] in ("panel", "bokeh", "holoviews")]
    assert not bad, bad


@pytest.mark.parametrize("path", sorted((ROOT / "app" / "views").glob("*.py")), ids=lambda p: p.name)
def test_app_views_reach_the_core_only_through_their_state(path):
    bad = [(line, name) for line, name in imports(path) if name.split(".")[0] in ("nbody_core", "jax")]
    assert not bad, bad


#: Issue 10: one concern per module; a module past this many lines is split by concern (the
#: Simulate tab became simulate.py + simulate_run.py in app/state/ and simulate.py +
#: simulate_controls.py in app/views/ at 676 and 756 lines).
MAX_MODULE_LINES = 600


@pytest.mark.parametrize(
    "path", sorted([*CORE.rglob("*.py"), *(ROOT / "app").rglob("*.py")]), ids=lambda p: str(p.relative_to(ROOT))
)
def test_no_module_is_oversized(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(ROOT)}: {lines} lines; split it by concern"


#: The private names of other libraries read on purpose, each with the reason. Anything else
#: of the form ``obj._name`` (``obj`` not ``self``/``cls``) must name something the same module
#: defines: a module's classes may share private helpers, other modules get a public method.
FOREIGN_PRIVATE_ALLOWED = {
    # app/protocol_speedups.py checks Bokeh's document internals at install time and falls back
    # to Bokeh's own serializer when they are not there (tests/app/test_protocol_speedups.py).
    ("app/protocol_speedups.py", "_models"),
    ("app/protocol_speedups.py", "_new_models"),
    # Panel's pn.state has no public setter for the current document of a worker thread.
    ("app/views/session.py", "_document"),
    # param has no public "validate this value against a class-level Parameter" call.
    ("app/state/links.py", "_validate"),
    # argparse exposes a parser's actions only as _actions (stable since Python 3.2).
    ("nbody_core/cli/ensemble.py", "_actions"),
    ("nbody_core/cli/ensemble.py", "_StoreTrueAction"),
}
#: Public APIs whose names have a leading underscore: NamedTuple's methods and os._exit.
PUBLIC_UNDERSCORE_NAMES = {"_replace", "_asdict", "_fields", "_make", "_field_defaults", "_exit"}


def _defined_names(tree: ast.AST) -> set[str]:
    """Functions, classes and attributes (``x.name = ...``) a module defines itself."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


@pytest.mark.parametrize(
    "path", sorted([*CORE.rglob("*.py"), *(ROOT / "app").rglob("*.py")]), ids=lambda p: str(p.relative_to(ROOT))
)
def test_no_private_access_across_modules(path):
    tree = ast.parse(path.read_text(), str(path))
    own = _defined_names(tree)
    where = path.relative_to(ROOT).as_posix()
    bad = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_") or node.attr.startswith("__"):
            continue
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            continue
        if node.attr in PUBLIC_UNDERSCORE_NAMES or node.attr in own or (where, node.attr) in FOREIGN_PRIVATE_ALLOWED:
            continue
        bad.append((node.lineno, ast.unparse(node)))
    assert not bad, f"{where}: private names of other modules {bad}; give that module a public method"


def _architecture_rows() -> list[tuple[set[str], set[str]]]:
    """``(folders, names)`` of each row of the README's Architecture table: the folders its
    first cell names, the module names its first two cells name (the state and views rows list
    their modules under "what it holds")."""
    import re

    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Architecture"):]
    section = section[: section.index("\n## ", 1)]
    rows = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        cells = line.split("|")
        first = re.findall(r"`([^`]+)`", cells[1])
        folders = {t if t.endswith("/") else t.rsplit("/", 1)[0] + "/" for t in first if "/" in t}
        tokens = first + re.findall(r"`([^`]+)`", cells[2])
        names = {word.removesuffix(".py") for t in tokens for word in re.split(r"[\s/]+", t) if word}
        rows.append((folders, names))
    return rows


@pytest.mark.parametrize(
    "path",
    sorted(p for p in [*CORE.rglob("*.py"), *(ROOT / "app").rglob("*.py")]
           if p.name != "__init__.py" or p.parent == CORE),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_the_readme_architecture_table_names_every_module(path):
    relative = path.relative_to(ROOT)
    folder, stem = relative.parent.as_posix() + "/", path.stem
    assert any(folder in folders and stem in names for folders, names in _architecture_rows()), (
        f"README.md's Architecture table does not name {relative} (in its {folder} row)")
