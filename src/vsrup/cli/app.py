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


def _plain_types() -> None:
    """Typer 0.2x prints a type column in `--help`: `<bool>` beside every flag, `<list[Path]>` for the
    paths argument (and `{paths}...` in the usage line), `<str>` and `<int>` everywhere. Show what a
    user types instead: nothing for a flag, the metavar where one is given, else click's capitals."""
    try:
        from typer.core import TyperArgument, TyperOption
    except ImportError:  # an older Typer without the column
        return
    names = {"<int>": "INTEGER", "<float>": "FLOAT", "<str>": "TEXT", "<Path>": "PATH"}
    shown = TyperOption.display_type_rich

    def option_type(self, ctx):
        if self.metavar is not None:
            return self.metavar or None
        if self.is_flag:
            return None
        label = shown(self, ctx)
        if label is None:
            return None
        if "|" in label:  # choices
            return "[" + label.strip("<>") + "]"
        return names.get(label, label.strip("<>").upper())

    def argument_type(self, ctx):
        return None  # the argument's metavar (its name column) says it all

    if hasattr(TyperOption, "display_type_rich"):
        TyperOption.display_type_rich = option_type
    if hasattr(TyperArgument, "display_type_rich"):
        TyperArgument.display_type_rich = argument_type

    def argument_name(self):  # `{paths}...` in the usage line: PATHS..., or the metavar as written
        if self.metavar:
            return self.metavar
        name = self.name.upper() + ("..." if self.nargs != 1 else "")
        return name if self.required else f"[{name}]"

    for method in ("_usage_display_name", "_rich_display_name"):
        if hasattr(TyperArgument, method):
            setattr(TyperArgument, method, argument_name)


_plain_types()
