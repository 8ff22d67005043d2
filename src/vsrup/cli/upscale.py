"""`vsrup upscale`: one command for one file, a folder, several devices or a Ray cluster."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from vsrup.cli import options
from vsrup.cli.app import app


class ProgressMode(str, Enum):
    auto = "auto"
    bar = "bar"
    json = "json"
    quiet = "quiet"


class CompareMode(str, Enum):
    split = "split"
    side = "side"


class AudioMode(str, Enum):
    auto = "auto"
    copy = "copy"
    none = "none"


UPSCALE_HELP = """Upscale a video (or every video of a folder) and keep its audio, subtitles and timing.

[bold]Examples[/bold]

  vsrup upscale in.mp4 out.mp4                     [dim]# ×4 with the built-in model[/dim]

  vsrup upscale in.mp4 out.mp4 --scale 2 --crf 16   [dim]# ×2, higher quality encode[/dim]

  vsrup upscale in.mkv out.mkv --model dloral --tile 96   [dim]# diffusion model, tiled[/dim]

  vsrup upscale in.mp4 out.mp4 --progress json      [dim]# one JSON object per line[/dim]

  vsrup upscale clips/ out/ --suffix _x4 --skip-existing   [dim]# a folder, keeping its layout[/dim]

  vsrup upscale a.mp4 b.mkv "more/*.mov" out/       [dim]# several inputs into one folder[/dim]

  vsrup upscale long.mp4 out.mp4 --resume           [dim]# rerun after a crash to continue[/dim]

  vsrup upscale "frames/%04d.png" out.mp4 --fps 24  [dim]# numbered images in (a folder of them too)[/dim]

  vsrup upscale in.mp4 frames_x4 --format png       [dim]# numbered PNGs out (16-bit for >8-bit input)[/dim]
