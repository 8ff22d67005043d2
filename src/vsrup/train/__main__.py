"""`vsrup train` (or `python -m vsrup.train`): train the tiny model from the command line;
`vsrup train span-video ...` trains span-video's adapter instead (`span_loop.py`)."""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import fields

from vsrup.errors import VsrupError
from vsrup.train.loop import TrainSettings, train

# Every flag's help and metavar (the flags themselves are TrainSettings' fields).
HELP = {
    "out": ("FILE", "where the trained weights go (.safetensors; the .json config is written beside it)"),
    "data": ("PATH", "videos or frame folders to train on (default: the shared data set)"),
    "scale": ("N", "upscaling factor: 2 or 4"),
    "steps": ("N", "optimiser steps"),
    "batch": ("N", "windows per step"),
    "frames": ("N", "frames per training window"),
    "crop": ("PX", "HR crop size in pixels (the LR crop is crop / scale)"),
    "lr": ("RATE", "peak learning rate (short warm-up, then cosine decay to 2%% of it)"),
    "seed": ("N", "random seed: data order, crops and degradations follow from it and the step"),
    "data_root": (
        "DIR",
        "folder the sources are read from when none are named (../shared/data beside the project)",
    ),
    "stills": ("DIR", "photographs turned into moving-camera windows (scripts/prep_wallpapers.py)"),
    "per_still": ("N", "moving-camera windows per photograph"),
    "align": ("KIND", "temporal module: flow (recurrent propagation by DIS flow), offset (v1), none"),
    "prop_blocks": ("N", "residual blocks of each propagation branch"),
    "aligned_inputs": ("", "feed the encoder the flow-aligned previous and next LR frames too"),
    "run_dir": ("DIR", "checkpoints, log.jsonl and the data cache of this run"),
    "cache_dir": ("DIR", "cached HR windows (empty: RUN_DIR/cache)"),
    "clean_fraction": ("F", "share of plain bicubic pairs (the benchmark's LR); the rest are degraded"),
    "vary_start": ("F", "fraction of the run after which frame-varying degradations begin"),
    "vary_max": ("F", "share of degraded windows that vary from frame to frame at the end"),
    "width": ("N", "model width (channels)"),
    "refiner_blocks": ("N", "residual blocks of the refiner"),
    "latent_stride": ("N", "latent downsampling: 2 for the ×2 model keeps the cost per output pixel of ×4"),
    "ckpt_every": ("STEPS", "write a checkpoint every this many steps"),
    "log_every": ("STEPS", "append to log.jsonl every this many steps"),
    "eval_every": ("STEPS", "evaluate on the held-out windows every this many steps"),
    "threads": ("N", "torch CPU threads"),
    "cache_frames": ("N", "frames per cached HR window (training windows are cut from these)"),
    "cache_crop": ("PX", "cached HR crop size"),
    "cache_windows": ("N", "windows spread over each source (3 crops each)"),
    "init": ("FILE", "start from these weights (.safetensors): every tensor whose shape matches"),
}


def parse(argv: list[str]) -> tuple[TrainSettings, bool, bool, bool]:
    parser = argparse.ArgumentParser(prog="vsrup train", description=__doc__)
    for f in fields(TrainSettings):
        flag = "--" + f.name.replace("_", "-")
        metavar, text = HELP[f.name]
        if f.name == "out":
            parser.add_argument(flag, required=True, metavar=metavar, help=text)
        elif isinstance(f.default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=text)
        elif f.name == "data":
            parser.add_argument(flag, nargs="*", default=[], metavar=metavar, help=text)
        else:
            default = f.default if f.default != "" else None  # "(default: )" says nothing
            parser.add_argument(flag, type=type(f.default), default=f.default, metavar=metavar,
                                help=text if default is None else f"{text} (default: {default})")  # fmt: skip
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    parser.add_argument(
        "--reschedule", action="store_true", help="with --resume: allow a new --steps (recorded)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (log.jsonl only)")
    args = vars(parser.parse_args(argv))
    resume, quiet, reschedule = args.pop("resume"), args.pop("no_progress"), args.pop("reschedule")
    return TrainSettings(**args), resume, not quiet, reschedule


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["span-video"]:  # `vsrup train span-video ...`: the adapter on the SPAN base
        from vsrup.train.span_loop import main as span_video_main

        return span_video_main(argv[1:])
    settings, resume, progress, reschedule = parse(argv)
    command = "python -m vsrup.train " + shlex.join(argv)
    try:
        summary = train(settings, resume=resume, progress=progress, command=command, reschedule=reschedule)
    except VsrupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"wrote {settings.out} after {summary['steps']} steps in {summary['train_time_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
