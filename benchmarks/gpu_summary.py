"""Summarise the JSON files of `gpu_suite.sh` as one markdown table (the figures issues 5 and 7 ask for).

python benchmarks/gpu_summary.py gpu-results/
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PUBLISHED_DLORAL_FPS = 0.64  # the reference implementation (29 frames at 1280×720 in 45.5 s, A800)


def row(name: str, report: dict) -> list[str] | None:
    """name | device | dtype | whole-path fps | model-only fps | floor fps | peak GPU MiB | notes"""
    if "fps" in report and "s_per_frame" in report:  # dloral_fullsize.py: one window, model only
        gpu = report.get("peak_gpu_gib")
        notes = f"model only, window of {report['frames']}, {report['input']} → {report['output']}"
        if report.get("compile"):
            notes += f"; compiled (warm-up {report.get('warmup_s')} s)"
        return [name, report["device"], report["dtype"], "", f"{report['fps']:.2f}", "",
                f"{gpu * 1024:.0f}" if gpu is not None else "", notes]  # fmt: skip
    if "upscale" not in report:
        return None
    up, stages, floor = report["upscale"], report.get("stages", {}), report.get("floor", {})
    gpu = stages.get("gpu_peak_allocated_mib") or up.get("gpu_peak_allocated_mib")
    options = report.get("options", {})
    notes = [f"{report['input']['width']}x{report['input']['height']} → "
             f"{report['output']['width']}x{report['output']['height']}, tile {up.get('tile')}"]  # fmt: skip
    if options.get("compile"):
        notes.append("compiled (whole-path fps includes compiling)")
    if options.get("max_memory_gib"):
        notes.append(f"--max-memory {options['max_memory_gib']} GiB")
    return [
        name,
        up.get("gpu_name", up.get("device", "")),
        up.get("dtype", ""),
        f"{up['fps']:.2f}",
        f"{stages['model_fps_effective']:.2f}" if stages.get("model_fps_effective") else "",
        f"{floor['fps']:.2f}" if floor.get("fps") else "",
        f"{gpu:.0f}" if gpu else "",
        "; ".join(notes),
    ]


def main(folder: Path) -> int:
    lines = [
        "| run | device | dtype | upscale fps | model fps | bicubic floor fps | peak GPU MiB | notes |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for path in sorted(folder.glob("*.json")):
        try:
            report = json.loads(path.read_text())
        except ValueError:
            lines.append(f"| {path.stem} | (no result: see log.txt) | | | | | | |")
            continue
        cells = row(path.stem, report)
        if cells:
            lines.append("| " + " | ".join(cells) + " |")
    print("\n".join(lines))
    print(f"\nReference: DLoRAL's own code, {PUBLISHED_DLORAL_FPS} frames/s at 1280×720 (paper, A800).")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "gpu-results")))
