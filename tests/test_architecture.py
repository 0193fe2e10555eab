"""The package's layout is its architecture: these tests keep it so.

- ``engine/`` (sources, monitor, log dir, catalog, TensorBoard process) imports no
  Jupyter, tornado, IPython or ipywidgets, so the command line and a kernel use it
  without a server;
- data flows one way: ``engine`` ← ``guild``, ``server``, ``notebook``, ``cli``, and
  neither ``server`` nor ``notebook`` imports the other;
- the package's public API is what ``__all__`` says, and every public module has one.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import jupyter_guildimg

PACKAGE = Path(jupyter_guildimg.__file__).parent
FRAMEWORKS = ("jupyter_server", "jupyter_server_proxy", "tornado", "IPython", "ipywidgets")
# Which layer may import which (the package's top-level modules are the root layer).
# ``rest`` (the REST contract) is importable from every layer and imports none.
ALLOWED = {
    "rest": {"rest"},
    "engine": {"engine", "rest"},
    "guild": {"engine", "guild", "rest"},
    "server": {"engine", "server", "rest"},
    "notebook": {"engine", "notebook", "rest"},
    "": {"engine", "guild", "server", "notebook", "rest", ""},
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if (
            relative.parts[0] in ("labextension", "demo_project")
            or "demo_project" in relative.parts
        ):
            continue
        parts = list(relative.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``): imports only a type checker runs."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _nodes(tree: ast.AST, runtime: bool) -> list[ast.AST]:
    """Every node of ``tree``; with ``runtime``, none under ``if TYPE_CHECKING:``."""
    found, stack = [], [tree]
    while stack:
        node = stack.pop()
        found.append(node)
        if not (runtime and _is_type_checking(node)):
            stack.extend(ast.iter_child_nodes(node))
    return found


def _imports(module: str, path: Path, runtime: bool = False) -> set[str]:
    """Package-relative names of the package modules ``module`` imports (anywhere in
    it, in functions too; with ``runtime``, not those only a type checker imports)."""
    parts = module.split(".") if module else []
    package = parts if path.name == "__init__.py" else parts[:-1]
    names = set()
    for node in _nodes(ast.parse(path.read_text()), runtime):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            elif (node.module or "").startswith("jupyter_guildimg"):
                target = node.module.removeprefix("jupyter_guildimg").lstrip(".")
            else:
                continue
            # ``from .. import rest`` imports the module ``rest``, not the package.
            modules = [".".join(filter(None, [target, a.name])) for a in node.names]
            known = _modules()
            names.update(m if m in known else target for m in modules)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("jupyter_guildimg"):
                    names.add(alias.name.removeprefix("jupyter_guildimg").lstrip("."))
    return names


def _layer(module: str) -> str:
    head = module.split(".")[0]
    return head if head in ALLOWED and head else ""


@pytest.mark.parametrize("module", sorted(_modules()))
def test_each_module_imports_only_its_own_layer_and_the_ones_below(module):
    path = _modules()[module]
    layer = _layer(module)
    wrong = sorted(t for t in _imports(module, path) if _layer(t) not in ALLOWED[layer])
    assert not wrong, f"{module} ({layer or 'top'}) imports {wrong}"


def test_no_module_imports_itself_round_a_cycle():
    """No import cycle, not even one hidden in a function (which works only because
    of the order modules happen to load in): the layers are a one-way street."""
    modules = _modules()
    graph = {m: _imports(m, path, runtime=True) & set(modules) - {m} for m, path in modules.items()}
    cycles = []
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done

    def walk(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            # A package importing its own submodules is how packages are made.
            if target.startswith(module + ".") or module.startswith(target + "."):
                continue
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                walk(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    assert cycles == []


def test_the_engine_loads_no_jupyter_tornado_or_widgets():
    engine = [f"jupyter_guildimg.{m}" for m in _modules() if m.startswith("engine")]
    code = (
        "import json, sys\n"
        + "".join(f"import {name}\n" for name in engine)
        + "import jupyter_guildimg, jupyter_guildimg.tensorboard, jupyter_guildimg.tfevent\n"
        + "print(json.dumps(sorted(sys.modules)))"
    )
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
    )
    assert [m for m in loaded if m.split(".")[0] in FRAMEWORKS] == []


def test_guilds_import_paths_still_work():
    from jupyter_guildimg.tensorboard import RunsMonitor, setup_logging
    from jupyter_guildimg.tfevent import EventReader

    assert RunsMonitor.__module__ == "jupyter_guildimg.engine.monitor"
    assert callable(setup_logging) and EventReader.__module__ == "jupyter_guildimg.engine.tfevent"


def test_the_public_api_is_what_all_says():
    exported = set(jupyter_guildimg.__all__)
    public = {name for name in vars(jupyter_guildimg) if not name.startswith("_")}
    submodules = {"engine", "guild", "server", "notebook", "rest", "tensorboard", "tfevent", "cli"}
    assert public - submodules - {"annotations", "Any"} <= exported
    for name in exported:
        assert getattr(jupyter_guildimg, name) is not None


@pytest.mark.parametrize(
    "module", sorted(m for m in _modules() if m and not m.split(".")[-1].startswith("_"))
)
def test_every_public_module_declares_all(module):
    tree = ast.parse(_modules()[module].read_text())
    if _modules()[module].name == "__init__.py" and module != "":
        return  # a subpackage's __init__ only documents its modules
    names = {
        t.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    assert "__all__" in names, f"{module} has no __all__"
