"""The held-out quality table: every model side by side in one run, ×4 and ×2, clean and H.264 LR.

    python benchmarks/heldout_table.py [--models tiny,span] [--scales 4,2] [--frames 16]
        [--out benchmarks/results/heldout_table.json] [--threads N] [SOURCE ...]

For each scale it calls `vsrup.evaluate.evaluate` once on the held-out set (benchmarks/heldout,
licence-clear sequences only) with both LR kinds: clean antialiased bicubic, and that LR through
H.264 CRF 26 4:2:0 (what users have). Every sequence gets its own PSNR-Y gain over bicubic and its
flicker; the mean stands beside them, never instead. A model whose weights are not on this machine
(or whose name is not registered yet) is listed as not available, not a crash. It writes the raw
results as JSON and the tables as Markdown next to it (same name, `.md`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import torch

from vsrup.evaluate import LR_VARIANTS, evaluate

ROOT = Path(__file__).resolve().parents[1]
# bicubic and Lanczos are always scored (the baselines); these are the models beside them: the fast
# built-in one, single-image SPAN (the base), and the video model built on it.
MODELS = ("tiny", "span", "span-video")
LR_NAMES = {"bicubic": "clean", "h264": "H.264 CRF 26"}


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True)
        return out.stdout.decode().strip() or "unknown"
    except OSError:
        return "unknown"


def run(sources, models, scales, variants, frames) -> dict:
    runs = []
    for scale in scales:
        start = time.perf_counter()
        result = evaluate(sources, models, scale, frames, variants, skip_missing=True)
        result["seconds"] = round(time.perf_counter() - start, 1)
        print(f"×{scale}: {result['seconds']} s", flush=True)
        runs.append(result)
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "models": list(models),
        "frames": frames,
        "runs": runs,
    }


def _order(rows: list[dict]) -> list[str]:
    """Sequences in the order the run met them."""
    return list(dict.fromkeys(r["source"].removesuffix(".mkv") for r in rows))


def _cell(value: float, signed: bool) -> str:
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def markdown(report: dict) -> str:
    """Two tables (PSNR-Y gain over bicubic, with the mean flicker beside it; flicker), one row per
    scale × LR × method, one column per sequence and the mean; the bicubic row of the first gives
    its absolute PSNR-Y."""
    runs = report["runs"]
    sequences = _order(runs[0]["rows"]) if runs else []
    head = "| ×, LR | method | " + " | ".join(sequences) + " | **mean** |"
    rule = "|---|---|" + "---:|" * (len(sequences) + 1)
    gains, flick = [head + " flicker ↓ (mean) |", rule + "---:|"], [head, rule]
    for result in runs:
        for variant in result["variants"]:
            label = f"×{result['scale']}, {LR_NAMES.get(variant, variant)}"
            rows = [r for r in result["rows"] if r["variant"] == variant]
            means = {r["method"]: r for r in result["mean"] if r["variant"] == variant}
            for method in dict.fromkeys(r["method"] for r in rows):
                per = {r["source"].removesuffix(".mkv"): r for r in rows if r["method"] == method}
                absolute = method == "bicubic"  # its gain is 0 by definition: show the PSNR-Y instead
                key = "psnr_y" if absolute else "gain_db"
                name = "bicubic (PSNR-Y dB)" if absolute else method
                cells = [_cell(per[s][key], not absolute) for s in sequences]
                gains.append(
                    f"| {label} | {name} | "
                    + " | ".join(cells)
                    + f" | **{_cell(means[method][key], not absolute)}** | {means[method]['flicker']:.2f} |"
                )
                cells = [f"{per[s]['flicker']:.2f}" for s in sequences]
                flick.append(
                    f"| {label} | {method} | "
                    + " | ".join(cells)
                    + f" | **{means[method]['flicker']:.2f}** |"
                )
    missing = {name: reason for result in runs for name, reason in result["unavailable"].items()}
    notes = [f"- `{name}`: not available ({reason})" for name, reason in missing.items()]
    lr = [f"- {LR_NAMES.get(v, v)}: {text}" for v, text in (runs[0]["variants"].items() if runs else [])]
    return "\n".join(
        [
            f"# Held-out quality, {report['date']} (commit {report['commit']})",
            "",
            *([report["note"], ""] if report.get("note") else []),
            f"{report['machine']}; first {report['frames']} frames of each sequence; "
            + ", ".join(f"×{r['scale']} took {r['seconds']} s" for r in runs)
            + ".",
            "",
            "LR made from the ground truth by:",
            *lr,
            "",
            "## PSNR-Y gain over bicubic (dB; higher is better)",
            "",
            *gains,
            "",
            "## Flicker (mean |Δout − Δtruth| on Y, 8-bit units; lower is steadier)",
            "",
            *flick,
            "",
            *(["Models not scored:", *notes, ""] if notes else []),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "sources", nargs="*", type=Path, help="HR videos or frame folders (default: held-out set)"
    )
    parser.add_argument(
        "--models", default=",".join(MODELS), help=f"comma-separated (default: {','.join(MODELS)})"
    )
    parser.add_argument("--scales", default="4,2", help="comma-separated (default: 4,2)")
    parser.add_argument("--variants", default="bicubic,h264", help=f"LR kinds: {', '.join(LR_VARIANTS)}")
    parser.add_argument(
        "--frames", type=int, default=16, help="first N frames of each sequence (default: 16)"
    )
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch CPU threads for the models (default 1: on a busy 2-core machine a 2-thread pool "
        "waits on its slower thread; 0 = torch default); the metrics always run on one",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "heldout_table.json",
        help="JSON to write; the Markdown goes beside it with the suffix .md",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    report = run(
        args.sources or None,
        tuple(m for m in args.models.split(",") if m),
        tuple(int(s) for s in args.scales.split(",")),
        tuple(args.variants.split(",")),
        args.frames,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    args.out.with_suffix(".md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
