"""The weights commands as a user meets them: `vsrup models`."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from vsrup.cli import app


def test_models_lists_every_model_with_a_size(tmp_path, monkeypatch):
    monkeypatch.setenv("VSRUP_CACHE", str(tmp_path))
    monkeypatch.delenv("VSRUP_WEIGHTS", raising=False)
    rows = {r["name"]: r for r in json.loads(CliRunner().invoke(app, ["models", "--json"]).output)}
    assert list(rows) == ["tiny", "sd21-base", "dloral", "osediff", "bicubic"]
    assert rows["tiny"]["size"] == 581076 + 591444  # pinned in weights.toml
    assert rows["bicubic"]["ready"] and rows["bicubic"]["size"] == 0
    assert rows["dloral"]["size"] is None and rows["dloral"]["approx_size"] == 3_600_000_000

    table = CliRunner().invoke(app, ["models"], env={"COLUMNS": "200"}).output
    assert "?" not in table
    for text in ("1.2 MB", "≈ 5.2 GB", "≈ 3.6 GB", "bicubic"):
        assert text in table
