"""The command-line options that several commands share, each declared once.

A command takes them as `model: options.Model = "tiny"`; the default stays with the command (the
upscale's tile is automatic, the preview's off), the name, short flag, environment variable and
help text live here.
"""

from __future__ import annotations

from typing import Annotated

import typer

Model = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        envvar="VSRUP_MODEL",
        help="Model name (see `vsrup models`) or a converted bundle folder.",
    ),
]
Scale = Annotated[int, typer.Option("--scale", "-s", envvar="VSRUP_SCALE", help="Upscaling factor: 2 or 4.")]
Device = Annotated[str, typer.Option("--device", envvar="VSRUP_DEVICE", help="auto, cpu, cuda or cuda:N.")]
Dtype = Annotated[
    str,
    typer.Option("--dtype", envvar="VSRUP_DTYPE", help="auto (fp16 on GPU, fp32 on CPU), fp16, bf16, fp32."),
]
Tile = Annotated[
    int,
    typer.Option(
        "--tile",
        envvar="VSRUP_TILE",
        help="Spatial tile size in latent pixels (-1: chosen from the device's free memory, 0: no tiling).",
    ),
]
Window = Annotated[int, typer.Option("--window", help="Frames per temporal window (0: the model's default).")]
Overlap = Annotated[
    int, typer.Option("--overlap", help="Frames shared by consecutive windows (-1: the model's default).")
]
Compile = Annotated[
    bool,
    typer.Option(
        "--compile",
        help="torch.compile the model's heavy modules (CUDA only; slow first window, faster after).",
    ),
]
MaxMemory = Annotated[
    float | None,
    typer.Option(
        "--max-memory",
        envvar="VSRUP_MAX_MEMORY",
        help="GiB of device memory to use at most, per process (tiles and window are sized to it; on "
        "CUDA the allocator enforces it). For a shared GPU, or to check that a job fits a smaller card.",
        show_default=False,
    ),
]
Overwrite = Annotated[bool, typer.Option("--overwrite", "-y", help="Replace an existing output file.")]


def window_or_none(window: int) -> int | None:
    return window or None


def overlap_or_none(overlap: int) -> int | None:
    return None if overlap < 0 else overlap


def tile_or_none(tile: int) -> int | None:
    return None if tile < 0 else tile
