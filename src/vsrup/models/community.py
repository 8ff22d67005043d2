"""Community super-resolution model files (ESRGAN, Real-ESRGAN, SPAN, SwinIR, HAT, DAT, OmniSR …),
run through spandrel, which knows the architecture from the state dict alone.

Only spandrel's own registry (its MIT core) is used: `spandrel-extra-arches` carries
non-commercial licences and is never installed or registered by vsrup. A file is accepted only if it
is single-image super-resolution of RGB: spandrel's purpose "SR", a scale of 2 or more, 3 channels in
and out (not inpainting, face restoration, ×1 denoising or grey/alpha models).

Each frame is upscaled on its own (neighbourhood (0, 0)), so any window, segment or resume gives
the same frame. A whole frame goes through spandrel's own call, which pads to the architecture's
size requirement (reflect) and crops back, so the result is exactly spandrel's. Tiles are cut in
input pixels on the network's attention-window grid with an overlap, feathered by `tiled_apply`.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from vsrup.errors import UsageError, WeightsError
from vsrup.models.base import InputSize, ModelDescription, Tiling, VSRModel
from vsrup.models.tiling import tiled_apply
from vsrup.weights import community as files

LICENCE = files.FILE_LICENCE
OVERLAP = 16  # input pixels each side of a tile (see `tiling_for`)
# Attention archs see farther than a few convs: a wider overlap keeps the seams under a level.
WIDE_OVERLAP = {"SwinIR", "Swin2SR", "HAT", "DAT", "ATD", "DRCT", "RGT", "SRFormer", "IPT"}
# Archs whose output at a pixel depends on the whole frame, so that tiles would change the picture:
# OmniSR's grid attention mixes pixels a frame-height apart. They take whole frames only.
WHOLE_FRAME = {"OmniSR"}
# Peak activation bytes per output pixel at fp32, from peak RSS on the CPU with the published sizes
# at 64 and 128 px input: RealESRGAN x4plus 860-990, Compact (general-x4v3, animevideov3) 74-170,
# SPAN x4 310-320, SwinIR-M x2 800-2900 (64 px in). Rounded up; other architectures get DEFAULT_BYTES.
BYTES_PER_OUTPUT_PIXEL = {"ESRGAN": 1000, "Compact": 150, "SPAN": 400, "SwinIR": 3000}
DEFAULT_BYTES = 3000
# channels_last (NHWC) only where it was measured faster: on the CPU, CPU time per frame at 1
# thread, published sizes: Compact 0.57×, ESRGAN 0.86×, SPAN 0.86× of the default layout. On CUDA the
# engine asks for it (`tuning.accelerate`); these convolutional nets follow, the others stay as they
# are (not measured there yet). It changes the last bits of fp32 sums, never more than rounding.
CHANNELS_LAST = {"Compact", "ESRGAN", "SPAN"}
DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}


class CommunityModel(VSRModel):
    """A spandrel `ImageModelDescriptor` behind vsrup's contract."""

    def __init__(self, spandrel_model: Any, name: str, licence: str = LICENCE) -> None:
        super().__init__()
        self.spandrel = spandrel_model  # not a Module: `net` below is the Module it holds
        self.net = spandrel_model.model
        self.name, self.scale = name, spandrel_model.scale
        self.architecture = spandrel_model.architecture.id
        # Tiles start on this grid: window attention partitions from the tile's corner, so a tile
        # off the frame's window grid would see other windows than the whole frame does.
        self.grid = grid_for(spandrel_model)
        dtypes = ["float32"]
        dtypes += ["float16"] if spandrel_model.supports_half else []
        dtypes += ["bfloat16"] if spandrel_model.supports_bfloat16 else []
        self._description = ModelDescription(
            name=name,
            scale=self.scale,
            scales=(self.scale,),
            neighbourhood=(0, 0),
            # Any frame size: spandrel pads to its multiple (and minimum) and crops back.
            input=InputSize(minimum=1, multiple=spandrel_model.size_requirements.multiple_of),
            tiling=tiling_for(self.architecture, spandrel_model.size_requirements.minimum, self.grid),
            dtypes=tuple(dtypes),
            bytes_per_output_pixel=BYTES_PER_OUTPUT_PIXEL.get(self.architecture, DEFAULT_BYTES),
            licence=licence,
        )
        self.channels_last = False

    @property
    def description(self) -> ModelDescription:
        return self._description

    def upscale(self, frames: torch.Tensor, tile: int = 0) -> torch.Tensor:
        """(T, 3, h, w) → (T, 3, h·s, w·s), one frame at a time; `tile` input pixels a side (0: whole
        frames). The network runs in its own dtype when the engine's is one it does not support."""
        dtype, layout = self.dtype, self.memory_format
        with warnings.catch_warnings():  # architecture code warns about torch internals, not the video
            warnings.simplefilter("ignore", UserWarning)
            out = [
                self._frame(frame[None].to(dtype).contiguous(memory_format=layout), tile) for frame in frames
            ]
        return torch.cat(out).to(frames.dtype)

    def _frame(self, frame: torch.Tensor, tile: int) -> torch.Tensor:
        """One frame through spandrel: whole (spandrel pads and crops), or in tiles on the grid."""
        tiling = self._description.tiling
        h, w = frame.shape[-2:]
        if tiling.space == "none" or tile <= 0 or (tile >= h and tile >= w):
            return self.spandrel(frame)
        tile = _round_up(max(tile, tiling.smallest), self.grid)
        # Pad as the network would pad the whole frame (reflect), so that the last tile ends on the
        # grid too and sees what the whole frame's edge sees.
        padded = pad_reflect(frame, -h % self.grid, -w % self.grid)
        out = tiled_apply(self.spandrel, padded, tile, tiling.overlap, out_scale=self.scale)
        return out[..., : h * self.scale, : w * self.scale]

    def set_channels_last(self, enabled: bool = True) -> CommunityModel:
        """NHWC weights and frames, for the architectures where that was measured faster."""
        self.channels_last = enabled and self.architecture in CHANNELS_LAST
        self.net.to(memory_format=self.memory_format)
        return self

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format


