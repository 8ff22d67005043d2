"""`--resume`: a long job keeps its finished parts beside the output, so that a rerun after a crash,
a kill or a power cut continues where the last one stopped instead of starting over.

A resumable job encodes its video into numbered segment files (video only, a fresh encoder each, so
each starts with a keyframe) in `.NAME.vsrup-resume/` beside the output. A segment is listed in
`manifest.json` only once its file is complete and on disk, so whatever the manifest lists can be
trusted, and anything else in the folder is debris from a killed run. A rerun skips the frames the
listed segments hold: it re-runs only the windows whose overlap blends into the first new frame (see
`pipeline.stream`), so the frames it adds are the very frames an uninterrupted run makes. At the
end the segments are joined by packet copy, with the input's audio and subtitles muxed once.

The manifest also records what the frames depend on (input file, model, scale, the requested
window and tile, encoder settings...); if any of it changed, the old segments are discarded and the
job starts over. What the engine chose for the settings left automatic (window and tile sized from
free memory) is recorded too, as the `plan`, and a rerun adopts it: on a machine with more or less
free memory it still makes exactly the frames the first run would have.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from vsrup.errors import OutputError
from vsrup.io.probe import VideoInfo
from vsrup.io.writer import SEGMENT_EXT, EncodeSettings, VideoWriter

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SEGMENT_SECONDS = 60.0  # about this much work per segment: what a Ctrl-C or a crash can lose
_VERSION = 1


@dataclass
class Segment:
    file: str  # name inside the work folder
    start: int  # index of its first frame in the whole video
    frames: int


def work_folder(target: Path) -> Path:
    """Where a resumable job for `target` keeps its segments (hidden, beside the output)."""
    return target.with_name(f".{target.name}.vsrup-resume")


class ResumeFolder:
    """The finished segments of one resumable job, and the manifest that lists them."""

    def __init__(self, target: Path, key: dict, plan: dict | None = None) -> None:
        self.path = work_folder(Path(target))
        self.key = key
        self.plan = plan or {}
        self.segments: list[Segment] = []

    @classmethod
    def open(cls, target: Path, key: dict, plan: dict | None = None) -> ResumeFolder:
        """Pick up the segments (and the plan) of an earlier run of the same job, or start an
        empty folder with this `plan`."""
        work = cls(target, key, plan)
        earlier = work._read_manifest()
        if earlier is not None and earlier.get("key") == key:
            work.segments = [Segment(**s) for s in earlier["segments"]]
            work.plan = earlier.get("plan") or work.plan
        elif work.path.exists():
            if earlier is not None or work._has_segment_files():  # finished work is lost: say so
                reason = "its settings or input differ" if earlier else "it has no readable manifest"
                log.warning(
                    "starting %s over: the unfinished job in %s is unusable (%s)", target, work.path, reason
                )
            shutil.rmtree(work.path)  # else nothing was finished yet (at most a half segment): start quietly
        try:
            work.path.mkdir(exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create {work.path}: {exc.strerror}") from None
        work._drop_debris()
        return work

    @property
    def frames_done(self) -> int:
        return sum(s.frames for s in self.segments)

    def segment_paths(self) -> list[Path]:
        return [self.path / s.file for s in self.segments]

    def next_name(self) -> str:
        return f"{len(self.segments):05d}{SEGMENT_EXT}"

    def add(self, finished: Path, frames: int) -> None:
        """Move a complete segment file into place, then list it (in that order: a listed segment
        always exists whole)."""
        _fsync(finished)
        name = self.next_name()
        os.replace(finished, self.path / name)
        self.segments.append(Segment(name, self.frames_done, frames))
        self._write_manifest()

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def _read_manifest(self) -> dict | None:
        try:
            manifest = json.loads((self.path / MANIFEST).read_text())
        except (OSError, ValueError):
            return None
        if manifest.get("version") != _VERSION:
            return None
        if not all((self.path / s["file"]).is_file() for s in manifest.get("segments", [])):
            return None
        return manifest

    def _write_manifest(self) -> None:
        segments = [asdict(s) for s in self.segments]
        manifest = {"version": _VERSION, "key": self.key, "plan": self.plan, "segments": segments}
        scratch = self.path / f"{MANIFEST}.tmp"
        scratch.write_text(json.dumps(manifest, indent=1))
        _fsync(scratch)
        os.replace(scratch, self.path / MANIFEST)

    def _has_segment_files(self) -> bool:
        return any(entry.name[:5].isdigit() for entry in self.path.iterdir())

    def _drop_debris(self) -> None:
        """Delete what a killed run left unlisted (a half-written segment, a manifest draft)."""
        keep = {MANIFEST} | {s.file for s in self.segments}
        for entry in self.path.iterdir():
            if entry.name not in keep:
                entry.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


class SegmentedWriter:
    """A writer with `VideoWriter`'s `write`, that starts a new segment file after about
    `segment_seconds` of work (or, when `segment_frames` is given, after that many frames: tests)
    and hands each finished one to the `ResumeFolder`. Frames reach it already blended and final, so
    it may cut on any frame: a segment is a fixed amount of lost work on Ctrl-C, whatever the speed."""

    def __init__(
        self,
        work: ResumeFolder,
        info: VideoInfo,
        size: tuple[int, int],
        encode: EncodeSettings,
        segment_seconds: float | None = None,
        segment_frames: int | None = None,
        clock=time.monotonic,
    ) -> None:
        self.work, self.info, self.size, self.encode = work, info, size, encode
        self.segment_seconds = SEGMENT_SECONDS if segment_seconds is None else segment_seconds
        self.segment_frames = None if segment_frames is None else max(1, segment_frames)
        self.clock = clock
        self._writer: VideoWriter | None = None
        self._partial = work.path / f"partial{SEGMENT_EXT}"
        self._count = 0
        self._since = clock()  # when the segment in progress began (its work, not its first write)
        self.frames_written = 0

    def _segment_full(self) -> bool:
        if self.segment_frames is not None:
            return self._count >= self.segment_frames
        return self.clock() - self._since >= self.segment_seconds

    def write(self, pts: int | None, duration: int | None, image) -> None:
        if self._writer is not None and self._segment_full():
            self._finish_segment()
        if self._writer is None:
            self._writer = VideoWriter(
                self._partial, self.info, self.size, self.encode, SEGMENT_EXT, passthrough=False
            )
        self._writer.write(pts, duration, image)
        self._count += 1
        self.frames_written += 1

    def close(self) -> None:
        if self._writer is not None:
            self._finish_segment()

    def abort(self) -> None:
        """Drop the segment in progress; the finished ones stay for the next run."""
        if self._writer is not None:
            self._writer.abort()
            self._writer = None
        self._partial.unlink(missing_ok=True)

    def _finish_segment(self) -> None:
        self._writer.close()
        self.work.add(self._partial, self._count)
        self._writer, self._count, self._since = None, 0, self.clock()
