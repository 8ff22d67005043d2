"""The package's shape stays easy to walk: no import circles between modules nor between packages
(counting imports inside functions too), no module over ~400 lines, one decoder, every
model-running command on the one loop, and tests that share helpers through a plain module."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
PACKAGE = TESTS.parent / "src" / "vsrup"
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(path: Path, known: dict[str, Path]) -> set[str]:
    """vsrup modules that `path` imports anywhere in it; `from pkg import sub` counts as pkg.sub."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("vsrup")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vsrup"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
    return {name for name in found if name in known}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_circles():
    known = modules()
    graph = {name: imports_of(path, known) - {name} for name, path in known.items()}
    assert find_cycle(graph) is None, " → ".join(find_cycle(graph) or [])


def package_of(module: str) -> str:
    """`vsrup.run.devices` → `vsrup.run`; a top-level module (`vsrup.upscale`) stands for itself."""
    return ".".join(module.split(".")[:2])


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The module graph folded onto packages: an import inside one package is no edge."""
    folded: dict[str, set[str]] = {}
    for module, targets in graph.items():
        here = package_of(module)
        folded.setdefault(here, set()).update(package_of(t) for t in targets)
        folded[here].discard(here)
    return folded


def test_no_import_circles_between_packages():
    """A package imports from another only if that one never imports back (through any module): a
    circle of packages is a circle of concerns, even when no two modules import each other."""
    known = modules()
    graph = package_graph({name: imports_of(path, known) for name, path in known.items()})
    assert find_cycle(graph) is None, " → ".join(find_cycle(graph) or [])


def test_a_circle_of_packages_is_found_where_no_module_circle_is():
    modules_only = {"p.a.x": {"p.b.y"}, "p.b.y": set(), "p.b.z": {"p.a.w"}, "p.a.w": set()}
    assert find_cycle(modules_only) is None
    assert find_cycle(package_graph(modules_only)) == ["p.a", "p.b", "p.a"]


def test_tests_import_shared_helpers_not_conftest():
    """conftest.py is for pytest to load (fixtures, hooks); importing it by name works only under
    pytest's default import mode and with a single conftest.py. Shared helpers live in helpers.py."""
    offenders = []
    for path in sorted(TESTS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if "conftest" in names:
                offenders.append(path.name)
    assert offenders == []


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_is_over_400_lines():
    long = {name: n for name, p in modules().items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_one_decoder():
    """Only `io.reader` turns decoded video into pixels; everything else reads frames through it, so
    every command sees the same RGB (matrix, range, bit depth)."""
    texts = {name: p.read_text() for name, p in modules().items()}
    decoders = sorted(name for name, t in texts.items() if ".decode(" in t and "to_ndarray(" in t)
    # train.degrade round-trips training windows through H.264 in memory (a degradation, not a reader).
    assert decoders == ["vsrup.io.reader", "vsrup.train.degrade"]


def test_every_model_running_command_uses_the_one_stream_loop():
    """upscale (and through it the executors and the estimate), preview, eval and bench call
    `upscale_stream` (directly or through `Upscaler`); nobody calls a model's `upscale` around it."""
    known = modules()
    calls = ("upscale_stream(", "upscale_file(", "upscaler.stream(")
    users = {name for name, p in known.items() if any(c in p.read_text() for c in calls)}
    for command in (
        "vsrup.upscale",
        "vsrup.preview",
        "vsrup.evaluate",
        "vsrup.estimate",
        "vsrup.bench.measure",
    ):
        assert command in users, command
    calls_model = {name for name, p in known.items() if ".model.upscale(" in p.read_text()}
    # The runner is the one caller; bench also times the model's own steps on one window.
    assert calls_model <= {"vsrup.pipeline.runner", "vsrup.bench.measure"}
