"""`vsrup bench`: every measurement runs end to end in its own process and reports positive numbers
in the documented structure. No timing is asserted (the machine is shared); only that times exist
and that the rates agree with the report's own frames and seconds."""

from __future__ import annotations

import json

import pytest

from vsrup import bench
from vsrup.bench.clip import clip_size
from vsrup.bench.measure import measure_stages
from vsrup.errors import InputError, UsageError, VsrupError

STAGES = {"prepare", "encode", "temporal_fuse", "denoise", "decode", "finish"}


def positive(run: dict, *keys: str) -> None:
    for key in keys:
        assert run[key] > 0, (key, run)


def test_bench_bicubic_end_to_end_reports_every_part(tmp_path):
    options = bench.BenchOptions(
        model="bicubic", scale=2, device="cpu", size=(64, 48), frames=6, repeats=1,
        length_frames=3, length_factor=2, keep_dir=tmp_path,
    )  # fmt: skip
    report = bench.run_bench(options)

    assert report["input"] == {"clip": str(tmp_path / "clip.mp4"), "width": 64, "height": 48, "frames": 6}
    assert report["output"] == {"width": 128, "height": 96}
    for part in ("upscale", "floor", "decode", "encode"):
        assert report[part]["frames"] == 6, part
        positive(report[part], "fps", "seconds", "peak_rss_mib")
        # fps is checkable without timing anything: the report's own frames over its own seconds
        # (seconds are kept to the microsecond; a doubled or per-window fps is far off).
        assert report[part]["fps"] == pytest.approx(6 / report[part]["seconds"], rel=0.01), part
    # The model run and the floor run load torch and a model; decoding alone does not.
    assert report["decode"]["peak_rss_mib"] < report["floor"]["peak_rss_mib"]
    assert report["upscale"]["rss_after_load_mib"] <= report["upscale"]["peak_rss_mib"]

    stages = report["stages"]
    assert stages["frames"] == stages["window"] == 4  # bicubic's default window, from a 6-frame clip
    assert set(stages["seconds"]) == {"model", "transfer", "total"}  # not a latent model: no steps
    positive(stages["seconds"], "model", "transfer", "total")
    positive(stages, "model_fps_in_window", "model_fps_effective")
    assert stages["model_fps_in_window"] == pytest.approx(4 / stages["seconds"]["model"], rel=0.01)

    length = report["length"]
    assert (length["short_frames"], length["long_frames"]) == (3, 6)
    assert length["peak_rss_ratio"] == pytest.approx(
        length["long_peak_rss_mib"] / length["short_peak_rss_mib"], abs=1e-3
    )

    ratios = report["ratios"]
    assert ratios["model_fps_over_floor_fps"] == pytest.approx(
        report["upscale"]["fps"] / report["floor"]["fps"], rel=1e-3
    )
    assert ratios["slowest_stage"] in {"decode", "model", "encode"}
    assert report["machine"]["cores"] >= 1
    json.dumps(report)  # the report is plain JSON


def test_latent_model_stages_are_each_timed(tmp_path):
    """For a OneStepLatentVSR every template step is timed inside the model's own `upscale`."""
    clip = bench.make_clip(tmp_path / "clip.mp4", 3, (32, 24), None)
    spec = {"model": "tiny", "random_weights": True, "scale": 2, "device": "cpu", "dtype": "auto",
            "window": 3, "overlap": 1, "clip": str(clip), "repeats": 1}  # fmt: skip
    result = measure_stages(spec)
    seconds = result["seconds"]
    assert STAGES <= set(seconds) and {"model", "other", "transfer", "total"} <= set(seconds)
    positive(seconds, *STAGES)
    assert sum(seconds[s] for s in STAGES) <= seconds["model"] + 1e-3
    assert result["frames"] == 3
    assert result["model_fps_effective"] < result["model_fps_in_window"]  # 2 new frames per 3 run
    assert result["peak_rss_mib"] > 0


def test_made_clip_has_the_asked_size_and_length(tmp_path):
    clip = bench.make_clip(tmp_path / "c.mp4", 7, (48, 32), bench.SAMPLE_CLIP)
    assert clip_size(clip) == (48, 32, 7)


def test_a_long_looped_clip_keeps_one_tick_per_frame(tmp_path):
    """Looping the 45-frame sample past 500 frames once produced duplicate timestamps."""
    import av

    clip = bench.make_clip(tmp_path / "long.mp4", 520, (32, 18), bench.SAMPLE_CLIP)
    with av.open(str(clip)) as container:
        pts = [frame.pts for frame in container.decode(video=0)]
    assert len(pts) == 520
    assert all(b > a for a, b in zip(pts, pts[1:], strict=False))


def test_a_failing_child_is_a_one_line_error(tmp_path):
    spec = {"measure": "decode", "clip": str(tmp_path / "missing.mp4")}
    with pytest.raises(VsrupError, match="decode"):
        bench.run_child(spec, timeout_s=120)


def test_a_missing_clip_is_an_input_error(tmp_path):
    with pytest.raises(InputError):
        bench.run_bench(bench.BenchOptions(clip=tmp_path / "nope.mp4"))


def test_bad_options_are_usage_errors():
    with pytest.raises(UsageError):
        bench.BenchOptions(scale=3).validate()
    with pytest.raises(UsageError):
        bench.BenchOptions(skip=("nonsense",)).validate()
    with pytest.raises(UsageError):
        bench.parse_size("wide")
    assert bench.parse_size("640x360") == (640, 360)


def test_cli_bench_passes_options_and_writes_json(tmp_path, monkeypatch):
    """The command only parses and calls `run_bench` (measured above); its report is written as is."""
    from typer.testing import CliRunner

    from vsrup.cli import app

    seen = {}

    def fake_run(options, log=None):
        seen["options"] = options
        return {"upscale": {"fps": 1.5}, "ratios": {}}

    monkeypatch.setattr(bench, "run_bench", fake_run)
    monkeypatch.setattr(bench, "render", lambda report: None)
    out = tmp_path / "bench.json"
    args = ["bench", "--model", "bicubic", "--scale", "2", "--size", "640x360", "--frames", "12",
            "--skip", "floor, length", "--tile", "64", "--json", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    options = seen["options"]
    assert (options.model, options.scale, options.size, options.frames) == ("bicubic", 2, (640, 360), 12)
    assert options.skip == ("floor", "length") and options.tile == 64 and options.window is None
    assert json.loads(out.read_text()) == {"upscale": {"fps": 1.5}, "ratios": {}}
