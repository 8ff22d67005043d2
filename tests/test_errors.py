"""Every error a user can cause ends in one line, a distinct exit code, and an untouched output path."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest
import torch
from helpers import make_clip, run_cli, write_tone

from vsrup import models
from vsrup.devices import is_out_of_memory
from vsrup.errors import DeviceError, WeightsError
from vsrup.io.writer import VideoWriter
from vsrup.upscale import Upscaler, UpscaleSettings


def assert_one_line(err: str, *fragments: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("vsrup: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def no_leftovers(folder: Path) -> list[str]:
    """Names of our temporaries left in `folder` (must be none)."""
    return [p.name for p in folder.iterdir() if "vsrup-partial" in p.name or "vsrup-resume" in p.name]


def upscale_args(source: Path, target: Path, *extra: str) -> list[str]:
    return ["upscale", str(source), str(target), "-m", "bicubic", "-q", *extra]


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return make_clip(tmp_path / "in.mp4", frames=6)


def test_missing_input_exits_3(tmp_path, monkeypatch, capsys):
    target = tmp_path / "out.mp4"
    code, _, err = run_cli(monkeypatch, capsys, *upscale_args(tmp_path / "nope.mp4", target))
    assert code == 3
    assert_one_line(err, "input not found", "nope.mp4")
    assert not target.exists()


def test_an_empty_file_says_empty_file(tmp_path, monkeypatch, capsys):
    """Issue 25: a 0-byte file got FFmpeg's "Invalid data found when processing input"."""
    empty = tmp_path / "empty.mp4"
    empty.touch()
    code, _, err = run_cli(monkeypatch, capsys, *upscale_args(empty, tmp_path / "out.mp4"))
    assert code == 3
    assert_one_line(err, "empty file", "empty.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.mp4"]


def test_text_file_named_mp4_is_not_a_video(tmp_path, monkeypatch, capsys):
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is a shopping list, not a video\n" * 50)
    code, _, err = run_cli(monkeypatch, capsys, *upscale_args(fake, tmp_path / "out.mp4"))
    assert code == 3
    assert_one_line(err, "not a readable video", "notes.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.mp4"]


