"""The command line as a user meets it: help with examples, exit codes, join."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import decode_all, make_clip, packet_bytes

from vsrup.io.probe import probe


def vsrup(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vsrup.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_upscale_help_shows_examples():
    result = vsrup("upscale", "--help")
    assert result.returncode == 0
    assert "vsrup upscale in.mp4 out.mp4" in result.stdout


def test_upscale_help_reads_at_80_columns():
    """Issue 25: at 80 columns the help was 258 lines, every help text squeezed into a column of
    about 18 characters beside the widest option name. Panels size their columns apart."""
    result = subprocess.run(
        [sys.executable, "-m", "vsrup.cli", "upscale", "--help"], capture_output=True, text=True,
        timeout=300, env=os.environ | {"COLUMNS": "80"},
    )  # fmt: skip
    lines = result.stdout.splitlines()
    assert result.returncode == 0 and len(lines) < 150, len(lines)
    assert "…" not in result.stdout  # no option name cut short
    # A wrapped help text goes on under its column: where it starts says how wide that column is.
    wrapped = [line for line in lines if line.startswith("│    ") and line.strip("│ ")]
    assert wrapped
    for line in wrapped:
        column = len(line) - len(line[1:].lstrip()) - 1
        assert len(line) <= 80 and 80 - 2 - column >= 36, line


def test_version_and_missing_argument_exit_codes():
    assert vsrup("--version").stdout.startswith("vsrup ")
    result = vsrup("upscale", "only-one-path.mp4")
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_join_rebuilds_the_clip_from_segments(tmp_path: Path):
    src = make_clip(tmp_path / "in.mp4", frames=14, audio=True)
    common = ["-m", "bicubic", "-s", "2", "-q", "--codec", "ffv1"]
    assert vsrup("upscale", str(src), str(tmp_path / "a.mkv"), "--end", "6f", *common).returncode == 0
    assert vsrup("upscale", str(src), str(tmp_path / "b.mkv"), "--start", "6f", *common).returncode == 0
    assert vsrup("upscale", str(src), str(tmp_path / "whole.mkv"), *common).returncode == 0
    joined = tmp_path / "joined.mkv"
    result = vsrup("join", str(src), str(tmp_path / "a.mkv"), str(tmp_path / "b.mkv"), str(joined))
    assert result.returncode == 0, result.stderr
    pts_joined, frames_joined = decode_all(joined)
    pts_whole, frames_whole = decode_all(tmp_path / "whole.mkv")
    assert pts_joined == pts_whole and len(pts_joined) == 14
    assert all((a == b).all() for a, b in zip(frames_joined, frames_whole, strict=True))
    assert packet_bytes(joined, "audio") == packet_bytes(tmp_path / "whole.mkv", "audio")
    assert probe(joined).frame_rate == probe(src).frame_rate


def test_train_and_eval_commands_reach_their_own_options():
    for command, option in (("train", "--steps"), ("eval", "--variants")):
        result = vsrup(command, "--help")
        assert result.returncode == 0 and option in result.stdout
    assert vsrup("train", "--no-such-option").returncode == 2


def test_help_shows_what_to_type_not_python_types():
    """Issue 17: `{paths}`, `<list[Path]>` and `<bool>` in --help; --codec silent about VP9."""
    for command in ("upscale", "info", "preview", "bench", "join", "models", "download-weights"):
        result = subprocess.run(
            [sys.executable, "-m", "vsrup.cli", command, "--help"], capture_output=True, text=True,
            timeout=300, env=os.environ | {"COLUMNS": "200"},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        for artefact in ("{", "<bool>", "<list[", "<str>", "<int>", "<float>", "<Path>"):
            assert artefact not in result.stdout, (command, artefact)
    upscale = vsrup("upscale", "--help").stdout
    assert "INPUT... OUTPUT" in " ".join(upscale.split()) and "VP9" in upscale


def test_every_train_and_eval_option_has_help_and_a_metavar(monkeypatch):
    from vsrup import evaluate
    from vsrup.train import __main__ as train_main

    for command in ("train", "eval"):
        text = vsrup(command, "--help").stdout
        assert f"usage: vsrup {command}" in text and "default " not in text.replace("(default: ", "")
    assert "--model NAME" in vsrup("eval", "--help").stdout
    parsers = []  # each command's parser, caught as it parses

    def catch(self, *args, **kwargs):
        parsers.append(self)
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", catch)
    for main, argv in ((train_main.main, ["--out", "x"]), (evaluate.main, [])):
        with pytest.raises(SystemExit):
            main(argv)
    assert len(parsers) == 2
    for parser in parsers:
        for action in parser._actions:
            if action.dest != "help":
                assert action.help, (parser.prog, action.dest)
                assert action.nargs == 0 or action.metavar, (parser.prog, action.dest)
