"""The CLI's conveniences: --version, shell completion and environment-variable defaults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from helpers import make_clip
from typer.testing import CliRunner

from vsrup.cli import app

runner = CliRunner()


def test_version_is_the_installed_package_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"vsrup {version('vsrup')}"


def complete(words: str) -> list[str]:
    """Ask the real console script what bash completion would offer for `words`."""
    env = os.environ | {
        "_VSRUP_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
    }
    script = Path(sys.executable).parent / "vsrup"  # the installed entry point, as a shell runs it
    done = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=60)
    return done.stdout.split()


def test_shell_completion_offers_commands_and_choices():
    assert complete("vsrup pre") == ["preview"]
    assert complete("vsrup upscale --compare ") == ["split", "side"]
    assert "--dry-run" in complete("vsrup upscale --dry")


def test_environment_sets_option_defaults_and_options_win(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=8, size=(32, 32))
    args = ["upscale", str(clip), str(tmp_path / "o.mp4"), "--dry-run", "--progress", "json"]
    env = {"VSRUP_MODEL": "bicubic", "VSRUP_SCALE": "2", "VSRUP_DEVICE": "cpu", "VSRUP_DTYPE": "fp32"}
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    est = json.loads(result.output.splitlines()[-1])
    assert (est["model"], est["scale"], est["device"], est["output_size"]) == ("bicubic", 2, "cpu", [64, 64])
    result = runner.invoke(app, [*args, "--scale", "4"], env=env)
    assert json.loads(result.output.splitlines()[-1])["output_size"] == [128, 128]


def test_root_help_documents_environment_and_completion():
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "120"})
    for text in ("VSRUP_MODEL", "VSRUP_DEVICE", "VSRUP_CACHE", "--install-completion"):
        assert text in result.output
