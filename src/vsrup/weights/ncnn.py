"""Read an ncnn model (.param text + .bin blob) into an eval-form SPAN state dict.

Only what SPAN's export uses is read; any other weighted layer is refused, so a file that is not
a SPAN export fails loudly instead of converting into nonsense.

.param: a magic line (7767517), a "layers blobs" count line, then one line per layer:
`Type Name n_in n_out in_blobs… out_blobs… key=value…`. Integer keys of a Convolution:
0 = output channels, 1 = kernel size, 5 = has bias, 6 = number of weights. MemoryData:
0/1/2 = w/h/c of a constant.

.bin: each weighted layer's data, in layer order. A Convolution's weights start with a 4-byte tag
saying how they are stored (0x01306B47: fp16 follows; 0: fp32 follows), padded to 4 bytes; its
bias follows as raw fp32 with no tag. MemoryData is raw fp32 with no tag. The reader checks that
the blob is consumed exactly, which catches a wrong layout or a wrong pair of files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vsrup.errors import WeightsError

MAGIC = "7767517"
TAG_FP16 = 0x01306B47
TAG_FP32 = 0
WEIGHTED = {"Convolution", "MemoryData"}
# Layers that carry no data in the .bin (anything else weighted is refused).
PLAIN = {"Input", "BinaryOp", "Split", "Swish", "Sigmoid", "Concat", "PixelShuffle"}


@dataclass
class Layer:
    kind: str
    name: str
    params: dict[int, str] = field(default_factory=dict)

    def int(self, key: int, default: int = 0) -> int:
        return int(self.params.get(key, default))


def parse_param(text: str) -> list[Layer]:
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0] != [MAGIC]:
        raise WeightsError("not an ncnn .param file (bad magic line)")
    n_layers = int(lines[1][0])
    layers = []
    for parts in lines[2 : 2 + n_layers]:
        kind, name, n_in, n_out = parts[0], parts[1], int(parts[2]), int(parts[3])
        params = {}
        for item in parts[4 + n_in + n_out :]:
            key, _, value = item.partition("=")
            params[int(key)] = value
        layers.append(Layer(kind, name, params))
    if len(layers) != n_layers:
        raise WeightsError(f"ncnn .param lists {n_layers} layers but has {len(layers)}")
    return layers


class _Blob:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise WeightsError("ncnn .bin is shorter than its .param says")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def fp32(self, count: int) -> np.ndarray:
        return np.frombuffer(self.take(4 * count), dtype="<f4").copy()

    def tagged(self, count: int) -> np.ndarray:
        tag = int(np.frombuffer(self.take(4), dtype="<u4")[0])
        if tag == TAG_FP16:
            size = 2 * count
            values = np.frombuffer(self.take(size), dtype="<f2").astype(np.float32)
            self.take(-size % 4)  # fp16 data is padded to a multiple of 4 bytes
            return values
        if tag == TAG_FP32:
            return self.fp32(count)
        raise WeightsError(f"unsupported ncnn weight storage tag 0x{tag:08x} (only fp16 and fp32)")


def state_key(layer_name: str) -> str:
    """'/block_1/c1_r/eval_conv/Conv' → 'block_1.c1_r'; '/upsampler/upsampler.0/Conv' → 'upsampler'."""
    parts = [p for p in layer_name.strip("/").split("/") if p not in ("eval_conv", "Conv")]
    if parts and parts[0] == "upsampler":
        parts = ["upsampler"]
    return ".".join(parts)


def read_ncnn(param_text: str, blob: bytes) -> dict[str, torch.Tensor]:
    """The eval-form SPAN state dict (float32) held by an ncnn param/bin pair."""
    layers = parse_param(param_text)
    data = _Blob(blob)
    state: dict[str, torch.Tensor] = {}
    for layer in layers:
        if layer.kind == "Convolution":
            out_ch, k, count = layer.int(0), layer.int(1), layer.int(6)
            if count % (out_ch * k * k):
                raise WeightsError(f"{layer.name}: {count} weights do not fit {out_ch}×k{k}")
            in_ch = count // (out_ch * k * k)
            weight = torch.from_numpy(data.tagged(count)).view(out_ch, in_ch, k, k)
            key = state_key(layer.name)
            state[f"{key}.weight"] = weight
            if layer.int(5):
                state[f"{key}.bias"] = torch.from_numpy(data.fp32(out_ch))
        elif layer.kind == "MemoryData":
            w, h, c = layer.int(0), max(1, layer.int(1)), max(1, layer.int(2))
            values = torch.from_numpy(data.fp32(w * h * c))
            if values.numel() == 3:  # the RGB mean subtracted from the input
                state["mean"] = values.view(1, 3, 1, 1)
        elif layer.kind not in PLAIN:
            raise WeightsError(f"ncnn layer {layer.name} of type {layer.kind} is not part of SPAN")
    if data.pos != len(blob):
        raise WeightsError(f"ncnn .bin has {len(blob) - data.pos} bytes its .param does not account for")
    if "conv_1.weight" not in state or "upsampler.weight" not in state or "mean" not in state:
        raise WeightsError("the ncnn model is not a SPAN export (conv_1, upsampler or mean missing)")
    return state


def convert_pair(param: Path, binary: Path, out: Path) -> dict[str, torch.Tensor]:
    """Convert one ncnn SPAN pair to a safetensors file at `out` (written atomically)."""
    from safetensors.torch import save_file

    state = read_ncnn(param.read_text(), binary.read_bytes())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata={"source": param.stem})
    tmp.replace(out)
    return state