def grid_for(spandrel_model: Any) -> int:
    """The grid tiles start on: the size multiple spandrel pads to, and the attention window(s) of
    the network (SwinIR, HAT, … `window_size`; DAT, RGT `split_size`)."""
    sizes = [spandrel_model.size_requirements.multiple_of]
    for attr in ("window_size", "split_size"):
        value = getattr(spandrel_model.model, attr, None)
        sizes += [value] if isinstance(value, int) else [v for v in value or () if isinstance(v, int)]
    return math.lcm(*[s for s in sizes if s > 0])


def tiling_for(architecture: str, minimum: int, grid: int) -> Tiling:
    """Pixel tiles with an overlap on the grid, big enough for the architecture's minimum input."""
    if architecture in WHOLE_FRAME:
        return Tiling("none")
    overlap = _round_up(2 * OVERLAP if architecture in WIDE_OVERLAP else OVERLAP, grid)
    return Tiling("pixel", minimum=_round_up(max(minimum, 2 * overlap), grid), overlap=overlap)


def pad_reflect(frame: torch.Tensor, bottom: int, right: int) -> torch.Tensor:
    """Reflect padding at the bottom and right, continued by replicate where the frame is too small
    to reflect (spandrel's own padding)."""
    h, w = frame.shape[-2:]
    reflect_h, reflect_w = min(bottom, h - 1), min(right, w - 1)
    frame = F.pad(frame, (0, reflect_w, 0, reflect_h), mode="reflect") if reflect_h or reflect_w else frame
    rest_h, rest_w = bottom - reflect_h, right - reflect_w
    return F.pad(frame, (0, rest_w, 0, rest_h), mode="replicate") if rest_h or rest_w else frame


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def load_community(
    path: str | Path,
    scale: int | None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    name: str | None = None,
    licence: str = LICENCE,
) -> CommunityModel:
    """A community model file, ready for inference. `scale` None: the file's; another scale than
    the file's is refused. The network is kept in fp32 when it does not support `dtype`."""
    path = Path(path).expanduser()
    spandrel_model, record = inspect(path)
    if scale is not None and scale != spandrel_model.scale:
        raise UsageError(
            f"{path.name} is a ×{spandrel_model.scale} model; use --scale {spandrel_model.scale}"
            " (or leave --scale out)"
        )
    files.remember(record.pop("sha256"), {**record, "name": name or path.stem})
    supported = {"float16": spandrel_model.supports_half, "bfloat16": spandrel_model.supports_bfloat16}
    if not supported.get(DTYPE_NAMES.get(dtype, ""), True):
        dtype = torch.float32
    model = CommunityModel(spandrel_model, name or path.stem, licence).to(device=device, dtype=dtype)
    model.set_channels_last(torch.device(device).type == "cpu")  # measured there; CUDA: the engine's call
    return model.eval().requires_grad_(False)


