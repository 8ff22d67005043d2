"""Check that the modules of a package import each other without a cycle (module level only).

python scripts/check_import_cycles.py src/vsrup/weights
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def edges(folder: Path, package: str) -> dict[str, set[str]]:
    graph = {}
    for path in sorted(folder.glob("*.py")):
        name = f"{package}.{path.stem}" if path.stem != "__init__" else package
        deps = set()
        for node in ast.parse(path.read_text()).body:  # module level: late imports inside functions are fine
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(package):
                deps.add(node.module)
                deps.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith(package))
        graph[name] = deps
    return {k: {d for d in v if d in graph and d != package} for k, v in graph.items()}


def main(folder: str) -> int:
    root = Path(folder)
    package = ".".join(root.parts[root.parts.index("src") + 1 :])
    graph = edges(root, package)
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> list[str] | None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return stack + [node, dep]
            if dep not in state and (cycle := visit(dep, stack + [node])):
                return cycle
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node, [])):
            print("import cycle:", " -> ".join(cycle))
            return 1
    for node, deps in sorted(graph.items()):
        print(f"{node}: {', '.join(sorted(deps)) or '-'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else "src/vsrup/weights"))
