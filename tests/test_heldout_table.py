"""benchmarks/heldout_table.py: every model side by side, per sequence, a missing model reported."""

import importlib.util
import json
from pathlib import Path

from test_evaluate import Brightened, frame_folder, put_in_catalogue

from vsrup.errors import WeightsError

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "heldout_table.py"


def load_script():
    spec = importlib.util.spec_from_file_location("heldout_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_table_scores_every_scale_and_lr_per_sequence_and_lists_missing_models(tmp_path, monkeypatch):
    def absent(scale):
        raise WeightsError("run `vsrup download-weights absent` first")

    put_in_catalogue(monkeypatch, "absent", absent)
    put_in_catalogue(monkeypatch, "plus-20", lambda scale: Brightened(scale, 20 / 255))
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    table = load_script()
    out = tmp_path / "results" / "table.json"
    table.main([str(frame_folder(first)), str(frame_folder(second)), "--models", "plus-20,absent",
                "--scales", "4,2", "--frames", "3", "--threads", "0", "--out", str(out)])  # fmt: skip
    report = json.loads(out.read_text())
    assert [r["scale"] for r in report["runs"]] == [4, 2]
    for run in report["runs"]:
        assert run["unavailable"] == {"absent": "run `vsrup download-weights absent` first"}
        cells = {(r["source"], r["variant"], r["method"]) for r in run["rows"]}
        assert cells == {
            (s, v, m)
            for s in ("first", "second")
            for v in ("bicubic", "h264")
            for m in ("bicubic", "lanczos (PIL)", "plus-20")
        }
    text = out.with_suffix(".md").read_text()
    assert "| first | second | **mean** | flicker ↓ (mean) |" in text
    assert "`absent`: not available" in text
    for label in ("×4, clean", "×4, H.264 CRF 26", "×2, clean", "×2, H.264 CRF 26"):
        row = next(line for line in text.splitlines() if line.startswith(f"| {label} | plus-20 |"))
        gains = [float(c.strip(" *")) for c in row.split("|")[3:6]]  # first, second, mean
        assert all(g < 0 for g in gains)  # a brightened bicubic loses to bicubic
