"""The package's shape, checked: imports flow one way and stay out of other modules' privates.

docs/architecture.md draws the data flow; these tests keep the code from drifting from it.
A module that needs another's underscore name should get a public one instead, and a cycle
(even one dodged by a function-local import) means two modules share an owner.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("arrowlog", "flight_server")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    # A package's __init__ is its own base; a module's base is its package.
    if MODULES[module].name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _imports(module: str) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for every import in ``module``."""
    tree = ast.parse(MODULES[module].read_text(), str(MODULES[module]))
    found: list[tuple[str, str | None, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, None, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, node)
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                if sub in MODULES:  # ``from package import module``
                    found.append((sub, None, node.lineno))
                else:
                    found.append((source, alias.name, node.lineno))
    return found


def _type_checking_lines(module: str) -> set[int]:
    """Lines inside ``if TYPE_CHECKING:`` blocks: annotations only, never run."""
    tree = ast.parse(MODULES[module].read_text())
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def import_graph() -> dict[str, set[str]]:
    """Module → the package modules it imports at run time (function-local imports count)."""
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        skip = _type_checking_lines(module)
        targets = set()
        for target, _name, line in _imports(module):
            if line in skip:
                continue
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != module and not module.startswith(target + "."):
                targets.add(target)
        graph[module] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    assert _cycles(import_graph()) == []


def test_no_module_imports_another_modules_private_names() -> None:
    offences = []
    for module in MODULES:
        for target, name, line in _imports(module):
            if target not in MODULES or target == module:
                continue
            if name is not None and name.startswith("_") and not name.startswith("__"):
                offences.append(f"{module}:{line} imports {target}.{name}")
    # ``module._name`` attribute access on an imported module counts too.
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in MODULES:
                        aliases[alias.asname or alias.name] = alias.name
            elif isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    full = f"{_resolve(module, node)}.{alias.name}"
                    if full in MODULES:
                        aliases[alias.asname or alias.name] = full
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and aliases[node.value.id] != module
            ):
                offences.append(f"{module}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    assert offences == []


def _defined_privates(tree: ast.AST) -> set[str]:
    """Underscore names this module defines: functions, methods, classes, attributes."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    for node in ast.walk(tree):  # slots and dataclass fields declared in class bodies
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    names.add(item.target.id)
    return {n for n in names if n.startswith("_") and not n.endswith("__")}


def test_no_module_reaches_into_another_modules_objects() -> None:
    """``other._private`` where only another of our modules defines ``_private``.

    Names a module defines itself are its own business (another instance of its own
    class); privates of other libraries (``os._exit``) are not this package's coupling.
    """
    trees = {module: ast.parse(path.read_text()) for module, path in MODULES.items()}
    privates = {module: _defined_privates(tree) for module, tree in trees.items()}
    everywhere = set().union(*privates.values())
    offences = []
    for module, tree in trees.items():
        own = privates[module]
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in everywhere
                and node.attr not in own
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                offences.append(f"{module}:{node.lineno} {ast.unparse(node)}")
    assert offences == []


def test_the_walk_sees_the_whole_package() -> None:
    # Guards the test itself: an empty walk would pass every check above.
    assert "arrowlog.log" in MODULES and "flight_server.server" in MODULES
    assert import_graph()["arrowlog.log"]
