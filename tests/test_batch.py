"""Folders, globs and several inputs: layout kept, names as asked, one model load, a bad file reported
and skipped over, exit 7 at the end, and our own outputs never taken as inputs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from helpers import decode_all, make_clip, run_cli
from rich.console import Console

from vsrup import models
from vsrup.progress import RichReporter
from vsrup.run.jobs import Outcome, plan_jobs
from vsrup.upscale import Upscaler


def events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """in/a.mp4, in/sub/b.mkv, in/sub/deeper/c.mov, a bad .mp4, and files that are not ours to do."""
    root = tmp_path / "in"
    (root / "sub" / "deeper").mkdir(parents=True)
    make_clip(root / "a.mp4", frames=5)
    make_clip(root / "sub" / "b.mkv", frames=3)
    make_clip(root / "sub" / "deeper" / "c.mov", frames=4)
    (root / "sub" / "broken.mp4").write_text("not a video at all")
    (root / "notes.txt").write_text("ignored: not a video extension")
    make_clip(root / ".hidden.mp4", frames=2)
    make_clip(root / ".a.vsrup-partial.mp4", frames=2)  # a temporary left by a killed run
    return root


def test_folder_keeps_layout_reports_the_bad_file_and_exits_7(folder, tmp_path, monkeypatch, capsys):
    loads = []
    real_load = models.load_model
    monkeypatch.setattr(models, "load_model", lambda *a: loads.append(a) or real_load(*a))
    out = tmp_path / "out"
    code, stdout, err = run_cli(
        monkeypatch, capsys, "upscale", str(folder), str(out), "-m", "bicubic", "-s", "2",
        "--suffix", "_x2", "--progress", "json",
    )  # fmt: skip
    assert code == 7
    assert err.strip() == "vsrup: error: 1 of 4 files failed (broken.mp4)"
    assert len(loads) == 1  # one model for the whole batch
    assert tree(out) == ["a_x2.mp4", "sub/b_x2.mkv", "sub/deeper/c_x2.mov"]
    assert [len(decode_all(out / name)[0]) for name in tree(out)] == [5, 3, 4]
    summary = events(stdout)[-1]
    assert summary["event"] == "summary"
    assert (summary["done"], summary["skipped"], summary["failed"]) == (3, 0, 1)
    failed = [f for f in summary["files"] if f["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["file"].endswith("broken.mp4")
    assert failed[0]["exit_code"] == 3 and "not a readable video" in failed[0]["error"]
    # the failure was reported when it happened, before the later files were done
    kinds = [(e["event"], e.get("status"), e.get("file")) for e in events(stdout)]
    broken, last = str(folder / "sub" / "broken.mp4"), str(folder / "sub" / "deeper" / "c.mov")
    # every event names a file the same way: the input path, done or failed
    assert kinds.index(("finish", "failed", broken)) < kinds.index(("finish", "done", last))


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_batch_into_an_unwritable_folder_is_one_exit_4_before_any_work(folder, monkeypatch, capsys):
    """Issue 25: it was one "cannot create" failure per file and exit 7. /proc refuses new files
    and folders to everyone, root included."""
    loads = []
    monkeypatch.setattr(Upscaler, "__init__", lambda self, settings: loads.append(settings))
    code, out, err = run_cli(monkeypatch, capsys, "upscale", str(folder), "/proc/vsrup-up/", "-m", "bicubic")
    lines = err.strip().splitlines()
    assert code == 4, err
    assert len(lines) == 1 and lines[0].startswith("vsrup: error: output folder is not writable: /proc")
    assert loads == [] and out == ""


def test_skip_existing_leaves_finished_outputs_alone(folder, tmp_path, monkeypatch, capsys):
    (folder / "sub" / "broken.mp4").unlink()
    out = tmp_path / "out"
    args = ["upscale", str(folder), str(out), "-m", "bicubic", "-s", "2", "-q"]
    assert run_cli(monkeypatch, capsys, *args)[0] == 0
    stamps = {name: (out / name).stat().st_mtime_ns for name in tree(out)}
    (out / "sub" / "b.mkv").unlink()  # as if the batch had stopped before this one
    code, stdout, _ = run_cli(monkeypatch, capsys, *args[:-1], "--skip-existing", "--progress", "json")
    assert code == 0
    summary = events(stdout)[-1]
    assert (summary["done"], summary["skipped"], summary["failed"]) == (1, 2, 0)
    assert {n: (out / n).stat().st_mtime_ns for n in ("a.mp4", "sub/deeper/c.mov")} == {
        n: stamps[n] for n in ("a.mp4", "sub/deeper/c.mov")
    }
    assert len(decode_all(out / "sub" / "b.mkv")[0]) == 3
    # without --skip-existing, an existing output is a failure of that file, not a silent overwrite
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert code == 7 and "3 of 3 files failed" in err


def test_output_folder_inside_input_is_not_reprocessed(tmp_path, monkeypatch, capsys):
    root = tmp_path / "clips"
    root.mkdir()
    make_clip(root / "a.mp4", frames=3)
    args = ["upscale", str(root), str(root / "up"), "-m", "bicubic", "-s", "2", "-q", "--skip-existing"]
    for _ in range(2):
        assert run_cli(monkeypatch, capsys, *args)[0] == 0
    assert tree(root) == ["a.mp4", "up/a.mp4"]


def test_rerun_with_suffix_into_the_input_folder_skips_its_own_outputs(tmp_path, monkeypatch, capsys):
    root = tmp_path / "clips"
    root.mkdir()
    make_clip(root / "a.mp4", frames=3)
    args = ["upscale", str(root), str(root), "-m", "bicubic", "-s", "2", "-q", "--suffix", "_x2"]
    assert run_cli(monkeypatch, capsys, *args)[0] == 0
    code, stdout, _ = run_cli(monkeypatch, capsys, *args[:-3], "--suffix", "_x2", "--skip-existing",
                              "--progress", "json")  # fmt: skip
    assert code == 0 and events(stdout)[-1]["skipped"] == 1
    assert tree(root) == ["a.mp4", "a_x2.mp4"]  # no a_x2_x2.mp4
    # same folder without a suffix would overwrite the inputs: refused before any work
    code, _, err = run_cli(monkeypatch, capsys, "upscale", str(root), str(root), "-m", "bicubic")
    assert code == 2 and "would replace its input" in err


def test_several_files_and_a_quoted_glob_go_into_one_folder(tmp_path, monkeypatch, capsys):
    for name in ("one.mp4", "two.mp4", "three.mkv"):
        make_clip(tmp_path / name, frames=2)
    make_clip(tmp_path / "stream.ts", frames=2)  # MPEG-TS in: we write Matroska out
    out = tmp_path / "out"
    code, _, _ = run_cli(
        monkeypatch, capsys, "upscale", str(tmp_path / "three.mkv"), str(tmp_path / "*.mp4"),
        str(tmp_path / "stream.ts"), str(out), "-m", "bicubic", "-s", "2", "-q",
    )  # fmt: skip
    assert code == 0
    assert tree(out) == ["one.mp4", "stream.mkv", "three.mkv", "two.mp4"]


def test_name_clash_between_inputs_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        make_clip(tmp_path / sub / "same.mp4", frames=2)
    out = tmp_path / "out"
    code, _, err = run_cli(
        monkeypatch, capsys, "upscale", str(tmp_path / "x" / "same.mp4"), str(tmp_path / "y" / "same.mp4"),
        str(out), "-m", "bicubic",
    )  # fmt: skip
    assert code == 2 and "would both be written to" in err
    assert not out.exists()


def test_batch_into_an_existing_file_is_a_usage_error(folder, tmp_path, monkeypatch, capsys):
    target = tmp_path / "out.mp4"
    target.write_bytes(b"x")
    code, _, err = run_cli(monkeypatch, capsys, "upscale", str(folder), str(target), "-m", "bicubic")
    assert code == 2 and "output must be a folder" in err
    assert target.read_bytes() == b"x"


def test_one_file_into_a_folder_takes_the_input_name(tmp_path, monkeypatch, capsys):
    clip = make_clip(tmp_path / "clip.mkv", frames=2)
    (tmp_path / "out").mkdir()
    args = ["upscale", str(clip), str(tmp_path / "out"), "-m", "bicubic", "-s", "2", "-q"]
    assert run_cli(monkeypatch, capsys, *args, "--suffix", "_up")[0] == 0
    assert tree(tmp_path / "out") == ["clip_up.mkv"]


def test_plain_summary_lines_when_not_on_a_terminal(folder, tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(
        monkeypatch, capsys, "upscale", str(folder), str(tmp_path / "out"), "-m", "bicubic", "-s", "2"
    )
    assert code == 7
    assert "3 done, 0 skipped, 1 failed" in err
    assert err.count("failed: not a readable video") == 1  # said once at the time
    assert err.rstrip().endswith("vsrup: error: 1 of 4 files failed (broken.mp4)")


def test_plan_skips_hidden_partial_and_non_video_files(folder, tmp_path):
    jobs = plan_jobs([folder], tmp_path / "o", suffix="")
    names = [str(j.source.relative_to(folder)) for j in jobs]
    assert names == ["a.mp4", "sub/b.mkv", "sub/broken.mp4", "sub/deeper/c.mov"]


def test_terminal_summary_is_a_table_of_every_file():
    reporter = RichReporter()
    reporter.console = Console(file=io.StringIO(), width=160)
    outcomes = [
        Outcome(Path("in/a.mp4"), Path("out/a.mp4"), "done", frames=5, seconds=1.5),
        Outcome(Path("in/b.mp4"), Path("out/b.mp4"), "skipped", error="output exists"),
        Outcome(Path("in/c.mp4"), Path("out/c.mp4"), "failed", error="not a readable video", exit_code=3),
    ]
    reporter.summary([o.as_dict() for o in outcomes])
    reporter.close()
    rows = reporter.console.file.getvalue().splitlines()
    assert "1 done, 1 skipped, 1 failed" in rows[0]
    assert [r.split()[1] for r in rows if "in/" in r] == ["done", "skipped", "failed"]
    assert any("1.5s" in r and "in/a.mp4" in r for r in rows)
    assert any("not a readable video" in r and "in/c.mp4" in r for r in rows)


def test_ctrl_c_stops_the_batch_and_still_summarises_what_was_done(folder, tmp_path, monkeypatch, capsys):
    real = Upscaler.upscale_file

    def stop_on_b(self, source, target, reporter=None, *args):
        if Path(source).name == "b.mkv":
            raise KeyboardInterrupt
        return real(self, source, target, reporter, *args)

    monkeypatch.setattr(Upscaler, "upscale_file", stop_on_b)
    out = tmp_path / "out"
    code, stdout, err = run_cli(
        monkeypatch,
        capsys,
        "upscale",
        str(folder),
        str(out),
        "-m",
        "bicubic",
        "-s",
        "2",
        "--progress",
        "json",
    )
    assert code == 130 and "interrupted" in err
    summary = events(stdout)[-1]
    assert summary["event"] == "summary" and (summary["done"], summary["failed"]) == (1, 0)
    assert (summary["unfinished"], summary["not_started"]) == (1, 2)  # issue 17: none left out
    statuses = {Path(f["file"]).name: f["status"] for f in summary["files"]}
    assert statuses == {"a.mp4": "done", "b.mkv": "unfinished", "broken.mp4": "not started",
                        "c.mov": "not started"}  # fmt: skip
    assert tree(out) == ["a.mp4"]
    code, _, err = run_cli(monkeypatch, capsys, "upscale", str(folder), str(tmp_path / "o2"), "-m", "bicubic")
    assert code == 130 and "1 done, 0 skipped, 0 failed, 1 unfinished, 2 not started" in err


def test_several_inputs_into_a_file_name_is_a_usage_error(tmp_path, monkeypatch, capsys):
    """Issue 17: `vsrup upscale a.mp4 b.mp4 out.mp4` made a folder named out.mp4."""
    a, b = make_clip(tmp_path / "a.mp4", frames=2), make_clip(tmp_path / "b.mp4", frames=2)
    code, _, err = run_cli(monkeypatch, capsys, "upscale", str(a), str(b), str(tmp_path / "out.mp4"), "-q")
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "output must be a folder" in err and "out.mp4/" in err
    assert not (tmp_path / "out.mp4").exists()
    code, _, _ = run_cli(monkeypatch, capsys, "upscale", str(a), str(b), f"{tmp_path / 'out.mp4'}/",
                         "-m", "bicubic", "-s", "2", "-q")  # fmt: skip
    assert code == 0 and tree(tmp_path / "out.mp4") == ["a.mp4", "b.mp4"]  # asked for with the slash


def test_one_file_into_a_new_folder_with_a_trailing_slash(tmp_path, monkeypatch, capsys):
    """Issue 17: `vsrup upscale a.mp4 outdir/` failed with "unsupported output extension ''"."""
    clip = make_clip(tmp_path / "a.mp4", frames=2)
    args = ["upscale", str(clip), f"{tmp_path / 'outdir'}/", "-m", "bicubic", "-s", "2", "-q"]
    assert run_cli(monkeypatch, capsys, *args)[0] == 0
    assert tree(tmp_path / "outdir") == ["a.mp4"]


def test_finish_events_have_one_shape_for_a_file_a_batch_and_a_failure(folder, tmp_path, monkeypatch, capsys):
    """Issue 17: `finish` said `frames_done` on success and `frames` on failure."""
    keys = {"event", "file", "output", "status", "frames", "seconds", "error", "exit_code"}
    json_args = ["-m", "bicubic", "-s", "2", "--progress", "json"]
    clip = make_clip(tmp_path / "one.mp4", frames=3)
    _, single, _ = run_cli(
        monkeypatch, capsys, "upscale", str(clip), str(tmp_path / "one_x2.mp4"), *json_args
    )
    broken = folder / "sub" / "broken.mp4"
    _, failed, _ = run_cli(monkeypatch, capsys, "upscale", str(broken), str(tmp_path / "b.mp4"), *json_args)
    _, batch, _ = run_cli(monkeypatch, capsys, "upscale", str(folder), str(tmp_path / "out"), *json_args)
    finishes = [e for out in (single, failed, batch) for e in events(out) if e["event"] == "finish"]
    assert {e["status"] for e in finishes} == {"done", "failed"} and len(finishes) == 6
    assert all(set(e) == keys for e in finishes), finishes
    done = finishes[0]
    assert (done["file"], done["frames"], done["exit_code"], done["error"]) == (str(clip), 3, 0, None)
    assert finishes[1]["exit_code"] == 3 and "not a readable video" in finishes[1]["error"]
    summary = events(batch)[-1]
    assert all(set(f) == keys - {"event"} for f in summary["files"])


def test_a_glob_keeps_the_layout_below_its_fixed_part_so_skip_existing_finds_a_folder_runs_outputs(
    folder, tmp_path, monkeypatch, capsys
):
    """Issue 25: `clips/` and `'clips/**/*.mkv'` name the same outputs, so a rerun skips them."""
    out = tmp_path / "out"
    args = ["-m", "bicubic", "-s", "2", "--suffix", "_x2", "--progress", "json"]
    run_cli(monkeypatch, capsys, "upscale", str(folder), str(out), *args)
    assert tree(out) == ["a_x2.mp4", "sub/b_x2.mkv", "sub/deeper/c_x2.mov"]
    code, stdout, _ = run_cli(
        monkeypatch, capsys, "upscale", str(folder / "**" / "*.m[ok]v"), str(out), *args, "--skip-existing"
    )
    assert code == 0
    statuses = {Path(e["file"]).name: e["status"] for e in events(stdout)[-1]["files"]}
    assert statuses == {"b.mkv": "skipped", "c.mov": "skipped"}
    assert tree(out) == ["a_x2.mp4", "sub/b_x2.mkv", "sub/deeper/c_x2.mov"]  # nothing flattened
    # the fixed part ends at the first wildcard component, not at the last folder
    code, _, _ = run_cli(
        monkeypatch, capsys, "upscale", str(folder / "s*" / "*.mkv"), str(tmp_path / "g"), *args
    )
    assert code == 0 and tree(tmp_path / "g") == ["sub/b_x2.mkv"]