def add(path: str | Path) -> dict[str, Any]:
    """`vsrup models --add FILE`: check the file, convert a pickle now, and list it from now on."""
    _, record = inspect(Path(path).expanduser())
    files.remember(record.pop("sha256"), record)
    return record


def inspect(path: Path) -> tuple[Any, dict[str, Any]]:
    """Read and check a community file: the spandrel model and what the index records about it.
    Every way a file can be wrong is a WeightsError naming the file."""
    tensors, digest = files.state_dict(path)
    spandrel_model = detect(tensors, path.name)
    check_super_resolution(spandrel_model, path.name)
    record = {
        "sha256": digest,
        "name": path.stem,
        "path": str(path.resolve()),
        "architecture": spandrel_model.architecture.name,
        "scale": spandrel_model.scale,
        "parameters": sum(p.numel() for p in spandrel_model.model.parameters()),
        "size": path.stat().st_size,
    }
    return spandrel_model, record


def detect(tensors: dict[str, torch.Tensor], shown: str) -> Any:
    """spandrel's model for this state dict (its MIT core registry only)."""
    from spandrel import MAIN_REGISTRY, ModelLoader, UnsupportedModelError

    try:
        with warnings.catch_warnings():  # architecture code warns about torch internals, not the user's file
            warnings.simplefilter("ignore")
            return ModelLoader(registry=MAIN_REGISTRY).load_from_state_dict(tensors)
    except UnsupportedModelError:
        raise WeightsError(f"{shown}: not a model architecture spandrel knows") from None
    except Exception as exc:  # a known architecture whose tensors do not fit it (edited, partial file)
        text = str(exc).strip().splitlines()
        raise WeightsError(
            f"{shown}: the weights do not fit the architecture they look like ({text[0][:200] if text else exc!r})"
        ) from None


def check_super_resolution(spandrel_model: Any, shown: str) -> None:
    from spandrel import ImageModelDescriptor

    arch = spandrel_model.architecture.name
    if not isinstance(spandrel_model, ImageModelDescriptor):
        raise WeightsError(f"{shown}: a {arch} {spandrel_model.purpose.lower()} model, not super-resolution")
    if spandrel_model.purpose != "SR" or spandrel_model.scale < 2:
        what = {"FaceSR": "face restoration", "Restoration": "×1 restoration (denoise, deblur …)"}
        kind = what.get(spandrel_model.purpose, spandrel_model.purpose)
        raise WeightsError(f"{shown}: a {arch} {kind} model, not super-resolution")
    channels = (spandrel_model.input_channels, spandrel_model.output_channels)
    if channels != (3, 3):
        raise WeightsError(
            f"{shown}: a {arch} model for {channels[0]} channels in and {channels[1]} out;"
            " vsrup runs RGB models (3 and 3)"
        )
