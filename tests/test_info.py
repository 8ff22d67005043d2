"""`vsrup info`: the facts it reports match what PyAV says, on real and synthetic clips."""

from __future__ import annotations

import json
from fractions import Fraction

import av
import pytest
from helpers import make_clip
from typer.testing import CliRunner

from vsrup.cli import app
from vsrup.errors import InputError
from vsrup.info import describe

runner = CliRunner()


def info_json(path, *args) -> dict:
    result = runner.invoke(app, ["info", str(path), "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.parametrize("name", ["01_dog.mp4", "02_cups.mp4", "05_default_juggle.mp4", "bedroom.mp4"])
def test_info_json_matches_pyav_on_shared_clips(shared_data, name):
    path = shared_data / "clips" / name
    report = info_json(path, "--count")
    with av.open(str(path)) as c:
        video = c.streams.video[0]
        expected_rate = video.average_rate
        header_frames = video.frames
        audio = [(s.codec_context.name, s.codec_context.channels, s.sample_rate) for s in c.streams.audio]
        size = (video.codec_context.width, video.codec_context.height)
    v = report["video"]
    assert v["frames"] == header_frames  # counted by demuxing == the header's count
    assert v["frames_source"] == "counted"
    assert Fraction(v["frame_rate"]["fraction"]) == expected_rate
    assert (v["width"], v["height"]) == size
    assert [(a["codec"], a["channels"], a["sample_rate"]) for a in report["audio"]] == audio
    assert v["variable_frame_rate"] is False
    assert v["color"]["matrix"] in ("bt709", "unspecified", "smpte170m", "bt470bg")


def test_variable_frame_rate_is_detected(tmp_path):
    vfr = make_clip(tmp_path / "vfr.mp4", frames=8, pts=[0, 40, 80, 200, 240, 260, 300, 400])
    cfr = make_clip(tmp_path / "cfr.mp4", frames=8, pts=[40 * i for i in range(8)])
    assert describe(vfr)["video"]["variable_frame_rate"] is True
    assert describe(cfr)["video"]["variable_frame_rate"] is False


def test_frames_are_counted_when_the_header_has_none(tmp_path):
    clip = make_clip(tmp_path / "clip.mkv", frames=13)  # Matroska stores no frame count
    v = describe(clip)["video"]
    assert v["frames_header"] is None
    assert (v["frames"], v["frames_source"]) == (13, "counted")


def test_ten_bit_rotation_audio_and_colour_names(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", frames=3, ten_bit=True, rotation=90, audio=True)
    report = info_json(clip)
    v = report["video"]
    assert (v["pix_fmt"], v["bit_depth"], v["rotation"]) == ("yuv420p10le", 10, 90)
    assert v["color"] == {
        "primaries": "bt709",
        "transfer": "bt709",
        "matrix": "bt709",
        "range": "tv (limited)",
    }
    assert [(a["codec"], a["channels"], a["sample_rate"]) for a in report["audio"]] == [("aac", 2, 48000)]
    assert v["frames"] == 3


def test_table_for_people_names_the_facts(tmp_path):
    clip = make_clip(tmp_path / "vfr.mp4", frames=6, pts=[0, 40, 80, 200, 240, 400], audio=True)
    result = runner.invoke(app, ["info", str(clip)])
    assert result.exit_code == 0, result.output
    for text in ("64×48", "variable", "6 (header)", "yuv420p, 8-bit", "aac", "48000 Hz"):
        assert text in result.output


def test_missing_input_is_an_input_error(tmp_path):
    result = runner.invoke(app, ["info", str(tmp_path / "nope.mp4")])
    assert isinstance(result.exception, InputError)  # main() turns it into exit code 3
    assert "input not found" in str(result.exception)


def test_average_frame_rate_of_a_variable_clip_comes_from_its_timestamps(tmp_path):
    # 1 s at 30 fps, then 1 s at 15 fps: 45 frames in 2 s. Matroska's header says what the encoder
    # was told (15 fps); an MP4's divides by a duration that misses the last frame.
    pts = [round(i * 1000 / 30) for i in range(30)] + [1000 + round(i * 1000 / 15) for i in range(15)]
    for name in ("vfr.mkv", "vfr.mp4"):
        clip = make_clip(tmp_path / name, frames=45, fps=15, pts=pts)
        v = info_json(clip)["video"]
        assert v["variable_frame_rate"] is True
        assert abs(v["frame_rate"]["fps"] - 22.5) < 0.05, name
    table = runner.invoke(app, ["info", str(clip)])
    assert "variable, 22.5" in table.output and "fps on average" in table.output


def test_constant_frame_rate_keeps_the_exact_header_rate(tmp_path):
    clip = make_clip(tmp_path / "ntsc.mkv", frames=12, fps=Fraction(30000, 1001))
    v = info_json(clip, "--count")["video"]
    assert v["frame_rate"]["fraction"] == "30000/1001" and v["variable_frame_rate"] is False
