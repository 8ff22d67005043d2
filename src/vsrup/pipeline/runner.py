"""The model on its device: frames in, upscaled frames out, one window at a time.

`Runner` owns what the stream loop should not care about: the device and dtype, moving frames to
the device (pinned, non-blocking on CUDA) and results back (narrowed to 8/16 bit on the device), the
compiled model's fixed window size, and the CUDA out-of-memory fallback that halves the tile and
runs the same window again. The plan is the one source of the tile, and this is the one place that
hands it to the model: as the argument of `upscale`, never as state written into the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vsrup.devices import is_out_of_memory
from vsrup.errors import DeviceError
from vsrup.pipeline.plan import Plan, smaller_tile


@dataclass
class Runner:
    model: object  # a models.base.VSRModel
    device: torch.device
    dtype: torch.dtype
    pad_windows: bool = False  # a compiled CUDA model: give short windows the usual size

    def run(self, images: list[np.ndarray], plan: Plan) -> tuple[torch.Tensor, Plan]:
        """Upscale one window of images; returns the outputs (T, 3, H, W) and the plan they were made
        with (a smaller tile after a CUDA out-of-memory)."""
        batch = to_tensor(images, self.device, self.dtype)
        real = batch.shape[0]
        if self.pad_windows and real < plan.window:
            # A compiled model recompiles for every new batch size: give the short last window the
            # usual size by repeating its last frame (which is what a window end sees anyway).
            batch = torch.cat([batch, batch[-1:].expand(plan.window - real, *batch.shape[1:])])
        while True:
            try:
                with torch.inference_mode():
                    return self.model.upscale(batch, plan.tile)[:real], plan
            except RuntimeError as exc:
                if not self.recoverable(exc):
                    raise
            # Outside the except block, so the failed pass's tensors (held by the traceback) are freed.
            torch.cuda.empty_cache()
            described = self.model.description
            plan = smaller_tile(plan, described.tiling)
            if plan is None:
                if described.tiling.space == "none":
                    raise DeviceError(
                        f"out of GPU memory (the {described.name} model takes whole frames); try --window 2"
                    )
                raise DeviceError("out of GPU memory even with the smallest tiles; try --window 2")

    def recoverable(self, exc: BaseException) -> bool:
        """Only CUDA out-of-memory is retried with smaller tiles (host OOM cannot be caught)."""
        return self.device.type == "cuda" and is_out_of_memory(exc)


def to_tensor(images: list[np.ndarray], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(T, H, W, 3) uint8/uint16 images → (T, 3, H, W) floats in [0, 1] on the device."""
    stacked = torch.from_numpy(np.stack(images))
    peak = 65535.0 if stacked.dtype == torch.uint16 else 255.0
    if stacked.dtype == torch.uint16:
        stacked = stacked.to(torch.int32)
    if device.type == "cuda":
        stacked = stacked.pin_memory().to(device, non_blocking=True)
    # 16-bit samples are scaled in fp32: fp16 cannot hold 65535 (it becomes inf).
    scale_dtype = torch.float32 if peak > 255 else dtype
    return (stacked.permute(0, 3, 1, 2).to(scale_dtype) / peak).to(dtype).contiguous()


def to_image(frame: torch.Tensor, dtype: np.dtype) -> np.ndarray:
    """(3, H, W) floats in [0, 1] → (H, W, 3) uint8 or uint16 for the encoder.

    Rounding and narrowing happen on the frame's device: from a GPU a uint8 frame crosses the bus
    in a quarter of the bytes of a float one, and the host does no per-pixel float work."""
    peak = 65535.0 if dtype == np.uint16 else 255.0
    narrow = torch.uint8 if dtype == np.uint8 else torch.int32  # torch has no general uint16 ops
    scaled = (frame.float().clamp(0, 1) * peak).round().to(narrow).permute(1, 2, 0).cpu()
    return scaled.numpy().astype(dtype, copy=False)


class HostImage:
    """A frame on its way from the GPU: a non-blocking copy into pinned host memory, and the event
    that marks its end. The encoder thread waits for it, so the main thread can queue the next
    window on the GPU instead of waiting for each frame to cross the bus."""

    def __init__(self, frame: torch.Tensor, dtype: np.dtype) -> None:
        peak = 65535.0 if dtype == np.uint16 else 255.0
        narrow = torch.uint8 if dtype == np.uint8 else torch.int32
        image = (frame.float().clamp(0, 1) * peak).round().to(narrow).permute(1, 2, 0).contiguous()
        self.host = torch.empty(image.shape, dtype=narrow, pin_memory=True)
        self.host.copy_(image, non_blocking=True)
        self.done = torch.cuda.Event()
        self.done.record(torch.cuda.current_stream(frame.device))  # the model's GPU, not GPU 0
        self.dtype = dtype

    def array(self) -> np.ndarray:
        self.done.synchronize()
        return self.host.numpy().astype(self.dtype, copy=False)


def to_host(frame: torch.Tensor, dtype: np.dtype) -> np.ndarray | HostImage:
    """`to_image`, except that a CUDA frame is copied without waiting (see `HostImage`)."""
    return HostImage(frame, dtype) if frame.device.type == "cuda" else to_image(frame, dtype)


def host_array(image: np.ndarray | HostImage) -> np.ndarray:
    return image.array() if isinstance(image, HostImage) else image
