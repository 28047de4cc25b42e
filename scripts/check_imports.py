"""Check the package's imports: no cycles, no imports of its own modules inside functions, a light CLI.

Usage: python scripts/check_imports.py [src/sidepair]

Reads every module's syntax tree (nothing is imported). Prints the module-level import graph's cycles,
the function-local imports of ``sidepair`` modules, and function-local imports of other packages that
lack a comment saying why (heavy optional dependencies such as onnxruntime, SimpleITK or nnunetv2 may
stay local, with the reason on the line). Deferred imports (``importlib``, ``__import__``) are allowed in
``sidepair.lazy`` alone, and the modules that ``import sidepair`` and the command line load must not
reach torch, MONAI, matplotlib or SciPy at import (their chain is printed). The package's parts (its
top-level modules and subpackages) keep the layer order of ``LAYERS``: a module imports from its own
layer and the layers below, never from one above, counting deferred ``load("module:attr")`` targets as
imports; the graph of parts is acyclic, and a part missing from ``LAYERS`` is reported. Exits 1 when it
finds any problem, 0 otherwise.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

PACKAGE = "sidepair"
LAZY = "sidepair.lazy"  # the one module that may import on first use
LIGHT = ("sidepair", "sidepair.cli")  # what `import sidepair` and `sidepair --help` load
HEAVY = ("torch", "monai", "matplotlib", "scipy")
# The parts of the package, lowest layer first: the folders follow the data from a scan to a report, and
# the command line and the public API sit on top. "" is the package's own ``__init__``.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "version", "lazy", "atomic", "choices", "devices", "plotting", "nnunet_plans", "config"),
    ("data",),
    ("models",),
    ("inference",),
    ("qc",),
    ("evaluation",),
    ("training",),
    ("experiment",),
    ("api",),
    ("cli", "__main__", ""),
)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def targets(node: ast.AST, module: str, is_package: bool, modules: set[str]) -> list[str]:
    """The package modules an import statement loads (``from a import b`` loads ``a.b`` if it is one)."""
    out = []
    if isinstance(node, ast.Import):
        out = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = resolve(node, module, is_package)
        out = [base] + [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
    return [t for t in out if t == PACKAGE or t.startswith(PACKAGE + ".")]


class Scanner(ast.NodeVisitor):
    """Collects module-level and function-local imports, skipping ``if TYPE_CHECKING:`` blocks."""

    def __init__(self) -> None:
        self.depth = 0
        self.top: list[ast.AST] = []
        self.local: list[ast.AST] = []

    def visit_If(self, node: ast.If) -> None:  # noqa: N802
        test = ast.unparse(node.test)
        if test in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            return
        self.generic_visit(node)

    def _function(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function  # noqa: N815

    def _import(self, node: ast.AST) -> None:
        (self.local if self.depth else self.top).append(node)

    visit_Import = visit_ImportFrom = _import  # noqa: N815


def external(node: ast.AST) -> list[str]:
    """The top-level packages of other distributions that an import statement loads."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        names = [node.module]
    else:
        names = []
    return [n.split(".")[0] for n in names if n.split(".")[0] != PACKAGE]


def deferred_imports(tree: ast.AST) -> list[int]:
    """Lines that import by name at run time: ``importlib.import_module(...)`` or ``__import__(...)``."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            if name in ("importlib.import_module", "import_module", "__import__"):
                lines.append(node.lineno)
    return lines


def heavy_chains(graph: dict[str, set[str]], heavy: dict[str, set[str]]) -> list[str]:
    """For each light root, the first chain of module-level imports that reaches a heavy package."""
    out = []
    for root in LIGHT:
        parent: dict[str, str | None] = {root: None}
        queue = [root]
        while queue:
            module = queue.pop(0)
            if heavy.get(module):
                chain = [module]
                while parent[chain[-1]] is not None:
                    chain.append(parent[chain[-1]])  # type: ignore[arg-type]
                reached = ", ".join(sorted(heavy[module]))
                out.append(f"{root} imports {reached} at import: {' -> '.join(reversed(chain))}")
                break
            for nxt in sorted(graph.get(module, ())):
                if nxt not in parent:
                    parent[nxt] = module
                    queue.append(nxt)
    return out


def part(module: str) -> str:
    """The top-level module or subpackage a module belongs to ("" for the package itself)."""
    return module.split(".")[1] if "." in module else ""


def lazy_targets(tree: ast.AST) -> list[tuple[int, str]]:
    """The modules named by ``load("module:attribute")`` calls, with their lines."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("load") and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and ":" in arg.value:
                out.append((node.lineno, arg.value.split(":")[0]))
    return out


