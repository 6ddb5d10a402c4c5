"""The layering the Architecture page (docs/architecture.md) states, checked on the source (AST).

Each rule names a layer and what it may not import; a new import that breaks one fails here
with the file and line.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "nbody_core"
UI_PACKAGES = ("panel", "param", "holoviews", "bokeh", "nbody_explorer")


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
def test_cli_never_imports_the_app(path):
    # `nbody serve` finds the dashboard's folder and hands it to Panel; the library never imports
    # the app, not even inside a function (the app sits above the library, not beside it).
    bad = [(line, name) for line, name in imports(path) if name.split(".")[0] in ("nbody_explorer", "app")]
    assert not bad, bad


#: The layers of nbody_core, bottom first, and the layers each may import (besides itself).
#: docs/architecture.md draws the same picture.
LAYERS = {
    "provenance": set(),
    "registry": set(),
    "defaults": set(),
    "physics": {"registry", "provenance", "defaults"},
    "integrate": {"physics", "registry", "provenance", "defaults"},
    "systems": {"physics", "registry", "provenance", "defaults"},
    "io": {"physics", "provenance", "defaults"},
    "ensembles": {"physics", "integrate", "systems", "io", "registry", "provenance", "defaults"},
    "infer": {"physics", "integrate", "systems", "io", "registry", "provenance", "defaults"},
    "emulator": {"ensembles", "physics", "integrate", "systems", "io", "registry", "provenance", "defaults"},
    "lab": {"infer", "physics", "integrate", "systems", "io", "registry", "provenance", "defaults"},
    "cli": {"ensembles", "emulator", "infer", "lab", "physics", "integrate", "systems", "io", "registry", "provenance",
            "defaults"},
}


def layer_of(path: Path) -> str:
    first = path.relative_to(CORE).parts[0]
    return first.removesuffix(".py")


def test_every_core_module_sits_in_a_layer():
    outside = sorted({str(p.relative_to(ROOT)) for p in CORE.rglob("*.py")
                      if p != CORE / "__init__.py" and layer_of(p) not in LAYERS})
    assert not outside, f"modules outside the layers of LAYERS: {outside}"


@pytest.mark.parametrize("path", [p for p in CORE.rglob("*.py") if p != CORE / "__init__.py"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_core_layers_import_only_layers_below(path):
    layer = layer_of(path)
    allowed = LAYERS.get(layer, set()) | {layer}
    bad = []
    for line, name in imports(path):
        parts = name.split(".")
        if parts[0] != "nbody_core":
            continue
        assert len(parts) > 1, (line, "import the module that defines a name, not the nbody_core facade")
        if parts[1] not in allowed:
            bad.append((line, name))
    assert not bad, f"{path.relative_to(ROOT)} ({layer}) imports {bad}; {layer} may import {sorted(allowed)}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] == "app":  # the folder of the package nbody_explorer (pyproject.toml's package-dir)
        parts[0] = "nbody_explorer"
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> modules it imports (any import: top level, inside a function, under
    TYPE_CHECKING), for the .py files under ``root``."""
    paths = {_module_name(p): p for p in root.rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        edges = set()
        for _, target in imports(path):
            # `from pkg import mod` yields pkg.mod; a name imported from a module yields
            # module.name: walk up to the longest prefix that is a module of ours.
            while target and target not in paths:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                edges.add(target)
        graph[name] = edges
    return graph


def _cycles(graph):
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


@pytest.mark.parametrize("root", ["nbody_core", "app"])
def test_no_import_cycles_even_lazy_ones(root):
    # A package __init__ re-exporting its modules is not a cycle (its modules never import it).
    graph = _import_graph(ROOT / root)
    assert not _cycles(graph), _cycles(graph)


def test_the_cycle_check_sees_a_lazy_cycle(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.b import y\nx = 1\n")
    (package / "b.py").write_text("def y():\n    from pkg.a import x\n    return x\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert _cycles(_import_graph(package)) == [["pkg.a", "pkg.b"]]
    finally:
        ROOT = saved


@pytest.mark.parametrize("path", core_files(cli=False), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_modules_import_neither_the_cli_nor_the_facade(path):
    for line, name in imports(path):
        assert not name.startswith("nbody_core.cli"), (line, name)
        assert name != "nbody_core", (line, name)


#: What `nbody presets` and `import nbody_core` load: no JAX (JAX loads with the first module
#: that computes; imports inside functions are lazy and allowed).
JAX_FREE = ["__init__.py", "provenance.py", "registry.py", "defaults.py", "physics/units.py", "physics/precision.py",
            "systems/constants.py", "systems/presets.py"]


@pytest.mark.parametrize("name", JAX_FREE)
def test_registry_and_facade_load_without_jax(name):
    found = imports(CORE / name, top_level_only=True)
    bad = [(line, n) for line, n in found if n.split(".")[0] in ("jax", "jaxlib", "diffrax", "numpy")]
    jax_free_modules = {"nbody_core." + m.removesuffix(".py").replace("/", ".") for m in JAX_FREE}
    bad += [(line, n) for line, n in found
            if n.startswith("nbody_core.") and not any(n == m or n.startswith(m + ".") for m in jax_free_modules)]
    assert not bad, bad


def _app_files(folder: str) -> list[Path]:
    return sorted((ROOT / "app" / folder).rglob("*.py"))


def _imports_any(path: Path, prefixes) -> list[tuple[int, str]]:
    """Imports of ``path`` that are one of ``prefixes`` or inside one (``nbody_explorer.views`` matches
    ``nbody_explorer.views.simulate``, not ``nbody_explorer.viewsx``)."""
    return [(line, name) for line, name in imports(path)
            if any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)]


@pytest.mark.parametrize("path", _app_files("state"), ids=lambda p: p.name)
def test_app_state_never_imports_panel_plotting_runtime_or_views(path):
    # State is plain param.Parameterized: testable and usable without a server or a page. The
    # numbers it checks against (caps, the per-click CPU cost model) live in app/limits.py,
    # which imports the standard library only.
    bad = _imports_any(path, ("panel", "bokeh", "holoviews", "nbody_explorer.views", "nbody_explorer.runtime", "nbody_explorer.compat",
                              "nbody_explorer.components", "nbody_explorer.dashboard", "nbody_explorer.reliability"))
    assert not bad, bad


@pytest.mark.parametrize("path", _app_files("runtime"), ids=lambda p: p.name)
def test_app_runtime_never_imports_views_or_state(path):
    # The runtime is the server plumbing under every view: it knows no tab.
    bad = _imports_any(path, ("nbody_explorer.views", "nbody_explorer.state", "nbody_explorer.components", "nbody_explorer.dashboard", "nbody_core", "jax"))
    assert not bad, bad


@pytest.mark.parametrize("path", _app_files("compat"), ids=lambda p: p.name)
def test_app_compat_imports_no_other_app_module(path):
    bad = [(line, name) for line, name in imports(path)
           if name.split(".")[0] == "nbody_explorer" and not (name == "nbody_explorer.compat" or name.startswith("nbody_explorer.compat."))]
    assert not bad, bad


#: Calls that schedule work in a session or hook its end: only the runtime (and the compat
#: module it reads Bokeh's internals through) makes them; views use SessionView / SessionRunner.
SESSION_PLUMBING = {"add_periodic_callback", "add_next_tick_callback", "add_timeout_callback", "on_session_destroyed"}


@pytest.mark.parametrize(
    "path", sorted(p for p in (ROOT / "app").rglob("*.py") if p.parent.name not in ("runtime", "compat")),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_session_plumbing_lives_in_the_runtime(path):
    tree = ast.parse(path.read_text(), str(path))
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
    bad = [(node.lineno, ast.unparse(node.func)) for node in calls
           if isinstance(node.func, ast.Attribute) and node.func.attr in SESSION_PLUMBING]
    bad += [(node.lineno, "SessionRunner(...)") for node in calls
            if isinstance(node.func, ast.Name) and node.func.id == "SessionRunner"]
    assert not bad, f"{path.relative_to(ROOT)}: {bad}; use nbody_explorer.runtime (SessionView, Periodic, admit_session)"


@pytest.mark.parametrize("path", _app_files("views"), ids=lambda p: p.name)
def test_views_that_run_work_are_session_views(path):
    # A view holding a runner gets it from SessionView (its own or a shared one), so its
    # messages, jobs and their outcomes go through one base class instead of copied plumbing.
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        assigns_runner = any(
            isinstance(target, ast.Attribute) and target.attr == "runner"
            and isinstance(target.value, ast.Name) and target.value.id == "self"
            for child in ast.walk(node) if isinstance(child, ast.Assign) for target in child.targets
        )
        assert not assigns_runner, f"{path.name}:{node.lineno} {node.name} sets self.runner; subclass SessionView"
        uses_runner = "self.runner" in ast.unparse(node)
        bases = {ast.unparse(base) for base in node.bases}
        assert not uses_runner or "SessionView" in bases, f"{node.name} uses a runner: subclass SessionView"


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


#: The private names of other libraries read on purpose outside ``app/compat/``, each with the
#: reason. Anything else of the form ``obj._name`` (``obj`` not ``self``/``cls``) must name
#: something the same module defines: a module's classes may share private helpers, other
#: modules get a public method. In ``app/compat/`` every module lists its private uses of Bokeh,
#: Panel and param in ``PRIVATE_USES`` (with the tested range and the fallback) instead.
FOREIGN_PRIVATE_ALLOWED = {
    # argparse exposes a parser's actions only as _actions (stable since Python 3.2); listing
    # them otherwise means collecting every add_argument's return value across four groups.
    ("nbody_core/cli/ensemble.py", "_actions"),
    ("nbody_core/cli/ensemble.py", "_StoreTrueAction"),
}
#: Public APIs whose names have a leading underscore: NamedTuple's methods and os._exit.
PUBLIC_UNDERSCORE_NAMES = {"_replace", "_asdict", "_fields", "_make", "_field_defaults", "_exit"}
COMPAT = ROOT / "app" / "compat"


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


def _private_access(path: Path) -> list[tuple[int, str]]:
    """``(line, expression)`` of each private name of another module that ``path`` reads:
    ``obj._name`` (not on ``self``/``cls``, not defined in ``path``) and ``from module import
    _name`` from a module outside this repository."""
    tree = ast.parse(path.read_text(), str(path))
    own = _defined_names(tree)
    where = path.relative_to(ROOT).as_posix()
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] not in ("nbody_explorer", "nbody_core", "__future__"):
            bad += [(node.lineno, f"from {node.module} import {alias.name}") for alias in node.names
                    if alias.name.startswith("_") and not alias.name.startswith("__")]
            continue
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_") or node.attr.startswith("__"):
            continue
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            continue
        if node.attr in PUBLIC_UNDERSCORE_NAMES or node.attr in own or (where, node.attr) in FOREIGN_PRIVATE_ALLOWED:
            continue
        bad.append((node.lineno, ast.unparse(node)))
    return bad


@pytest.mark.parametrize(
    "path", sorted(p for p in [*CORE.rglob("*.py"), *(ROOT / "app").rglob("*.py")] if COMPAT not in p.parents),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_no_private_access_across_modules(path):
    bad = _private_access(path)
    assert not bad, (f"{path.relative_to(ROOT)}: private names of other modules {bad}; give that module a "
                     "public method, or put a private use of Bokeh/Panel/param in app/compat/ (PRIVATE_USES)")


def test_the_private_access_check_sees_attributes_and_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from param.parameterized import _syncing\nimport bokeh\nx = bokeh.document._models\n"
                      "from nbody_explorer.compat import version_tested\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert [line for line, _ in _private_access(module)] == [1, 3]
    finally:
        ROOT = saved


#: A BokehJS private name in a script: ``._name`` or a quoted ``"_name"`` (a method looked up by
#: name). ``__name`` (``__name__``, the page's own ``__nbody...`` flags) is not one.
_JS_PRIVATE = re.compile(r"""(?:\.|["'])(_[A-Za-z]\w*)""")


def _js_private_names(path: Path) -> set[str]:
    return {name for name in _JS_PRIVATE.findall(path.read_text()) if not name.startswith("__")}


@pytest.mark.parametrize("path", sorted((ROOT / "app").rglob("*.js")), ids=lambda p: str(p.relative_to(ROOT)))
def test_scripts_use_bokehjs_private_names_only_in_compat_where_documented(path):
    names = _js_private_names(path)
    if COMPAT not in path.parents:
        assert not names, f"{path.relative_to(ROOT)} uses BokehJS private names {sorted(names)}: move them to app/compat/"
        return
    module = importlib.import_module(f"nbody_explorer.compat.{path.stem}")  # the module beside the script documents it
    documented = " ".join(use.name for use in module.PRIVATE_USES)
    undocumented = sorted(name for name in names if name not in documented)
    assert not undocumented, f"{path.relative_to(ROOT)}: {undocumented} not in nbody_explorer.compat.{path.stem}.PRIVATE_USES"


def _architecture_rows() -> list[tuple[set[str], set[str]]]:
    """``(folders, names)`` of each row of the Architecture table (docs/architecture.md): the folders its
    first cell names, the module names its first two cells name (the state and views rows list
    their modules under "what it holds")."""

    section = (ROOT / "docs" / "architecture.md").read_text()
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
def test_the_architecture_table_names_every_module(path):
    relative = path.relative_to(ROOT)
    folder, stem = relative.parent.as_posix() + "/", path.stem
    assert any(folder in folders and stem in names for folders, names in _architecture_rows()), (
        f"docs/architecture.md's table does not name {relative} (in its {folder} row)")