def test_mp4_cut_in_half_is_reported_corrupt(tmp_path, monkeypatch, capsys):
    whole = make_clip(tmp_path / "whole.mp4", frames=20).read_bytes()
    half = tmp_path / "half.mp4"
    half.write_bytes(whole[: len(whole) // 2])
    code, _, err = run_cli(monkeypatch, capsys, *upscale_args(half, tmp_path / "out.mp4"))
    assert code == 3
    assert_one_line(err, "not a readable video", "half.mp4")
    assert not (tmp_path / "out.mp4").exists() and no_leftovers(tmp_path) == []


@pytest.mark.parametrize("ext", [".mkv", ".webm"])
def test_truncated_matroska_is_damaged_exit_8(ext, tmp_path, monkeypatch, capsys):
    """Issue 25: Matroska cut mid-file decodes cleanly up to the cut (no error from FFmpeg), but its
    track was declared 0.8 s long: the output holds only what was decoded, and a script must be
    able to tell (exit 8, status damaged), as for any other damaged input."""
    codec = "libvpx-vp9" if ext == ".webm" else "libx264"
    whole = make_clip(tmp_path / f"whole{ext}", frames=20, codec=codec).read_bytes()
    half = tmp_path / f"half{ext}"
    half.write_bytes(whole[: len(whole) // 2])
    target = tmp_path / f"out{ext}"
    args = [a for a in upscale_args(half, target) if a != "-q"]
    code, out, err = run_cli(monkeypatch, capsys, *args, "--progress", "json")
    with av.open(str(target)) as c:
        decoded = sum(1 for _ in c.decode(video=0))
    assert code == 8 and 0 < decoded < 15
    assert_one_line(err, "input is damaged", f"{decoded} of 20 frames recovered", "declared end")
    finish = [json.loads(line) for line in out.splitlines() if '"finish"' in line]
    assert finish[-1]["status"] == "damaged" and finish[-1]["frames"] == decoded


@pytest.mark.parametrize(
    ("ext", "audio"), [(".mkv", True), (".mp4", True), (".webm", False), (".mov", False), (".avi", False)]
)
def test_whole_files_are_not_mistaken_for_truncated_ones(ext, audio, tmp_path, monkeypatch, capsys):
    """The damage check compares with the video track's own declared end: audio running past the
    video (the AAC tail), a duration that counts the last frame, or VFR frames in AVI (whose last
    frame ends a frame short of the declared end) are normal, and stay `done`."""
    codec = {".webm": "libvpx-vp9", ".avi": "mpeg4"}.get(ext, "libx264")
    clip = make_clip(tmp_path / f"in{ext}", frames=12, codec=codec, audio=audio)
    vfr = make_clip(tmp_path / f"vfr{ext}", frames=6, codec=codec, pts=[0, 40, 200, 240, 260, 400])
    for source in (clip, vfr):
        target = tmp_path / f"out_{source.name}"
        args = [a for a in upscale_args(source, target) if a != "-q"]
        code, out, err = run_cli(monkeypatch, capsys, *args, "--progress", "json")
        finish = [json.loads(line) for line in out.splitlines() if '"finish"' in line]
        assert code == 0 and err == "" and finish[-1]["status"] == "done", (source.name, err)


def test_zero_frames_exits_3(tmp_path, monkeypatch, capsys):
    source = make_clip(tmp_path / "src.mp4", frames=4, audio=True)
    empty = tmp_path / "empty.mkv"  # a video stream header, audio packets, and no video packets
    with av.open(str(source)) as src, av.open(str(empty), "w") as out:
        out.add_stream_from_template(src.streams.video[0])
        audio = out.add_stream_from_template(src.streams.audio[0])
        for packet in src.demux(src.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = audio
                out.mux(packet)
    code, _, err = run_cli(monkeypatch, capsys, *upscale_args(empty, tmp_path / "out.mkv"))
    assert code == 3
    assert_one_line(err, "no video frames could be decoded", "empty.mkv")
    assert not (tmp_path / "out.mkv").exists() and no_leftovers(tmp_path) == []


def test_audio_only_file_exits_3(tmp_path, monkeypatch, capsys):
    audio_only = tmp_path / "song.mp4"
    with av.open(str(audio_only), "w") as out:
        write_tone(out, out.add_stream("aac", rate=48000), seconds=0.3)
    code, _, err = run_cli(monkeypatch, capsys, *upscale_args(audio_only, tmp_path / "out.mp4"))
    assert code == 3
    assert_one_line(err, "no video stream", "it has: audio")


def test_undecodable_codec_exits_3(tmp_path, monkeypatch, capsys):
    """A Matroska codec id FFmpeg has no decoder for (made by renaming MPEG-4's id in the header)."""
    data = make_clip(tmp_path / "src.mkv", frames=4, codec="mpeg4").read_bytes()
    assert data.count(b"V_MPEG4/ISO/ASP") == 1
    odd = tmp_path / "odd.mkv"
    odd.write_bytes(data.replace(b"V_MPEG4/ISO/ASP", b"V_MPEG4/ISO/XYZ"))
    code, _, err = run_cli(monkeypatch, capsys, *upscale_args(odd, tmp_path / "out.mkv"))
    assert code == 3
    assert_one_line(err, "unsupported video codec", "odd.mkv")


@pytest.mark.parametrize(
    ("target_name", "extra", "fragment"),
    [
        ("out.mp4", ["--codec", "h999"], "unknown codec 'h999'"),
        ("out.xyz", [], "unsupported output extension '.xyz'"),
    ],
)
def test_unsupported_output_codec_or_container_exits_2(
    clip, tmp_path, monkeypatch, capsys, target_name, extra, fragment
):
    code, _, err = run_cli(monkeypatch, capsys, *upscale_args(clip, tmp_path / target_name, *extra))
    assert code == 2
    assert_one_line(err, fragment)
    assert not (tmp_path / target_name).exists()


def test_existing_output_is_untouched_without_overwrite(clip, tmp_path, monkeypatch, capsys):
    target = tmp_path / "out.mp4"
    target.write_bytes(b"precious")
    code, _, err = run_cli(monkeypatch, capsys, *upscale_args(clip, target))
    assert code == 4
    assert_one_line(err, "output exists", "--overwrite")
    assert target.read_bytes() == b"precious"
    code, _, _ = run_cli(monkeypatch, capsys, *upscale_args(clip, target, "--overwrite"))
    assert code == 0 and target.stat().st_size > 1000


def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder we cannot write to. Root ignores permission bits, so as root use /proc/self, which
    refuses new files for everyone (and is reported as not writable by access(2))."""
    if os.geteuid() != 0:
        folder = tmp_path / "locked"
        folder.mkdir()
        folder.chmod(0o500)
        return folder
    folder = Path("/proc/self")
    if os.access(folder, os.W_OK):
        pytest.skip("no folder here refuses writes to root")
    return folder


def test_output_folder_not_writable_exits_4(clip, tmp_path, monkeypatch, capsys):
    folder = _unwritable_folder(tmp_path)
    code, _, err = run_cli(monkeypatch, capsys, *upscale_args(clip, folder / "out.mp4"))
    assert code == 4
    assert_one_line(err, "not writable", str(folder))
    assert not (folder / "out.mp4").exists()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_output_where_no_file_can_be_created_fails_before_any_frame(clip, monkeypatch, capsys):
    """Issue 25: /proc takes no new files, even from root, whom access(2) lets write anywhere: the
    run upscaled every frame and failed at the end. The folder is now tried for real, up front."""
    import vsrup.upscale

    decoded = []
    real = vsrup.upscale.read_frames
    monkeypatch.setattr(vsrup.upscale, "read_frames", lambda *a, **k: decoded.append(1) or real(*a, **k))
    code, _, err = run_cli(monkeypatch, capsys, *upscale_args(clip, Path("/proc/vsrup-out.mp4")))
    assert code == 4
    assert_one_line(err, "not writable", "/proc")
    assert decoded == []


def test_disk_full_mid_run_leaves_no_file(tmp_path, monkeypatch, capsys):
    clip = make_clip(tmp_path / "in.mp4", frames=12, audio=True)
    real_write = VideoWriter.write

    def write_until_full(self, *args):
        if self.frames_written == 5:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(self, *args)

    monkeypatch.setattr(VideoWriter, "write", write_until_full)
    target = tmp_path / "out.mp4"
    code, _, err = run_cli(monkeypatch, capsys, *upscale_args(clip, target))
    assert code == 4
    assert_one_line(err, "No space left on device", str(target))
    assert not target.exists() and no_leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "message",
    [
        "weights for 'broken' not found in the cache (run `vsrup download broken`)",
        "checksum mismatch for broken/model.safetensors: expected 1234abcd, got 5678ef90",
    ],
)
def test_weights_errors_exit_5(clip, tmp_path, monkeypatch, capsys, message):
    def broken_loader(scale, device, dtype, options):
        raise WeightsError(message)

    monkeypatch.setitem(models.catalogue.ENTRIES, "broken", models.CatalogueEntry("broken", broken_loader))
    code, _, err = run_cli(monkeypatch, capsys, "upscale", str(clip), str(tmp_path / "o.mp4"), "-m", "broken")
    assert code == 5
    assert_one_line(err, message)
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (["--scale", "3"], "--scale must be one of 2, 4 for the bicubic model (got 3)"),
        (["--scale", "3", "-m", "tiny"], "--scale must be one of 2, 4 for the tiny model (got 3)"),
        # One limit, one message: the model's declared smallest tile (issue 25 item 4).
        (["--tile", "1", "-m", "tiny"], "--tile must be 0 (off) or at least 40 for the tiny model (got 1)"),
        (["--tile", "8", "-m", "tiny"], "--tile must be 0 (off) or at least 40 for the tiny model (got 8)"),
        (["--tile", "39", "-m", "tiny"], "--tile must be 0 (off) or at least 40 for the tiny model (got 39)"),
        (
            ["-m", "no-such-model"],
            "unknown model 'no-such-model'; choose one of: tiny, dloral, osediff, bicubic",
        ),
        (["--window", "4", "--overlap", "4"], "--overlap must be in [0, 3] for --window 4 (got 4)"),
        (["--window", "2", "--overlap", "7"], "--overlap must be in [0, 1] for --window 2 (got 7)"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--skip-existing", "--overwrite"], "--skip-existing and --overwrite contradict"),
    ],
)
def test_invalid_options_exit_2(clip, tmp_path, monkeypatch, capsys, options, fragment):
    code, _, err = run_cli(monkeypatch, capsys, *upscale_args(clip, tmp_path / "o.mp4", *options))
    assert code == 2
    assert_one_line(err, fragment)
    assert not (tmp_path / "o.mp4").exists()


def test_missing_output_argument_is_a_usage_error(clip, monkeypatch, capsys):
    code, _, err = run_cli(monkeypatch, capsys, "upscale", str(clip), "-m", "bicubic")
    assert code == 2
    assert_one_line(err, "give an input")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_but_absent_exits_6(clip, tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(monkeypatch, capsys, *upscale_args(clip, tmp_path / "o.mp4", "--device", "cuda"))
    assert code == 6
    assert_one_line(err, "no CUDA GPU is available", "--device cpu")


def test_out_of_memory_after_every_tile_fallback_is_a_device_error(clip, tmp_path, monkeypatch):
    """The engine retries CUDA OOM with halving tiles. Without a GPU, let it treat this CPU OOM as
    recoverable (the one CUDA-only check is bypassed) with a model that always runs out of memory."""
    upscaler = Upscaler(UpscaleSettings(model="tiny", device="cpu"))
    tried: list[int] = []

    def always_oom(frames, tile=0):
        tried.append(tile)
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(upscaler.model, "upscale", always_oom)
    monkeypatch.setattr(upscaler.runner, "recoverable", is_out_of_memory)
    target = tmp_path / "o.mp4"
    with pytest.raises(DeviceError, match="out of GPU memory even with the smallest tiles") as info:
        upscaler.upscale_file(clip, target)
    assert info.value.exit_code == 6
    # whole frame, then 128 latent pixels halving down to the model's smallest tile (40)
    assert tried == [0, 128, 64]
    assert not target.exists() and no_leftovers(tmp_path) == []


def test_out_of_memory_on_cpu_is_not_retried(clip, tmp_path, monkeypatch):
    upscaler = Upscaler(UpscaleSettings(model="bicubic", device="cpu"))
    calls = []

    def oom(frames, tile=0):
        calls.append(1)
        raise torch.OutOfMemoryError("out of memory")

    monkeypatch.setattr(upscaler.model, "upscale", oom)
    with pytest.raises(torch.OutOfMemoryError):
        upscaler.upscale_file(clip, tmp_path / "o.mp4")
    assert calls == [1] and not (tmp_path / "o.mp4").exists()


def test_unexpected_error_is_one_line_and_debug_shows_traceback(clip, tmp_path, monkeypatch, capsys):
    def explode(frames, tile=0):
        raise ZeroDivisionError("boom")

    real_load = models.load_model

    def load_exploding(*args):
        model = real_load(*args)
        model.upscale = explode
        return model

    monkeypatch.setattr(models, "load_model", load_exploding)
    code, _, err = run_cli(monkeypatch, capsys, *upscale_args(clip, tmp_path / "o.mp4"))
    assert code == 1
    assert_one_line(err, "internal error: ZeroDivisionError: boom", "--debug")
    code, _, err = run_cli(monkeypatch, capsys, "--debug", *upscale_args(clip, tmp_path / "o.mp4"))
    assert code == 1 and "Traceback" in err and "ZeroDivisionError: boom" in err
    assert not (tmp_path / "o.mp4").exists() and no_leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("sent", "code", "word"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")]
)
def test_ctrl_c_or_kill_mid_run_leaves_nothing(tmp_path, sent, code, word):
    """A real SIGINT (Ctrl-C) or SIGTERM (kill) to a real `vsrup upscale` writing frames."""
    clip = make_clip(tmp_path / "long.mp4", frames=240, audio=True)
    target = tmp_path / "out.mp4"
    command = [sys.executable, "-m", "vsrup.cli", "upscale", str(clip), str(target), "-m", "bicubic"]
    process = subprocess.Popen(
        [*command, "--progress", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    progress = []
    for line in process.stdout:  # wait until frames are really flowing
        if '"progress"' in line:
            progress.append(json.loads(line))
            if progress[-1]["frames_done"] >= 8:
                break
    process.send_signal(sent)
    started = time.monotonic()
    _, err = process.communicate(timeout=60)
    # The decode/encode threads do not hold the exit up (a held exit would run the whole clip);
    # 30 s, not less: on a loaded 2-core machine the interpreter alone takes seconds to unwind.
    assert time.monotonic() - started < 30
    assert process.returncode == code
    assert progress[-1]["frames_done"] < 240  # it was really stopped mid-run
    assert_one_line(err, f"{word}; no partial output was left behind")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mp4"]


def decodable_frames(path: Path) -> int:
    """Frames libavcodec decodes from `path` when driven directly, packet by packet, skipping the
    packets it rejects (what `ffprobe -count_frames` reports); the reference for a damaged input,
    independent of vsrup's reader. PyAV only, so the test needs no FFmpeg binaries."""
    count = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            try:
                count += len(packet.decode())  # the final empty packet flushes the decoder
            except av.error.FFmpegError:
                continue
    return count


def test_truncated_faststart_mp4_keeps_every_decodable_frame_and_exits_8(
    sample_clip, tmp_path, monkeypatch, capsys
):
    """Issue 17: the index at the front promises 45 frames; the cut loses the last packets and
    damages one. Every frame FFmpeg can decode is written (none made up), said once, exit 8."""
    faststart = tmp_path / "fs.mp4"
    with (
        av.open(str(sample_clip)) as src,
        av.open(str(faststart), "w", options={"movflags": "+faststart"}) as out,
    ):
        video = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = video
                out.mux(packet)
    data = faststart.read_bytes()
    cut = tmp_path / "t.mp4"
    cut.write_bytes(data[: int(len(data) * 0.93)])
    expected = decodable_frames(cut)
    assert 0 < expected < 45
    target = tmp_path / "out.mp4"
    args = upscale_args(cut, target, "-s", "2")
    code, out, err = run_cli(monkeypatch, capsys, *[a for a in args if a != "-q"], "--progress", "json")
    assert code == 8
    assert_one_line(err, "input is damaged", "t.mp4", f"{expected} of 45 frames recovered")
    assert decodable_frames(target) == expected
    finish = [json.loads(line) for line in out.splitlines() if '"finish"' in line]
    assert len(finish) == 1 and finish[0]["status"] == "damaged" and finish[0]["frames"] == expected
    assert finish[0]["exit_code"] == 8 and "recovered" in finish[0]["error"]
    assert no_leftovers(tmp_path) == []
    # in a batch: recorded as damaged with its frames, the batch goes on and exits 7
    good = make_clip(tmp_path / "good.mp4", frames=3)
    batch = ["upscale", str(cut), str(good), str(tmp_path / "out") + "/", "-m", "bicubic", "-s", "2"]
    code, out, err = run_cli(monkeypatch, capsys, *batch, "--progress", "json")
    summary = json.loads(out.splitlines()[-1])
    assert code == 7 and "1 of 2 files had damaged input (t.mp4)" in err
    assert (summary["done"], summary["damaged"], summary["failed"]) == (1, 1, 0)
    assert [f["frames"] for f in summary["files"]] == [expected, 3]


def test_a_failed_run_removes_the_output_folders_it_made_and_only_those(tmp_path, monkeypatch, capsys):
    """Issue 25: `upscale fake.mp4 newdir/sub/out.mp4` fails (exit 3) and leaves no `newdir/`."""
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    code, _, err = run_cli(monkeypatch, capsys, *upscale_args(fake, tmp_path / "newdir" / "sub" / "out.mp4"))
    assert code == 3 and "not a readable video" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.mp4"]
    # a folder the user made stays, even empty; only the one this run made below it goes
    (tmp_path / "mine").mkdir()
    code, _, _ = run_cli(monkeypatch, capsys, *upscale_args(fake, tmp_path / "mine" / "sub" / "out.mp4"))
    assert code == 3 and (tmp_path / "mine").is_dir() and list((tmp_path / "mine").iterdir()) == []
    # a run that succeeds keeps the folders it made
    clip = make_clip(tmp_path / "in.mp4", frames=3)
    code, _, _ = run_cli(monkeypatch, capsys, *upscale_args(clip, tmp_path / "newdir" / "sub" / "out.mp4"))
    assert code == 0 and (tmp_path / "newdir" / "sub" / "out.mp4").is_file()