def layer_problems(edges: list[tuple[str, str, str]]) -> list[str]:
    """Imports against ``LAYERS`` and cycles among the parts; ``edges`` are (module, target, where)."""
    rank = {name: i for i, names in enumerate(LAYERS) for name in names}
    problems, parts = [], {}
    for module, target, where in edges:
        a, b = part(module), part(target)
        for p in (a, b):
            if p not in rank and f"part {p}" not in parts:
                parts[f"part {p}"] = set()
                problems.append(f"{PACKAGE}.{p} is in no layer of LAYERS (scripts/check_imports.py)")
        if a == b or a not in rank or b not in rank:
            continue
        parts.setdefault(a, set()).add(b)
        message = f"upward import, {a or PACKAGE} (layer {rank[a]}) -> {b} (layer {rank[b]}): {where}"
        if rank[b] > rank[a] and message not in problems:
            problems.append(message)
    for cycle in strongly_connected({k: v for k, v in parts.items() if not k.startswith("part ")}):
        problems.append("cycle among the package's parts: " + " -> ".join(cycle))
    return problems


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the components with more than one module (or a self-loop)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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
            if len(component) > 1 or v in graph.get(v, ()):
                out.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default=str(Path(__file__).resolve().parents[1] / "src" / PACKAGE))
    args = parser.parse_args(argv)
    root = Path(args.root)
    files = sorted(root.rglob("*.py"))
    modules = {module_name(p, root) for p in files}
    graph: dict[str, set[str]] = {}
    heavy: dict[str, set[str]] = {}
    problems: list[str] = []
    part_edges: list[tuple[str, str, str]] = []
    for path in files:
        module = module_name(path, root)
        is_package = path.name == "__init__.py"
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        scanner = Scanner()
        tree = ast.parse(source)
        scanner.visit(tree)
        heavy[module] = {n for node in scanner.top for n in external(node) if n in HEAVY}
        if module != LAZY:
            for lineno in deferred_imports(tree):
                where = f"{path}:{lineno}: {lines[lineno - 1].strip()}"
                problems.append(f"deferred import outside {LAZY}: {where}")
        edges = set()
        for node in scanner.top:
            for t in targets(node, module, is_package, modules):
                # A package's own ``__init__`` is loaded before any submodule: count the edge to it, but an
                # import of a submodule is an edge to that submodule only.
                if t in modules and t != module:
                    edges.add(t)
        graph[module] = edges
        for node in scanner.top:
            for t in targets(node, module, is_package, modules):
                if t in modules:
                    part_edges.append((module, t, f"{path}:{node.lineno}: {lines[node.lineno - 1].strip()}"))
        for lineno, t in lazy_targets(tree):
            part_edges.append((module, t, f"{path}:{lineno}: {lines[lineno - 1].strip()}"))
        for node in scanner.local:
            line = lines[node.lineno - 1]
            own = targets(node, module, is_package, modules)
            where = f"{path}:{node.lineno}: {line.strip()}"
            if own:
                problems.append(f"function-local import of the package's own module: {where}")
            elif "#" not in line:
                problems.append(f"function-local import without a comment saying why: {where}")
    problems.extend(heavy_chains(graph, heavy))
    problems.extend(layer_problems(part_edges))
    cycles = strongly_connected(graph)
    for cycle in cycles:
        problems.append("import cycle: " + " -> ".join(cycle))
    for problem in problems:
        print(problem)
    n_imports = sum(len(e) for e in graph.values())
    print(f"{len(files)} modules, {n_imports} internal imports, {len(cycles)} cycles, ", end="")
    print(f"{len(problems) - len(cycles)} other problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
