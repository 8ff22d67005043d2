"""The command-line options that several commands share, each declared once.

A command takes them as `model: options.Model = "tiny"`; the default stays with the command (the
upscale's tile is automatic, the preview's off), the name, short flag, environment variable, help
text and help panel live here.

Help must read at 80 columns: rich gives each panel its own column widths, so options are grouped
into the panels below (a long name in one panel no longer squeezes every help text), metavars
are short (N, NAME) and each help text says one thing; the README has the long story.
"""

from __future__ import annotations

from typing import Annotated

import typer

MODEL_PANEL = "Model"
MEMORY_PANEL = "Device, memory and windows"
ENCODE_PANEL = "Output encoding"
FILES_PANEL = "Files, ranges and batches"
SHOW_PANEL = "What is shown"
SPLIT_PANEL = "Split runs"
DIFFUSION_PANEL = "Diffusion models (dloral, osediff)"

Model = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        envvar="VSRUP_MODEL",
        metavar="NAME",
        help="A model of `vsrup models`, a converted bundle folder, or a model file "
        "(.pth, .pt, .ckpt, .safetensors).",
        rich_help_panel=MODEL_PANEL,
    ),
]
Scale = Annotated[
    int,
    typer.Option(
        "--scale",
        "-s",
        envvar="VSRUP_SCALE",
        metavar="N",
        help="A scale the model offers (tiny: 2, 4; default 4; a model file: its own).",
        rich_help_panel=MODEL_PANEL,
    ),
]
Device = Annotated[
    str,
    typer.Option(
        "--device",
        envvar="VSRUP_DEVICE",
        metavar="DEV",
        help="auto, cpu, cuda or cuda:N.",
        rich_help_panel=MEMORY_PANEL,
    ),  # fmt: skip
]
Dtype = Annotated[
    str,
    typer.Option(
        "--dtype",
        envvar="VSRUP_DTYPE",
        metavar="TYPE",
        help="auto (fp16 on GPU, fp32 on CPU), fp16, bf16, fp32.",
        rich_help_panel=MEMORY_PANEL,
    ),  # fmt: skip
]
Tile = Annotated[
    int,
    typer.Option(
        "--tile",
        envvar="VSRUP_TILE",
        metavar="N",
        help="Tile size in the model's tile pixels; -1: from free memory, 0: off.",
        rich_help_panel=MEMORY_PANEL,
    ),
]
Window = Annotated[
    int,
    typer.Option(
        "--window",
        metavar="N",
        help="Frames per temporal window (0: the model's).",
        rich_help_panel=MEMORY_PANEL,
    ),
]
Overlap = Annotated[
    int,
    typer.Option(
        "--overlap",
        metavar="N",
        help="Frames shared by neighbouring windows (-1: the model's).",
        rich_help_panel=MEMORY_PANEL,
    ),  # fmt: skip
]
Compile = Annotated[
    bool,
    typer.Option(
        "--compile",
        help="torch.compile the heavy modules (CUDA; slow first window, faster after).",
        rich_help_panel=MEMORY_PANEL,
    ),
]
MaxMemory = Annotated[
    float | None,
    typer.Option(
        "--max-memory",
        envvar="VSRUP_MAX_MEMORY",
        metavar="GIB",
        help="Device memory to use at most, per process; tiles and window fit it.",
        show_default=False,
        rich_help_panel=MEMORY_PANEL,
    ),
]
Overwrite = Annotated[
    bool, typer.Option("--overwrite", "-y", help="Replace an existing output.", rich_help_panel=FILES_PANEL)
]


def window_or_none(window: int) -> int | None:
    return window or None


def overlap_or_none(overlap: int) -> int | None:
    return None if overlap < 0 else overlap


def tile_or_none(tile: int) -> int | None:
    return None if tile < 0 else tile
