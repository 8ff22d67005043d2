"""The Typer application every command registers on, and the state of the root options."""

from __future__ import annotations

import logging

import typer

from vsrup import __version__

ROOT_HELP = """Upscale videos with one-step latent diffusion super-resolution.

[bold]Environment[/bold] [dim](a command-line option always wins)[/dim]

  VSRUP_MODEL, VSRUP_SCALE, VSRUP_DEVICE, VSRUP_DTYPE, VSRUP_TILE, VSRUP_MAX_MEMORY, VSRUP_PROGRESS:
  defaults for the options of the same name (each command's --help shows which it reads).

  VSRUP_CACHE: converted weights (default $XDG_CACHE_HOME/vsrup or ~/.cache/vsrup);
  VSRUP_WEIGHTS: another model registry file; HF_HOME, HF_HUB_OFFLINE: the Hugging Face cache.

[bold]Shell completion[/bold]

  vsrup --install-completion      [dim]# bash, zsh, fish or PowerShell; then open a new shell[/dim]

  vsrup --show-completion         [dim]# print the script to install it yourself[/dim]
"""

app = typer.Typer(
    name="vsrup",
    help=ROOT_HELP,
    add_completion=True,  # --install-completion / --show-completion (documented above)
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vsrup {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    state["debug"] = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="vsrup: %(message)s")
