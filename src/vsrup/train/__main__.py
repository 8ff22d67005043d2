"""`python -m vsrup.train`: train the tiny model from the command line (flags = TrainSettings)."""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import fields

from vsrup.errors import VsrupError
from vsrup.train.loop import TrainSettings, train


def parse(argv: list[str]) -> tuple[TrainSettings, bool, bool, bool]:
    parser = argparse.ArgumentParser(prog="python -m vsrup.train", description=__doc__)
    for f in fields(TrainSettings):
        flag = "--" + f.name.replace("_", "-")
        if f.name == "out":
            parser.add_argument(flag, required=True, help="output weights (.safetensors)")
        elif f.name == "data":
            parser.add_argument(flag, nargs="*", default=[], help="videos or frame folders")
        else:
            parser.add_argument(flag, type=type(f.default), default=f.default, help=f"default {f.default}")
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
