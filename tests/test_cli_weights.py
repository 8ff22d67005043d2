"""The weights commands as a user meets them: `vsrup models`, a model without weights, and downloads
that cannot reach their host (a closed local port, an unresolvable name) beside a fake hub."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import test_weights
from helpers import make_clip, run_cli
from test_weights import blob, hub_entry, registry, url_entry
from typer.testing import CliRunner

from vsrup.cli import app

hub = test_weights.hub  # the fake Hugging Face hub fixture (a local HTTP server)


def closed_port() -> int:
    """A local port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("vsrup: error: "), err
    return lines[0]


def test_models_lists_every_model_with_a_size(tmp_path, monkeypatch):
    monkeypatch.setenv("VSRUP_CACHE", str(tmp_path))
    monkeypatch.delenv("VSRUP_WEIGHTS", raising=False)
    rows = {r["name"]: r for r in json.loads(CliRunner().invoke(app, ["models", "--json"]).output)}
    community = ["realesrgan-x4", "realesrgan-x2", "realesr-general", "realesr-anime"]
    assert list(rows) == [
        "tiny",
        "dloral",
        "osediff",
        "bicubic",
        "span",
        "span-video",
        *community,
        "sd21-base",
    ]  # models, then base weights
    assets = Path(__file__).resolve().parents[1] / "src" / "vsrup" / "assets"
    shipped = sum(p.stat().st_size for p in assets.glob("tiny_x*.safetensors"))
    assert rows["tiny"]["size"] == shipped  # the sizes pinned in weights.toml are the files' own
    assert rows["bicubic"]["ready"] and rows["bicubic"]["size"] == 0
    assert rows["dloral"]["size"] is None and rows["dloral"]["approx_size"] == 3_600_000_000

    table = CliRunner().invoke(app, ["models"], env={"COLUMNS": "200"}).output
    assert "?" not in table
    for text in (f"{shipped / 1e6:.1f} MB", "≈ 5.2 GB", "≈ 3.6 GB", "≈ 9.0 MB", "bicubic"):
        assert text in table


def test_models_table_wraps_at_80_columns_instead_of_cutting():
    """Issue 25: at 80 columns the descriptions ended in "super-resoluti…"."""
    table = CliRunner().invoke(app, ["models"], env={"COLUMNS": "80"}).output
    assert "…" not in table and all(len(line) <= 80 for line in table.splitlines())
    words = " ".join(table.split())
    assert "super-resolution" in words and "RAIL++-M" in words


def test_a_model_without_weights_fails_before_any_model_library_loads(tmp_path):
    script = (
        "import sys\n"
        "from vsrup import cli\n"
        "sys.argv = ['vsrup', 'upscale', 'x.mp4', 'y.mp4', '--model', 'dloral']\n"
        "try:\n"
        "    cli.main()\n"
        "except SystemExit as exc:\n"
        "    heavy = [m for m in ('torch', 'diffusers', 'transformers', 'peft') if m in sys.modules]\n"
        "    print(exc.code, heavy)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "VSRUP_CACHE": str(tmp_path), "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )

    assert done.stdout.strip() == "5 []"
    line = one_line(done.stderr)
    assert "weights for 'dloral' are not converted" in line
    for route in ("--trust-unverified", "--local-file", "--base-dir", "vsrup convert dloral --checkpoint"):
        assert route in line


def test_refusing_an_unpinned_download_names_every_way_forward(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VSRUP_CACHE", str(tmp_path))
    monkeypatch.delenv("VSRUP_WEIGHTS", raising=False)
    code, _, err = run_cli(monkeypatch, capsys, "download-weights", "dloral")
    assert code == 5
    line = one_line(err)
    assert "pins no sha256 for dloral: model.pkl; sd21-base: all 10 files, so vsrup cannot verify" in line
    for route in ("--trust-unverified", "--local-file CHECKPOINT --base-dir", "vsrup convert dloral"):
        assert route in line


def unreachable_registry(tmp_path, hub, url: str) -> Path:
    """A converted model `m` from `url` that requires `base` from the fake hub, both unpinned."""
    hub.repos["org/base"] = {"vae/w.bin": blob(500)}
    text = url_entry("m", url, '{ name = "model.pkl" }', "conv", '"base"')
    return registry(tmp_path, text + hub_entry("base", "org/base", '{ name = "vae/w.bin" }', revision=""))


def test_a_refused_connection_is_reported_as_unreachable_not_as_an_interruption(
    hub, tmp_path, monkeypatch, capsys
):
    port = closed_port()
    reg = unreachable_registry(tmp_path, hub, f"http://127.0.0.1:{port}/model.pkl")
    monkeypatch.setenv("VSRUP_WEIGHTS", str(reg))

    code, _, err = run_cli(monkeypatch, capsys, "download-weights", "m", "--trust-unverified")

    assert code == 5
    line = one_line(err)
    assert f"cannot reach 127.0.0.1:{port}: connection refused" in line
    assert "check the network connection" in line and "--local-file" in line
    assert "interrupt" not in err and "resum" not in err


def test_an_unreachable_hub_is_said_plainly_and_quickly(hub, tmp_path, monkeypatch, capsys):
    hub.urls["/files/model.pkl"] = (blob(800), "application/octet-stream")
    reg = unreachable_registry(tmp_path, hub, f"{hub.url}/files/model.pkl")
    port = closed_port()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("VSRUP_WEIGHTS", str(reg))

    code, _, err = run_cli(monkeypatch, capsys, "download-weights", "m", "--trust-unverified")

    assert code == 5
    line = one_line(err)
    assert (
        f"could not get weights for 'base' (org/base@main: cannot reach the hub at 127.0.0.1:{port}" in line
    )
    assert "connection refused" in line and "Retrying" not in err and "interrupt" not in err


def test_a_name_that_does_not_resolve_is_reported_as_such(hub, tmp_path, monkeypatch, capsys):
    def no_dns(*args, **kwargs):
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    reg = unreachable_registry(tmp_path, hub, "https://weights.example/model.pkl")
    monkeypatch.setenv("VSRUP_WEIGHTS", str(reg))
    monkeypatch.setattr(socket, "getaddrinfo", no_dns)

    code, _, err = run_cli(monkeypatch, capsys, "download-weights", "m", "--trust-unverified")

    assert code == 5
    line = one_line(err)
    assert (
        "cannot reach weights.example: its name cannot be resolved (no network connection, or no DNS)" in line
    )
    assert "interrupt" not in err and "resum" not in err


@pytest.mark.parametrize("option", [["--base-dir", "."], ["--dtype", "fp8"]])
def test_download_options_are_checked(tmp_path, monkeypatch, capsys, option):
    monkeypatch.setenv("VSRUP_CACHE", str(tmp_path))
    monkeypatch.delenv("VSRUP_WEIGHTS", raising=False)
    code, _, err = run_cli(monkeypatch, capsys, "download-weights", "tiny", *option)
    assert code == 2 and "Traceback" not in err


def test_prompt_reaches_the_model_loader(tmp_path, monkeypatch, capsys):
    clip = make_clip(tmp_path / "in.mp4", frames=4)
    args = ["upscale", str(clip), str(tmp_path / "o.mp4"), "-m", "tiny", "-q", "--prompt", "a dog"]
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert code == 2
    assert "--prompt does not apply to the tiny model (it takes no text prompt)" in one_line(err)
    assert not (tmp_path / "o.mp4").exists()
