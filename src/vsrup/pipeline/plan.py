"""The one plan of a run: window, overlap and tile for one video on one device, as a frozen value.

`make_plan` is the only place these are decided: the user's settings win; what they leave open
comes from the model's description (`models.base.ModelDescription`: its neighbourhood or context,
how it tiles, its memory per output pixel) and the free memory (`tuning`). Whoever needs the numbers (the
stream loop, the segment cutter, resume, the estimate, bench) is handed this value; nobody
rewrites it. A changed plan is a new value (`dataclasses.replace`), e.g. a smaller tile after a
CUDA out-of-memory, or the plan a resumed job adopts from its earlier run.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from vsrup import tuning
from vsrup.errors import UsageError
from vsrup.models.base import ModelDescription, Tiling
from vsrup.pipeline.windows import check_window

MAX_GPU_WINDOW = 16


@dataclass(frozen=True)
class Plan:
    """What the stream loop runs with, and why (printed by `--verbose`)."""

    window: int
    overlap: int
    tile: int  # in the model's tiling space (latent or input pixels); 0: whole frames
    tile_space: str = "latent"  # that space, as the model's description says
    # (before, after): the frames an output depends on, for a model that declares them (exact
    # join, see `pipeline.stream`); None: the whole window (blended join).
    context: tuple[int, int] | None = None
    cuts: bool = False  # restart the windows at shot changes
    device: str = "cpu"
    dtype: str = "float32"
    free_mib: float | None = None
    estimate_mib: float | None = None
    notes: tuple[str, ...] = ()

    @property
    def stride(self) -> int:
        return self.window - self.overlap

    def describe(self) -> str:
        free = f", {self.free_mib / 1024:.1f} GiB free" if self.free_mib is not None else ""
        estimate = f" (≈{self.estimate_mib:.0f} MiB per window)" if self.estimate_mib is not None else ""
        tile = f"tile {self.tile} {self.tile_space} px" if self.tile else "tile off (whole frame)"
        text = f"device {self.device}{free}, {self.dtype}, window {self.window}, overlap {self.overlap}, {tile}{estimate}"
        return "; ".join([text, *self.notes])

    def noted(self, *notes: str) -> Plan:
        return replace(self, notes=(*self.notes, *notes))


def default_window(model: ModelDescription, window: int | None, overlap: int | None) -> tuple[int, int]:
    """(window, overlap): the user's, else the model's defaults (a temporal model gets 8 frames
    overlapping by twice its context; a per-frame one 4 frames, no overlap). A model that declares
    its neighbourhood overlaps by exactly that: more would only recompute frames."""
    size = window or (8 if model.temporal else 4)
    if overlap is not None:
        check_window(size, overlap)  # a bad --overlap is an error even where it would be ignored
    if model.neighbourhood is not None:
        shared = sum(model.neighbourhood)
        if size <= shared:
            raise UsageError(f"--window must be at least {shared + 1} for the {model.name} model")
    else:
        shared = overlap if overlap is not None else min(2 * model.context, size - 1)
    check_window(size, shared)
    return size, shared


def check_tile(model: ModelDescription, tile: int | None) -> None:
    """One rule and one message for a user's tile: 0 (off) or at least the model's smallest."""
    smallest = max(model.tiling.smallest, 1)
    if tile is not None and (tile < 0 or 0 < tile < smallest):
        raise UsageError(
            f"--tile must be 0 (off) or at least {smallest} for the {model.name} model (got {tile})"
        )


def make_plan(model: ModelDescription, device: torch.device, dtype: torch.dtype, window: int | None,
              overlap: int | None, tile: int | None, size: tuple[int, int] | None,
              free: int | None | str = "measure", limit: int | None = None,
              scene_cuts: bool = True) -> Plan:  # fmt: skip
    """The plan for one video of `size` (width, height) with the model `model` describes.
    `window`/`overlap`/`tile` as the user gave them (None: automatic); `scene_cuts`: restart the
    windows at shot changes (temporal models). An explicit tile is kept; an automatic one is the
    largest that fits the free memory; an automatic window may grow on a GPU with room to spare
    (windows overlap, so a longer one recomputes a smaller share of its frames). `free` overrides
    the measured free memory (tests); `limit` (bytes, `--max-memory`) caps it."""
    check_tile(model, tile)
    base, shared = default_window(model, window, overlap)
    ignored = model.tiling.space == "none" and bool(tile)  # a model that takes whole frames only
    plan = choose_plan(
        model, device, dtype, base, shared, 0 if ignored else tile, size, window is None, free, limit
    )
    plan = replace(plan, context=model.neighbourhood, cuts=scene_cuts and model.temporal)
    if ignored:
        plan = plan.noted(f"tile off: the {model.name} model takes whole frames (--tile {tile} ignored)")
    if plan.context is not None and overlap is not None and overlap != plan.overlap:
        plan = plan.noted(
            f"overlap {plan.overlap}: the frames each output depends on (--overlap {overlap} ignored)"
        )
    return plan


def choose_plan(model: ModelDescription, device: torch.device, dtype: torch.dtype, window: int, overlap: int,
                tile: int | None, size: tuple[int, int] | None, auto_window: bool = False,
                free: int | None | str = "measure", limit: int | None = None) -> Plan:  # fmt: skip
    """`make_plan` once the base window is known (see there)."""
    if free == "measure":
        free = tuning.free_memory_bytes(device, limit)
    elif free is not None and limit is not None:
        free = min(free, limit)
    plan = Plan(
        window=window,
        overlap=overlap,
        tile=tile or 0,
        tile_space=model.tiling.space,
        device=tuning.device_name(device),
        dtype=str(dtype).removeprefix("torch."),
        free_mib=None if free is None else free / 2**20,
    )
    if size is None:
        return plan
    width, height = size
    share = tuning.MEMORY_SHARE[device.type]
    if auto_window and device.type == "cuda" and tile is None and free is not None:
        grown = window
        while 2 * grown <= MAX_GPU_WINDOW and (
            tuning.estimate_bytes(model, 2 * grown, height, width, dtype) <= free * share
        ):
            grown *= 2
        if grown != window:
            plan = replace(plan, window=grown).noted(f"window {window} → {grown}: room for it untiled")
    estimate = tuning.estimate_bytes(model, plan.window, height, width, dtype)
    plan = replace(plan, estimate_mib=estimate / 2**20)
    if tile is None:
        chosen, _need, reason = tuning.choose_tile(model, plan.window, height, width, dtype, free, share)
        return replace(plan, tile=chosen).noted(f"tile chosen from free memory: {reason}")
    return plan.noted("tile set by the user")


def smaller_tile(plan: Plan, tiling: Tiling) -> Plan | None:
    """The plan after a CUDA out-of-memory: half the tile (whole frames → 128), or None when the
    tile cannot shrink any more (below the model's smallest tile, or a model that does not tile)."""
    smallest = max(tiling.smallest, 8)
    if tiling.space == "none":
        return None
    if plan.tile == 0:
        return replace(plan, tile=max(128, smallest))
    if plan.tile // 2 >= smallest:
        return replace(plan, tile=plan.tile // 2)
    return None
