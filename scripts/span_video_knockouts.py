"""Knock-outs of a span-video adapter on the training monitor (the clips' unused last tenth):
what the temporal module and the compression fine-tune (LoRA) each add, PSNR-Y gain over bicubic
on clean and H.264 CRF 26 LR. Not the held-out benchmark (`vsrup eval`): a quick, honest split.

    PYTHONPATH=src python scripts/span_video_knockouts.py runs/span-video-x4/checkpoint.safetensors
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from vsrup.models.span import load_span_net
from vsrup.models.span_video import load_adapter
from vsrup.train.data import DEFAULT_DATA, default_sources
from vsrup.train.span_data import build_split_cache, gain_over_bicubic, monitor_inputs


def main(adapter: Path) -> None:
    torch.set_num_threads(1)
    meta = json.loads(adapter.with_suffix(".json").read_text())
    settings = meta.get("state", meta.get("training", {})).get("settings", {})
    scale, crop = settings.get("scale", 4), settings.get("crop", 192)
    sources = [p for p in default_sources(DEFAULT_DATA) if p.is_file()]
    _, val = build_split_cache(sources, Path(settings.get("cache_dir", "runs/span-cache")), 0, crop + 32, 50)
    inputs = monitor_inputs(val, scale)
    from vsrup.weights.span_wheel import require_base

    def variant(lora: bool, temporal: bool):
        net = load_adapter(load_span_net(require_base(scale)), adapter).eval()
        if not lora:
            for name, p in net.named_parameters():
                if "lora_B" in name:
                    p.data.zero_()
        if not temporal:
            net.fusion = None
        return net

    rows = {
        "base (span)": variant(False, False),
        "LoRA only (temporal off)": variant(True, False),
        "temporal only (LoRA off)": variant(False, True),
        "span-video (both)": variant(True, True),
    }
    for name, net in rows.items():
        print(f"{name:28s} {gain_over_bicubic(net, inputs, scale)}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
