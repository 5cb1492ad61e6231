"""The package's dependency direction: io, models and physics at the bottom, solve and methods
above them, training and eval beside, apps and the CLI on top; no import cycles."""

import ast
from pathlib import Path

import generative_encoder

ROOT = Path(generative_encoder.__file__).parent
# a layer may import its own and lower layers only
LAYERS = {
    "errors": 0,
    "registry": 0,
    "devices": 0,
    "io": 1,
    "models": 1,
    "physics": 1,
    "data": 1,
    "solve": 2,
    "methods": 3,
    "training": 4,
    "eval": 4,
    "apps": 5,
    "cli": 6,
    "__init__": 6,
}


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts) or "__init__"


def _runtime_nodes(tree: ast.AST):
    """Every node of the tree but those under ``if TYPE_CHECKING:`` (never imported at run
    time)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            yield from (n for child in node.orelse for n in ast.walk(child))
            continue
        yield node
        yield from _runtime_nodes(node)


def _imports(path: Path) -> set[str]:
    """Modules of the package that ``path`` imports at run time, anywhere in it (lazy imports
    included)."""
    module = _module(path).split(".")
    package = module if path.name == "__init__.py" else module[:-1]
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.startswith("generative_encoder"):
                target = node.module.split(".")[1:]
            else:
                continue
            for alias in node.names:
                sub = ".".join(target + [alias.name])
                found.add(
                    sub
                    if (ROOT / Path(*target, alias.name)).with_suffix(".py").exists()
                    or (ROOT / Path(*target, alias.name)).is_dir()
                    else ".".join(target)
                )
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("generative_encoder."):
                    found.add(alias.name.split(".", 1)[1])
    return {f for f in found if f}


def _graph() -> dict[str, set[str]]:
    return {_module(p): _imports(p) - {_module(p)} for p in ROOT.rglob("*.py")}


def test_every_top_level_name_has_a_layer():
    tops = {
        p.stem if p.is_file() else p.name
        for p in ROOT.iterdir()
        if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))
    }
    assert tops <= set(LAYERS), sorted(tops - set(LAYERS))


def test_imports_go_down_the_layers():
    wrong = []
    for module, imported in _graph().items():
        for target in imported:
            if LAYERS[target.split(".")[0]] > LAYERS[module.split(".")[0]]:
                wrong.append(f"{module} -> {target}")
    assert not wrong, wrong


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:  # a package's name: its __init__
                continue
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles
