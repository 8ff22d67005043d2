"""What a command line asks for: (input, output) pairs worked out before any work starts, and what
became of each.

`read_paths` is the one reading of `upscale`'s paths: one input file (or image sequence) and an
output file (or an existing folder, or an image pattern), or folders, globs and several files into
an output folder, keeping the inner layout (below a folder, or below a glob's fixed part). A folder
of numbered images is one image sequence; a folder with videos is a batch; both at once is refused. Name clashes and our own outputs are caught up front. Every executor (`run.local`,
`run.devices`, `run.ray`) takes this job list and returns one `Outcome` per job.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from vsrup.errors import BatchError, InputDamaged, InputError, UsageError
from vsrup.io import sequence
from vsrup.io.writer import WRITABLE_VIDEO, writable_extension

# Files are picked by extension only: probing every file of a big folder would be slow, and a file
# with a video extension that is not a video should fail loudly, not vanish from the batch.
VIDEO_EXTENSIONS = frozenset(
    ".mp4 .m4v .mkv .mov .webm .avi .mpg .mpeg .ts .m2ts .mts .flv .wmv .3gp .ogv .nut .y4m".split()
)
IMAGE_KINDS = {"png": ".png", "tiff": ".tif"}  # --format names of image-sequence outputs
# Our own temporaries (atomic partial files, resume folders) must never become inputs.
_OWN_MARKERS = (".vsrup-partial", ".vsrup-resume")


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path


@dataclass
class Outcome:
    source: Path
    target: Path
    status: str  # "done", "damaged", "skipped", "failed"; after Ctrl-C "unfinished", "not started"
    frames: int = 0
    seconds: float = 0.0
    error: str = ""
    exit_code: int = 0

    def as_dict(self) -> dict:
        """The outcome as reporters show it (the JSON `finish` and `summary` events)."""
        return {
            "file": str(self.source),
            "output": str(self.target),
            "status": self.status,
            "frames": self.frames,
            "seconds": round(self.seconds, 3),
            "error": self.error or None,
            "exit_code": self.exit_code,
        }


def skipped(job: Job) -> Outcome:
    return Outcome(job.source, job.target, "skipped", error="output exists")


def failed(job: Job, error) -> Outcome:
    """`error`: a VsrupError (its exit code is kept)."""
    return Outcome(job.source, job.target, "failed", error=str(error), exit_code=error.exit_code)


def ended(job: Job, error) -> Outcome:
    """A job that raised `error` (a VsrupError): failed, or damaged (its output holds the frames
    that could be decoded)."""
    if isinstance(error, InputDamaged):
        return Outcome(
            job.source, job.target, "damaged", error.frames, error.seconds, str(error), error.exit_code
        )
    return failed(job, error)


def is_video_name(path: Path) -> bool:
    """A file we would upscale: a video extension, not hidden, not one of our temporaries."""
    name = path.name
    if name.startswith(".") or any(marker in name for marker in _OWN_MARKERS):
        return False
    return path.suffix.lower() in VIDEO_EXTENSIONS


def _has_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def glob_root(pattern: Path) -> Path:
    """The fixed part of a glob, before its first component with a wildcard (`clips/**/*.mp4` →
    `clips`): a glob's outputs keep their layout below it, as a folder's keep theirs below the
    folder, so both spellings of one batch name the same outputs (and --skip-existing finds them)."""
    parts = pattern.parts
    fixed = next(i for i, part in enumerate(parts) if _has_glob(part))
    return Path(*parts[:fixed]) if fixed else Path()


def _walk_inputs(root: Path, exclude: Path | None) -> Iterator[Path]:
    """Videos and image sequences under `root`, sorted, skipping hidden folders and the output
    folder. A folder of numbered images (and no videos) is one sequence, given as its pattern."""
    for folder, subdirs, files in os.walk(root):
        here = Path(folder)
        subdirs[:] = sorted(
            d
            for d in subdirs
            if not d.startswith(".") and (exclude is None or (here / d).resolve() != exclude)
        )
        names = sorted(name for name in files if not name.startswith("."))
        images = sequence_in(here, names)
        if images is not None:
            yield images
            continue
        for name in names:
            if is_video_name(here / name):
                yield here / name


def sequence_in(folder: Path, names: list[str] | None = None) -> Path | None:
    """The pattern of `folder`'s numbered images when they are its input, else None (its videos
    are). A folder that holds both videos and numbered images is refused: which is meant is the
    user's choice, and either spelling (`folder/*.mp4`, `folder/%04d.png`) says it."""
    names = sorted(p.name for p in folder.iterdir() if p.is_file()) if names is None else names
    pattern = sequence.folder_pattern(folder, [n for n in names if not n.startswith(".")])
    if pattern is None:
        return None
    videos = [n for n in names if is_video_name(folder / n)]
    if videos:
        raise UsageError(
            f"{folder} holds both videos ({videos[0]}) and numbered images ({pattern.name}): give "
            f"the videos ({folder / '*'}{Path(videos[0]).suffix}) or the images ({pattern}) as the input"
        )
    return pattern


def output_name(source: Path, suffix: str, fmt: str | None = None) -> str:
    """The output of `source` inside an output folder. A video keeps its container (`clip.mp4` →
    `clip{suffix}.mp4`; one we cannot write becomes `.mkv`); an image sequence stays one, in a
    folder named after its own (`shot/%04d.png` → `shot{suffix}/%04d.png`, PNG unless TIFF).
    `fmt` (--format) picks the output kind instead: `png`/`tiff` or a video extension."""
    if sequence.is_pattern(source):
        stem = source.parent.resolve().name
        fmt = fmt or ("tiff" if source.suffix.lower() in (".tif", ".tiff") else "png")
    else:
        stem = source.stem
    if fmt in IMAGE_KINDS:
        return f"{stem}{suffix}/{sequence.output_pattern_name(source, IMAGE_KINDS[fmt])}"
    ext = f".{fmt}" if fmt else writable_extension(source.suffix.lower())
    return f"{stem}{suffix}{ext}"


def read_paths(paths: list[Path | str], suffix: str = "", fmt: str | None = None) -> tuple[list[Job], bool]:
    """(jobs, single): the command line's inputs then output. `single` is one input (a file or an
    image sequence), whose output is a file, an image pattern, or `folder/NAME` for an existing
    folder or one written with a trailing slash (created when needed); with `--format png|tiff`
    it is the folder the images go into. Otherwise outputs go under a folder, and a
    file-like output is refused. `fmt`: --format."""
    if len(paths) < 2:
        raise UsageError("give an input (file, folder or glob) and then the output")
    *inputs, output = (Path(p) for p in paths)
    inputs = [(sequence_in(i) or i) if i.is_dir() else i for i in inputs]
    as_folder = output.is_dir() or str(paths[-1]).endswith(("/", os.sep))
    _check_format(output, fmt)
    single = len(inputs) == 1 and not inputs[0].is_dir() and not _has_glob(str(inputs[0]))
    if single:
        if fmt in IMAGE_KINDS and not sequence.is_pattern(output):  # the folder the images go in
            target = output / sequence.output_pattern_name(inputs[0], IMAGE_KINDS[fmt])
        elif as_folder:
            target = output / output_name(inputs[0], suffix, fmt)
        elif fmt and not output.suffix:  # `--format mkv out`: out.mkv
            target = output.with_name(f"{output.name}.{fmt}")
        else:
            target = output
        return [Job(inputs[0], target)], True
    if not as_folder and not output.exists() and output.suffix.lower() in VIDEO_EXTENSIONS:
        raise UsageError(  # a typo'd batch would otherwise make a folder named like a video
            f"output must be a folder when upscaling a folder or several files, not a file name: "
            f"{output} (write {output}/ for a folder of that name)"
        )
    return plan_jobs(inputs, output, suffix, fmt), False


def _check_format(output: Path, fmt: str | None) -> None:
    """--format against the output's own spelling: they must not disagree."""
    if fmt is None:
        return
    if fmt not in IMAGE_KINDS and f".{fmt}" not in WRITABLE_VIDEO:
        kinds = ", ".join([*IMAGE_KINDS, *(e.lstrip(".") for e in WRITABLE_VIDEO)])
        raise UsageError(f"--format must be one of {kinds} (got {fmt!r})")
    ext = output.suffix.lower() if output.suffix.lower() in VIDEO_EXTENSIONS and not output.is_dir() else None
    wants_images = fmt in IMAGE_KINDS
    if (wants_images and ext) or (
        not wants_images and (sequence.is_pattern(output) or ext not in (None, f".{fmt}"))
    ):
        raise UsageError(f"--format {fmt} contradicts the output {output}: leave one out")


def single_job(paths: list[Path], option: str) -> tuple[Path, Path]:
    """The one (input file, output file) pair that --compare and --dry-run work on."""
    if len(paths) != 2 or Path(paths[0]).is_dir() or Path(paths[1]).is_dir() or str(paths[1]).endswith("/"):
        raise UsageError(f"{option} takes one input video and one output file")
    return Path(paths[0]), Path(paths[1])


def plan_jobs(inputs: Iterable[Path], output: Path, suffix: str = "", fmt: str | None = None) -> list[Job]:
    """(input, output) pairs for folders, globs and several files; outputs go under `output`.

    Folders keep their inner structure below `output`, globs theirs below the glob's fixed part
    (`glob_root`). Files that are another job's output (a rerun
    with `--suffix` into the input folder) are left out, as is the output folder itself.
    """
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise UsageError(f"output must be a folder when upscaling a folder or several files: {output}")
    out_resolved = output.resolve()
    jobs: list[Job] = []
    for raw in inputs:
        raw = Path(raw)
        if sequence.is_pattern(raw):
            jobs.append(Job(raw, output / output_name(raw, suffix, fmt)))
        elif raw.is_dir():
            for source in _walk_inputs(raw, exclude=out_resolved):
                rel = source.relative_to(raw).parent
                rel = rel.parent if sequence.is_pattern(source) else rel  # a sequence is its folder
                jobs.append(Job(source, output / rel / output_name(source, suffix, fmt)))
        elif _has_glob(str(raw)) and not raw.exists():
            matches = [Path(m) for m in sorted(glob.glob(str(raw), recursive=True))]
            videos = [m for m in matches if m.is_file() and is_video_name(m)]
            if not videos:
                raise InputError(f"no video files match {raw}")
            root = glob_root(raw)
            rel = [m.relative_to(root).parent for m in videos]
            jobs.extend(
                Job(m, output / r / output_name(m, suffix, fmt)) for m, r in zip(videos, rel, strict=True)
            )
        else:  # a plain file: missing or not a video is reported as that file's failure
            jobs.append(Job(raw, output / output_name(raw, suffix, fmt)))
    if not jobs:
        where = ", ".join(str(Path(i)) for i in inputs)
        raise InputError(f"no video files or numbered images found in {where}")
    return _drop_own_outputs(jobs)


def _drop_own_outputs(jobs: list[Job]) -> list[Job]:
    for job in jobs:
        if job.target.resolve() == job.source.resolve():
            raise UsageError(
                f"the output would replace its input {job.source}: use --suffix or another folder"
            )
    targets = {job.target.resolve() for job in jobs}
    kept = [job for job in jobs if job.source.resolve() not in targets]
    seen: dict[Path, Path] = {}
    for job in kept:
        key = job.target.resolve()
        if key in seen:
            raise UsageError(f"{seen[key]} and {job.source} would both be written to {job.target}")
        seen[key] = job.source
    return kept


def raise_if_failed(outcomes: list[Outcome]) -> None:
    """A batch exits 7 when a file failed or came from a damaged input (its output lacks frames)."""
    failed = [o for o in outcomes if o.status == "failed"]
    damaged = [o for o in outcomes if o.status == "damaged"]
    if failed or damaged:
        parts = []
        for group, word in ((failed, "failed"), (damaged, "had damaged input")):
            if group:
                names = ", ".join(o.source.name for o in group[:3]) + (", ..." if len(group) > 3 else "")
                parts.append(f"{len(group)} of {len(outcomes)} files {word} ({names})")
        raise BatchError("; ".join(parts))


def unfinished(jobs: list[Job], outcomes: list[Outcome], in_order: bool) -> list[Outcome]:
    """After Ctrl-C: an outcome for every job without one. Run `in_order` (one at a time), the first
    was in progress and the rest not started; run side by side, all were in progress."""
    have = {o.source for o in outcomes}
    left = [job for job in jobs if job.source not in have]
    return [
        Outcome(job.source, job.target, "unfinished" if i == 0 or not in_order else "not started")
        for i, job in enumerate(left)
    ]
