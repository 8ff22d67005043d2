"""Maintainer helper, `python -m vsrup.weights --refresh-embedded`: pin the embedded model's files.

Run after training new tiny weights into src/vsrup/assets/; it rewrites their sha256 and size in
weights.toml in place, keeping comments and layout.
"""

from __future__ import annotations

import re
from pathlib import Path

from vsrup.errors import WeightsError
from vsrup.weights import cache
from vsrup.weights.registry import REGISTRY, TABLE_HEADER, join_inside, load_registry
from vsrup.weights.verify import file_sha256


def refresh_embedded(registry: str | Path = REGISTRY, assets: Path | None = None) -> list[str]:
    """Rewrite sha256 and size of the embedded entries' files from the files now in `assets`.

    Edits the text line by line, so comments and layout stay; each file's { ... } must be on the
    line that holds its name.
    """
    registry, assets = Path(registry), assets or cache.assets_dir()
    entries = load_registry(registry)
    lines = registry.read_text(encoding="utf-8").splitlines(keepends=True)
    headers = {m[1]: n for n, line in enumerate(lines) if (m := TABLE_HEADER.match(line))}
    refreshed = []
    for entry in entries.values():
        if entry.source != "embedded":
            continue
        for f in entry.files:
            path = join_inside(assets, f.name)
            if not path.is_file():
                continue
            n = _file_line(lines, headers[entry.name], f.name)
            table = f'{{ name = "{f.name}", sha256 = "{file_sha256(path)}", size = {path.stat().st_size} }}'
            old = re.search(r"\{[^{}]*\}", lines[n])
            lines[n] = lines[n][: old.start()] + table + lines[n][old.end() :]
            refreshed.append(f.name)
    registry.write_text("".join(lines), encoding="utf-8")
    load_registry(registry)  # the result must still validate
    return refreshed


def _file_line(lines: list[str], start: int, name: str) -> int:
    pattern = re.compile(r'\{[^{}]*name\s*=\s*"' + re.escape(name) + r'"[^{}]*\}')
    for n in range(start + 1, len(lines)):
        if lines[n].lstrip().startswith("["):
            break
        if pattern.search(lines[n]):
            return n
    raise WeightsError(f"cannot find the line of {name} in weights.toml; keep each file on its own line")


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m vsrup.weights", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--refresh-embedded",
        action="store_true",
        help="pin sha256 and size of the embedded model's files from src/vsrup/assets/",
    )
    parser.add_argument("--registry", default=REGISTRY, type=Path, help="weights.toml to edit")
    args = parser.parse_args(argv)
    if not args.refresh_embedded:
        parser.print_help()
        return 2
    refreshed = refresh_embedded(args.registry)
    print(f"pinned {', '.join(refreshed) or 'nothing (no embedded files found)'} in {args.registry}")
    return 0
