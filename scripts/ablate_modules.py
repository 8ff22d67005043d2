"""Knock out one temporal module of trained tiny weights, to measure what each one contributes.

    python scripts/ablate_modules.py src/vsrup/assets/tiny_x4.safetensors --out runs/knockout
    vsrup eval --model runs/knockout/no_aligned.safetensors --scale 4 --frames 16 --variants bicubic

Writes two weight files, each with its JSON config, into --out:

- `no_aligned`: the encoder's weights on the aligned-neighbour differences set to zero, so only
  the recurrence carries the neighbours;
- `no_recurrence`: the fusion conv's weights on the propagated states set to zero, so only the
  aligned neighbours do.

`vsrup eval` scores each with and without its temporal module (per-frame inference sets both
to nothing). This is an inference-time knock-out of one trained model, not a model retrained
without the module: it shows what the trained model relies on.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from vsrup.models.tiny import load_tiny, save_tiny


def knock_out(weights: Path, out: Path) -> list[Path]:
    written = []
    for name, part in (("no_aligned", _zero_aligned), ("no_recurrence", _zero_recurrence)):
        model = load_tiny(weights)
        with torch.no_grad():
            part(model)
        path = out / f"{name}.safetensors"
        meta = json.loads(weights.with_suffix(".json").read_text())
        save_tiny(model, path, {"knockout": name, "from": str(weights), "training": meta.get("training")})
        written.append(path)
    return written


def _zero_aligned(model) -> None:
    if not model.config.aligned_inputs:
        raise SystemExit("these weights have no aligned-neighbour inputs")
    model.encoder[0].weight[:, model.image_channels :] = 0


def _zero_recurrence(model) -> None:
    if model.config.align != "flow":
        raise SystemExit("these weights have no flow recurrence")
    width = model.config.width
    model.fuse.weight[:, width:] = 0  # fuse takes (features, backward state, forward state)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("weights", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    for path in knock_out(args.weights, args.out):
        print(path)


if __name__ == "__main__":
    main()
