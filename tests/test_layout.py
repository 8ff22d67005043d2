"""The package's shape stays easy to walk: no import circles (counting imports inside functions
too), no module over ~400 lines, one decoder, and every model-running command on the one loop."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "vsrup"
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
