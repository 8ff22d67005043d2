"""Count the floating-point work of one 1280×720 output frame of the DLoRAL-shaped model.

Runs each part of the full-size model (real SD2.1-base shapes) on the `meta` device under
`torch.utils.flop_counter.FlopCounterMode`: no weights, no memory, a few seconds on any machine.
Prints TFLOP per frame per part and, for a range of sustained GPU throughputs, the frames/s that
work allows — the ceiling a measurement on a real GPU can be judged against.

    python benchmarks/dloral_flops.py [--size 1280x720] [--json out.json]
"""

from __future__ import annotations

import argparse
import json

import torch
from torch.utils.flop_counter import FlopCounterMode

from vsrup.models.cfr import CrossFrameRetrieval
from vsrup.models.sd_build import SD21_BASE_UNET_CONFIG, SD21_BASE_VAE_CONFIG, build_unet, build_vae

SUSTAINED_TFLOPS = (100, 200, 400)  # fp16 tensor-core throughput actually reached (H100 SXM peak: ~990 dense)


def count(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def flops_per_frame(width: int, height: int) -> dict[str, int]:
    """One output frame: VAE-encode the ×4 bicubic image, CFR and the UNet on the latent pair,
    VAE-decode the latent (`DLoRAL.upscale` without the cheap resizes and colour fix)."""
    with torch.device("meta"):
        unet = build_unet({**SD21_BASE_UNET_CONFIG, "in_channels": 8})
        vae = build_vae(SD21_BASE_VAE_CONFIG)
        cfr = CrossFrameRetrieval()
        h, w = height // 8, width // 8
        image, latent = torch.zeros(1, 3, height, width), torch.zeros(1, 4, h, w)
        small = torch.zeros(1, 3, h, w)
        prompt = torch.zeros(1, 77, 1024)
        with torch.inference_mode():
            return {
                "vae_encoder": count(lambda: vae.encoder(image)),
                "cfr": count(lambda: cfr(latent, latent, small, small)),
                "unet": count(lambda: unet(torch.zeros(1, 8, h, w), 1, encoder_hidden_states=prompt)),
                "vae_decoder": count(lambda: vae.decoder(latent)),
            }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="1280x720", help="output WxH (multiples of 8)")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    parts = flops_per_frame(width, height)
    total = sum(parts.values())
    for name, flops in parts.items():
        print(f"{name:12s} {flops / 1e12:7.3f} TFLOP  ({flops / total:5.1%})")
    print(f"{'total':12s} {total / 1e12:7.3f} TFLOP per {width}x{height} output frame")
    ceilings = {f"{t} TFLOP/s": round(t * 1e12 / total, 2) for t in SUSTAINED_TFLOPS}
    print("frames/s if sustained:", ", ".join(f"{k}: {v}" for k, v in ceilings.items()))
    if args.json:
        report = {"output": f"{width}x{height}", "tflop": {k: v / 1e12 for k, v in parts.items()},
                  "tflop_total": total / 1e12, "fps_at_sustained": ceilings}  # fmt: skip
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)


if __name__ == "__main__":
    main()