"""


@app.command(help=UPSCALE_HELP)
def upscale(
    paths: list[str] = typer.Argument(  # str, not Path: a trailing / (output folder) must survive
        ...,
        metavar="INPUT... OUTPUT",
        help="Inputs (videos, image sequences as frames/%04d.png or a folder of numbered images, "
        "folders of videos, globs), then the output: a file for one input (its extension picks the "
        "container; an existing folder or one ending in / gets the input's name), an image pattern "
        "(out/%04d.png), else a folder.",
        show_default=False,
    ),
    scale: options.Scale = 4,
    model: options.Model = "tiny",
    window: options.Window = 0,
    overlap: options.Overlap = -1,
    tile: options.Tile = -1,
    device: options.Device = "auto",
    dtype: options.Dtype = "auto",
    compile_model: options.Compile = False,
    max_memory: options.MaxMemory = None,
    scene_cuts: bool = typer.Option(
        True,
        "--scene-cuts/--no-scene-cuts",
        help="Restart the temporal windows at shot changes, so no frame borrows detail from another shot "
        "(temporal models only).",
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Print the chosen device, window, overlap, tile and speed switches."
    ),
    codec: str = typer.Option(
        None,
        metavar="NAME",
        help="Video encoder (default by extension: .mp4/.mov/.mkv → libx264 (H.264), libx265 (HEVC) for "
        ">8-bit input; .webm → libvpx-vp9 (VP9)); ffv1 in .mkv is lossless.",
        show_default=False,
    ),
    crf: int = typer.Option(None, help="Encoder quality (x264/x265 CRF, default 18)."),
    preset: str = typer.Option(None, help="Encoder preset, e.g. slow, medium, veryfast."),
    pix_fmt: str = typer.Option(
        None, "--pix-fmt", help="Output pixel format (default: yuv420p, 10-bit for 10-bit input)."
    ),
    audio: AudioMode = typer.Option(
        AudioMode.auto,
        "--audio",
        help="auto: copy the audio, re-encoding only what the container cannot hold (Opus for .webm, "
        "AAC for .mp4); copy: copy or fail; none: leave the audio out.",
    ),
    fps: str = typer.Option(
        None,
        "--fps",
        help="Frame rate of image-sequence inputs: 25 (the default), 23.976, 24000/1001…",
        show_default=False,
    ),
    output_format: str = typer.Option(
        None,
        "--format",
        help="Output kind: png or tiff (numbered images in a folder; 16-bit for >8-bit input) or a "
        "video extension (mp4, mkv…). Default: the output's extension, else like the input.",
        show_default=False,
    ),
    overwrite: options.Overwrite = False,
    progress: ProgressMode = typer.Option(
        ProgressMode.auto, envvar="VSRUP_PROGRESS", help="Progress display."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Same as --progress quiet."),
    suffix: str = typer.Option("", help="Added to output names in a folder, e.g. _x4: clip_x4.mp4."),
    skip_existing: bool = typer.Option(
        False, "--skip-existing", help="Skip inputs whose output exists (outputs are only ever complete)."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Keep finished parts of a long job beside the output; rerun to continue."
    ),
    compare: CompareMode = typer.Option(
        None,
        "--compare",
        help="Write a comparison video [bold]instead of[/bold] the upscaled one (one input file): "
        "split = bicubic left half | model right half, output size; side = \\[bicubic | model], twice as wide.",
        show_default=False,
    ),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Print the settings that would be used and a time and peak-memory estimate from a short "
        "calibration run on the first frames (one input file); write nothing. JSON with --progress json.",
    ),
    start: str = typer.Option(
        None,
        "--start",
        help="Upscale only from here: seconds (12.5), a clock time (00:01:02.5) or a frame index (120f). "
        "The output is a video-only segment, identical to that part of a whole run.",
        show_default=False,
    ),
    end: str = typer.Option(
        None, "--end", help="Upscale only up to here (exclusive); same forms as --start.", show_default=False
    ),
    devices: str = typer.Option(
        None,
        "--devices",
        envvar="VSRUP_DEVICES",
        help="Split each video into segments and run one worker per device: cuda:0,cuda:1,… or all.",
        show_default=False,
    ),
    ray_address: str = typer.Option(
        None,
        "--ray",
        help="Run segments and files as Ray tasks: local (start Ray here), auto (this machine's "
        'cluster) or ray://HEAD:10001. Needs pip install "vsrup\\[ray]".',
        show_default=False,
    ),
    reference_postprocess: bool = typer.Option(
        False,
        "--reference-postprocess",
        help="dloral/osediff: finish frames as the official code does (truncated to 8 bit before and "
        "after the colour fix, resized back with PIL) instead of vsrup's rounding, which keeps "
        "half a level on average and the extra bits of a 10-bit output.",
    ),
    prompt: str = typer.Option(
        "",
        "--prompt",
        help="Text the diffusion models (dloral, osediff) condition on, e.g. a caption of the video "
        "(default: empty, as converted). Encoded once by the SD 2.1 text encoder, then cached.",
        show_default=False,
    ),
) -> None:
    from vsrup.weights import preflight

    preflight(model)  # missing weights fail here, before torch and the model libraries load
    from vsrup.io.sequence import parse_fps
    from vsrup.io.writer import EncodeSettings
    from vsrup.progress import make_reporter
    from vsrup.run.interrupts import interrupted, treat_sigterm_as_interrupt
    from vsrup.upscale import UpscaleSettings

    settings = UpscaleSettings(
        scale=scale,
        model=model,
        window=options.window_or_none(window),
        overlap=options.overlap_or_none(overlap),
        tile=options.tile_or_none(tile),
        device=device,
        dtype=dtype,
        encode=EncodeSettings(codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt),
        overwrite=overwrite,
        compile=compile_model,
        verbose=verbose,
        resume=resume,
        start=start,
        end=end,
        max_memory_gib=max_memory,
        scene_cuts=scene_cuts,
        prompt=prompt,
        reference_postprocess=reference_postprocess,
        audio=audio.value,
        fps=parse_fps(fps) if fps is not None else None,
        output_format=output_format.lower().lstrip(".") if output_format else None,
    )
    if dry_run:
        from vsrup.estimate import dry_run as estimate_run

        estimate_run(paths, settings, compare and compare.value, as_json=progress == ProgressMode.json)
        return
    reporter = make_reporter("quiet" if quiet else progress.value)
    treat_sigterm_as_interrupt()
    try:
        if compare is not None:
            _compare(paths, settings, compare.value, reporter)
        else:
            from vsrup.run import upscale_paths

            upscale_paths(paths, settings, reporter, suffix, skip_existing, devices, ray_address)
    except KeyboardInterrupt as exc:  # typer would turn it into a silent exit code
        raise interrupted(exc, resume) from None
    finally:
        reporter.close()


def _compare(paths: list[Path], settings, mode: str, reporter) -> None:
    """`--compare MODE`: the comparison video of one input file, by the ordinary upscale path."""
    from dataclasses import replace

    from vsrup.run.jobs import single_job
    from vsrup.upscale import Upscaler

    source, target = single_job(paths, "--compare")
    Upscaler(replace(settings, compare=mode)).upscale_file(source, target, reporter)
