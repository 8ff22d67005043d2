"""`vsrup models` and `vsrup download-weights`."""

from __future__ import annotations

from pathlib import Path

import typer

from vsrup.cli.app import app

MODELS_HELP = """List models with their size, license and whether each is ready to use.

[bold]Examples[/bold]

  vsrup models

  vsrup models --json
"""


@app.command("models", help=MODELS_HELP)
def models_command(
    json_: bool = typer.Option(False, "--json", help="Print a JSON list, one object per model."),
) -> None:
    import json

    from vsrup import weights

    rows = weights.list_models()
    if json_:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("model", "ready", "size", "license", "source", "description")
    for row in rows:
        size = f"{row['size'] / 1e6:,.0f} MB" if row.get("size") else "?"
        table.add_row(
            row["name"],
            "yes" if row["ready"] else "no",
            size,
            row["license"],
            row["source"],
            row["description"],
        )
    Console().print(table)


DOWNLOAD_HELP = """Download, verify (sha256 + size) and convert model weights once; later runs load them offline.

[bold]Examples[/bold]

  vsrup download-weights dloral

  vsrup download-weights dloral --local-file ~/Downloads/model.pkl

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
        help="Use files that weights.toml pins no sha256 for (their sha256 is printed).",
    ),
) -> None:
    from vsrup import weights
    from vsrup.progress import DownloadBars

    with DownloadBars() as bars:
        done = weights.download_weights(
            names or [], all_, cache_dir, revision, local_file, trust_unverified, bars.update
        )
    for row in done:
        typer.echo(f"{row['name']}: ready  {row['path']}")
