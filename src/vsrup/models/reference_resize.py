"""The references' pre- and post-processing, exactly: PIL resizes on 8-bit images."""

from __future__ import annotations

import torch

# The references' pre- and post-processing: PIL on 8-bit images
#
# DLoRAL (src/test_DLoRAL.py) and OSEDiff (test_osediff.py) prepare each frame with PIL: small
# frames are enlarged (BICUBIC, sizes floored by int()) until ×scale reaches the processing size,
# enlarged ×scale (BICUBIC), and squeezed to a multiple of 8 with LANCZOS; every resize rounds to
# 8 bit. PIL's bicubic is a = −0.5 and antialiases when shrinking; torch's is a = −0.75, no
# antialias: the models were trained on PIL's kind, so that is what they get.


def reference_sizes(width: int, height: int, scale: int, process_size: int) -> list[tuple[int, int]]:
    """The (width, height) after each of the references' resizes, in order: [enlarged to the
    processing size, if it is needed], ×scale, squeezed to a multiple of 8 (at least 8)."""
    sizes = []
    side = process_size // scale if process_size else 0
    if width < side or height < side:
        factor = side / min(width, height)  # the references' float arithmetic, floored by int()
        width, height = int(factor * width), int(factor * height)
        sizes.append((width, height))
    width, height = width * scale, height * scale
    sizes.append((width, height))
    sizes.append((max(8, width - width % 8), max(8, height - height % 8)))
    return sizes


def _to_planes(frame: torch.Tensor) -> list:
    """One frame (3, h, w) in [0, 1] as PIL images: one 8-bit RGB image when the values are
    multiples of 1/255 (8-bit video: exact), else three 32-bit float planes (no 8-bit rounding)."""
    from PIL import Image

    x = frame.detach().float().clamp(0, 1).mul(255).cpu()
    q = x.round()
    # fp16 frames hold k/255 only to ~0.06 of a level; a 10-bit frame is off by up to 0.4 level.
    tolerance = min(0.25, max(1e-3, 255 * torch.finfo(frame.dtype).eps))
    if (x - q).abs().max() <= tolerance:
        return [Image.fromarray(q.to(torch.uint8).permute(1, 2, 0).contiguous().numpy(), "RGB")]
    return [Image.fromarray(plane.numpy(), "F") for plane in x]


def _from_planes(planes: list) -> torch.Tensor:
    """(3, h, w) float32 in [0, 1] from `_to_planes` images, divided as torchvision's ToTensor."""
    import numpy as np

    if len(planes) == 1:
        return torch.from_numpy(np.asarray(planes[0]).copy()).permute(2, 0, 1).float().div(255)
    return torch.stack([torch.from_numpy(np.asarray(p).copy()) for p in planes]).div(255).clamp(0, 1)


def pil_resize(frames: torch.Tensor, sizes: list[tuple[int, int]], filters: list[str]) -> torch.Tensor:
    """Resize each frame (T, 3, h, w) in [0, 1] with PIL through `sizes` ((width, height) each, with
    its filter: "bicubic" or "lanczos"), rounding to 8 bit after each resize as the references do
    (frames that are not 8-bit are resized as float planes, unrounded). Returns float32 on the CPU."""
    from PIL import Image

    resample = {"bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS}
    out = []
    for frame in frames:
        planes = _to_planes(frame)
        for size, name in zip(sizes, filters, strict=True):
            planes = [p.resize(size, resample[name]) for p in planes]  # same size: PIL copies
        out.append(_from_planes(planes))
    return torch.stack(out)


def reference_enlarge(frames: torch.Tensor, scale: int, process_size: int) -> torch.Tensor:
    """The references' model input for frames (T, 3, h, w) in [0, 1]: float32 in [0, 1] on the CPU,
    (T, 3, H, W) with H, W multiples of 8 (see `reference_sizes`)."""
    height, width = frames.shape[-2:]
    sizes = reference_sizes(width, height, scale, process_size)
    return pil_resize(frames, sizes, ["bicubic"] * (len(sizes) - 1) + ["lanczos"])


def truncate_8bit(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] → multiples of 1/255, truncated as torchvision's ToPILImage does (`mul(255).byte()`)."""
    return images.float().mul(255).to(torch.uint8).float().div(255)
