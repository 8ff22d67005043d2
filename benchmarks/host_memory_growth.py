"""How the host memory of a real CPU run grows, window by window: the data behind the `--dry-run`
peak-memory model (`estimate.HEAP_GROWTH`).

With big buffers served from the heap (`hostmem.reuse_host_memory`), the heap grows over the first
~100 frames before it settles, so a calibration of a few windows sees only part of the peak. This
prints, for one real upscale in this process, the resident memory after the model loaded, after
each window, and the peak, as JSON lines; compare with `vsrup upscale X --dry-run --progress json`
(its `peak_host_mb`) and `/usr/bin/time -v vsrup upscale X` (maximum resident set size).

    python benchmarks/host_memory_growth.py --clip in_180p.mp4 --model tiny --scale 4
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from vsrup.hostmem import proc_bytes
from vsrup.progress import Reporter
from vsrup.upscale import Upscaler, UpscaleSettings

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "dog_320x180.mp4"


def mib(key: str) -> float:
    return round((proc_bytes("/proc/self/status", key) or 0) / 2**20, 1)


class _Log(Reporter):
    def advance(self, frames: int, stage: str = "upscale") -> None:
        super().advance(frames, stage)
        print(
            json.dumps({"frames": self.rate.done, "rss_mb": mib("VmRSS"), "peak_mb": mib("VmHWM")}),
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=SAMPLE)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--scale", type=int, default=4)
    args = parser.parse_args()
    upscaler = Upscaler(UpscaleSettings(scale=args.scale, model=args.model, device="cpu"))
    print(json.dumps({"loaded_rss_mb": mib("VmRSS"), "loaded_peak_mb": mib("VmHWM")}), flush=True)
    with tempfile.TemporaryDirectory() as folder:
        result = upscaler.upscale_file(args.clip, Path(folder) / "out.mp4", _Log())
    print(json.dumps({"frames": result.frames, "final_peak_mb": mib("VmHWM")}), flush=True)


if __name__ == "__main__":
    main()
