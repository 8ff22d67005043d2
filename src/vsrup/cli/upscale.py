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

  vsrup upscale in.mp4 out.mp4                    [dim]# ×4, the built-in model[/dim]

  vsrup upscale in.mp4 out.mp4 -s 2 --crf 16      [dim]# ×2, a finer encode[/dim]

  vsrup upscale in.mkv out.mkv -m dloral --tile 96  [dim]# diffusion, tiled[/dim]

  vsrup upscale in.mp4 out.mp4 --progress json    [dim]# JSON lines[/dim]

  vsrup upscale clips/ out/ --suffix _x4 --skip-existing  [dim]# a folder[/dim]

  vsrup upscale a.mp4 b.mkv "more/*.mov" out/     [dim]# into one folder[/dim]

  vsrup upscale long.mp4 out.mp4 --resume         [dim]# continue after a crash[/dim]

  vsrup upscale "frames/%04d.png" out.mp4 --fps 24  [dim]# numbered images in[/dim]

  vsrup upscale in.mp4 frames_x4 --format png     [dim]# numbered PNGs out[/dim]
"""


@app.command(help=UPSCALE_HELP)
def upscale(
    paths: list[str] = typer.Argument(  # str, not Path: a trailing / (output folder) must survive
        ...,
        metavar="INPUT... OUTPUT",
        help="Videos, image sequences (frames/%04d.png, or a folder of numbered images), folders "
        "or globs, then the output: a file for one input (its extension picks the container), an "
        "image pattern (out/%04d.png), else a folder (an existing one, or ending in /).",
        show_default=False,
    ),
    scale: options.Scale = None,  # None: 4, or a community model file's own scale
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
        help="Restart windows at shot changes (temporal models).",
        rich_help_panel=options.MEMORY_PANEL,
    ),
    verbose: bool = typer.Option(
        False,
        "--verbose",
        "-v",
        help="Print the chosen device, window, tile and speed switches.",
        rich_help_panel=options.SHOW_PANEL,
    ),  # fmt: skip
    codec: str = typer.Option(
        None,
        metavar="NAME",
        help="Video encoder; by extension: libx264 (H.264; libx265 for >8-bit input) in "
        ".mp4/.mov/.mkv, libvpx-vp9 (VP9) in .webm; ffv1 in .mkv is lossless.",
        show_default=False,
        rich_help_panel=options.ENCODE_PANEL,
    ),
    crf: int = typer.Option(
        None,
        metavar="N",
        help="x264/x265 quality, lower is better (default 18).",
        rich_help_panel=options.ENCODE_PANEL,
    ),
    preset: str = typer.Option(
        None,
        metavar="NAME",
        help="Encoder preset: slow, medium, veryfast...",
        rich_help_panel=options.ENCODE_PANEL,
    ),
    pix_fmt: str = typer.Option(
        None,
        "--pix-fmt",
        metavar="FMT",
        help="Pixel format (default: yuv420p, 10-bit for >8-bit input; 4:4:4 and 4:2:2 kept in .mkv).",
        rich_help_panel=options.ENCODE_PANEL,
    ),
    audio: AudioMode = typer.Option(
        AudioMode.auto,
        "--audio",
        metavar="MODE",
        help="auto: copy, re-encode what the container cannot hold; copy: copy or fail; none: drop it.",
        rich_help_panel=options.ENCODE_PANEL,
    ),
    fps: str = typer.Option(
        None,
        "--fps",
        metavar="RATE",
        help="Frame rate of image-sequence inputs: 25 (the default), 23.976 or 24000/1001.",
        show_default=False,
        rich_help_panel=options.FILES_PANEL,
    ),
    output_format: str = typer.Option(
        None,
        "--format",
        metavar="KIND",
        help="png or tiff: numbered images in a folder (16-bit for >8-bit input); or a video "
        "extension (mp4, mkv). Default: the output's extension, else like the input.",
        show_default=False,
        rich_help_panel=options.FILES_PANEL,
    ),
    overwrite: options.Overwrite = False,
    progress: ProgressMode = typer.Option(
        ProgressMode.auto,
        envvar="VSRUP_PROGRESS",
        metavar="MODE",
        help="auto, bar, json or quiet.",
        rich_help_panel=options.SHOW_PANEL,
    ),  # fmt: skip
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="Same as --progress quiet.", rich_help_panel=options.SHOW_PANEL
    ),
    suffix: str = typer.Option(
        "",
        metavar="TEXT",
        help="Added to output names in a folder: _x4 makes clip_x4.mp4.",
        rich_help_panel=options.FILES_PANEL,
    ),  # fmt: skip
    skip_existing: bool = typer.Option(
        False,
        "--skip-existing",
        help="Skip inputs whose output exists (outputs are only ever complete).",
        rich_help_panel=options.FILES_PANEL,
    ),  # fmt: skip
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Keep finished parts beside the output; rerun to continue.",
        rich_help_panel=options.FILES_PANEL,
    ),  # fmt: skip
    compare: CompareMode = typer.Option(
        None,
        "--compare",
        metavar="MODE",
        help="Write a comparison video [bold]instead[/bold] (one input): split = bicubic left half, "
        "model right half; side = both side by side, twice as wide.",
        show_default=False,
        rich_help_panel=options.SHOW_PANEL,
    ),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Write nothing; print the settings and a time and peak-memory estimate from a short "
        "calibration run (one input; JSON with --progress json).",
        rich_help_panel=options.SHOW_PANEL,
    ),
    start: str = typer.Option(
        None,
        "--start",
        metavar="TIME",
        help="Upscale only from here: 12.5 (s), 00:01:02.5 or 120f (a frame); video only.",
        show_default=False,
        rich_help_panel=options.FILES_PANEL,
    ),
    end: str = typer.Option(
        None,
        "--end",
        metavar="TIME",
        help="Upscale only up to here (exclusive), as --start.",
        show_default=False,
        rich_help_panel=options.FILES_PANEL,
    ),  # fmt: skip
    devices: str = typer.Option(
        None,
        "--devices",
        envvar="VSRUP_DEVICES",
        metavar="LIST",
        help="One worker per device on segments of each video: cuda:0,cuda:1 or all.",
        show_default=False,
        rich_help_panel=options.SPLIT_PANEL,
    ),
    ray_address: str = typer.Option(
        None,
        "--ray",
        metavar="ADDR",
        help='Run on Ray: local, auto or ray://HEAD:10001 (pip install "vsrup\\[ray]").',
        show_default=False,
        rich_help_panel=options.SPLIT_PANEL,
    ),
    reference_postprocess: bool = typer.Option(
        False,
        "--reference-postprocess",
        help="Finish frames as the official code does (8-bit truncation, PIL resize) instead of "
        "rounding, which keeps half a level and a 10-bit output's extra bits.",
        rich_help_panel=options.DIFFUSION_PANEL,
    ),
    prompt: str = typer.Option(
        "",
        "--prompt",
        metavar="TEXT",
        help="Text to condition on, e.g. a caption (default: empty, as converted).",
        show_default=False,
        rich_help_panel=options.DIFFUSION_PANEL,
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
