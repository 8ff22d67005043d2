"""`vsrup models`, `vsrup download-weights` and `vsrup convert`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from vsrup.cli.app import app


class BundleDtype(str, Enum):
    fp16 = "fp16"
    bf16 = "bf16"
    fp32 = "fp32"


MODELS_HELP = """List models with their download size, license and whether each is ready to use.

Every model `--model NAME` finds, then the base weights some of them are converted from. Sizes
marked ≈ are estimates for files weights.toml does not pin yet.

[bold]Examples[/bold]

  vsrup models

  vsrup models --json

  vsrup models --add 4x-MyModel.pth   [dim]# a community model file, listed from now on[/dim]
"""


@app.command("models", help=MODELS_HELP)
def models_command(
    json_: bool = typer.Option(False, "--json", help="Print a JSON list, one object per model."),
    add: Path = typer.Option(
        None,
        "--add",
        help="Check a community model file (.pth, .pt, .ckpt, .safetensors), convert a pickle to "
        "safetensors once, and list it from now on.",
        show_default=False,
    ),
) -> None:
    import json

    from vsrup import weights

    if add is not None:
        from vsrup.models.community import add as add_file
        from vsrup.weights.community import count

        record = add_file(add)
        typer.echo(
            f"{record['name']}: {record['architecture']} ×{record['scale']}, "
            f"{count(record['parameters'])} parameters; use --model {record['path']}"
        )
        return

    rows = model_rows()
    if json_:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table

    # At 80 columns the text columns wrap (fold a long word) instead of cutting it with "…".
    # A model's name is typed by the user: never folded or cut.
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("model", no_wrap=True, min_width=max(len(str(row["name"])) for row in rows))
    table.add_column("ready")
    table.add_column("size")
    table.add_column("license", overflow="fold", max_width=16)
    table.add_column("source", overflow="fold")
    table.add_column("description", overflow="fold")
    for row in rows:
        size = weights.describe_size(row)
        table.add_row(
            row["name"],
            "yes" if row["ready"] else "no",
            size,
            row["license"],
            row["source"],
            row["description"],
        )
    Console().print(table)


def model_rows() -> list[dict]:
    """The catalogue's models (with their weights' status where weights.toml lists them), then the
    weights.toml entries that are no model of their own (base weights used by conversion), then the
    community model files used or added (`--add`)."""
    from vsrup import models, weights
    from vsrup.weights import community

    listed = {row["name"]: row for row in weights.list_models()}
    rows = []
    for name in models.names():
        entry = models.find(name)
        rows.append(listed.pop(name, None) or weights.builtin_status(name, entry.summary, entry.licence))
    return rows + list(listed.values()) + community.listed()


def convert_checkpoint(*args, **options) -> Path:
    """The converter `weights` runs (it builds the networks, so it lives in `models`); imported
    only when a conversion runs: torch and the checkpoint readers load only then."""
    from vsrup.models.convert import convert

    return convert(*args, **options)


DOWNLOAD_HELP = """Download, verify (sha256 + size) and convert model weights once; later runs load them offline.

[bold]Examples[/bold]

  vsrup download-weights dloral

  vsrup download-weights dloral --local-file ~/Downloads/model.pkl

  vsrup download-weights dloral --local-file model.pkl --base-dir ~/sd21-base   [dim]# no network[/dim]

  HF_HUB_OFFLINE=1 vsrup download-weights --all   [dim]# only what is cached already[/dim]
"""


@app.command("download-weights", help=DOWNLOAD_HELP)
def download_weights_command(
    names: list[str] = typer.Argument(
        None, help="Models to download (see `vsrup models`).", show_default=False
    ),
    all_: bool = typer.Option(False, "--all", help="Download every model in weights.toml."),
    cache_dir: Path = typer.Option(
        None, "--cache-dir", help="Hugging Face hub cache to use (default: $HF_HUB_CACHE, else $HF_HOME/hub)."
    ),
    revision: str = typer.Option(
        None, help="Hub commit, branch or tag instead of the pinned revision (one model)."
    ),
    local_file: Path = typer.Option(
        None, "--local-file", help="Your own copy of the checkpoint (file, or a folder in the repo's layout)."
    ),
    trust_unverified: bool = typer.Option(
        False,
        "--trust-unverified",
        help="Download files that weights.toml pins no sha256 for (their sha256 is printed).",
    ),
    base_dir: Path = typer.Option(
        None,
        "--base-dir",
        help="Your own Stable Diffusion 2.1-base folder (diffusers layout) instead of downloading sd21-base.",
        show_default=False,
    ),
    dtype: BundleDtype = typer.Option(
        None,
        "--dtype",
        help="Precision of the converted weights (default fp16; fp32 keeps the reference weights exactly).",
        show_default=False,
    ),
) -> None:
    from vsrup import weights
    from vsrup.progress import DownloadBars

    with DownloadBars() as bars:
        done = weights.download_weights(
            names or [],
            all_,
            cache_dir,
            revision,
            local_file,
            trust_unverified,
            bars.update,
            base_dir=base_dir,
            dtype=dtype and dtype.value,
            converter=convert_checkpoint,
        )
    for row in done:
        typer.echo(f"{row['name']}: ready  {row['path']}")


CONVERT_HELP = """Convert an official checkpoint you already have, with your own Stable Diffusion 2.1-base
folder (diffusers layout: unet/, vae/, text_encoder/, tokenizer/): no network needed.

The checkpoint is read with torch.load(weights_only=True), its LoRA adapters merged, and the
result written as one safetensors bundle. Without --out it goes where `--model NAME` finds it.

[bold]Examples[/bold]

  vsrup convert dloral --checkpoint model.pkl --base ~/sd21-base

  vsrup convert osediff --checkpoint osediff.pkl --base ~/sd21-base --dtype fp32 --out osediff-fp32

  vsrup upscale in.mp4 out.mp4 --model osediff-fp32   [dim]# a bundle folder works as --model[/dim]
"""


@app.command("convert", help=CONVERT_HELP)
def convert_command(
    name: str = typer.Argument(..., help="The model: dloral or osediff."),
    checkpoint: Path = typer.Option(
        ..., "--checkpoint", help="DLoRAL's model.pkl or OSEDiff's osediff.pkl.", show_default=False
    ),
    base: Path = typer.Option(
        ..., "--base", help="Your Stable Diffusion 2.1-base folder (diffusers layout).", show_default=False
    ),
    out: Path = typer.Option(
        None, "--out", help="Bundle folder to write (default: the vsrup cache).", show_default=False
    ),
    dtype: BundleDtype = typer.Option(
        "fp16",
        "--dtype",
        help="Precision of the converted weights (fp32 keeps the reference weights exactly).",
    ),
) -> None:
    from vsrup import weights

    folder = weights.convert_local(name, checkpoint, base, out, dtype.value, converter=convert_checkpoint)
    typer.echo(f"{name}: ready  {folder}")
