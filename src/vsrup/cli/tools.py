"""The commands that look at videos and models around an upscale: info, preview, bench, join, train, eval."""

from __future__ import annotations

from pathlib import Path

import typer

from vsrup.cli import options
from vsrup.cli.app import app
from vsrup.errors import UsageError

INFO_HELP = """Show what is in a video: streams, codecs, resolution, frame rate (constant or variable),
frame count, duration, pixel format, colour tags, rotation, audio and subtitle streams.

Variable frame rate is judged from the packet timestamps of the first 10 seconds.

[bold]Examples[/bold]

  vsrup info in.mp4

  vsrup info in.mp4 --json | jq .video.frames      [dim]# for scripts[/dim]

  vsrup info in.mkv --count                         [dim]# count frames exactly by demuxing[/dim]
"""


@app.command("info", help=INFO_HELP)
def info_command(
    source: Path = typer.Argument(..., help="Input video."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    count: bool = typer.Option(
        False, "--count", help="Count frames by demuxing every packet, even when the header has a count."
    ),
) -> None:
    import json

    from vsrup.info import describe, render

    report = describe(source, count=count)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        from rich.console import Console

        Console().print(render(report))


PREVIEW_HELP = """Upscale one moment of a video and write a PNG to judge the result before a long run:
\\[input, nearest-neighbour enlarged | bicubic | model] side by side, and below them the same three
zoomed into the most detailed region of the frame. Prints the PNG's path.

The model sees a whole temporal window around the chosen frame, as in a real run.

[bold]Examples[/bold]

  vsrup preview in.mp4                              [dim]# the middle frame, built-in model, ×4[/dim]

  vsrup preview in.mp4 --at 12.5 -o look.png        [dim]# the frame shown at 12.5 s[/dim]

  vsrup preview in.mp4 --model dloral --scale 4 --zoom 4
"""


@app.command("preview", help=PREVIEW_HELP)
def preview_command(
    source: Path = typer.Argument(..., help="Input video."),
    at: float = typer.Option(
        None, "--at", "-t", help="Time in seconds from the start (default: the middle).", show_default=False
    ),
    output: Path = typer.Option(
        None,
        "--output",
        "-o",
        help="PNG to write (default: <input name>-preview-<time>s.png here).",
        show_default=False,
    ),
    scale: options.Scale = None,  # None: 4, or a community model file's own
    model: options.Model = "tiny",
    zoom: int = typer.Option(
        3, help="Extra enlargement of the detail crops (they show 1/zoom of the frame)."
    ),
    tile: options.Tile = 0,
    device: options.Device = "auto",
    dtype: options.Dtype = "auto",
    overwrite: options.Overwrite = False,
) -> None:
    from vsrup.preview import make_preview

    result = make_preview(
        source,
        output,
        at,
        model=model,
        scale=scale,
        device=device,
        dtype=dtype,
        tile=options.tile_or_none(tile),
        zoom=zoom,
        overwrite=overwrite,
    )
    typer.echo(str(result.path))


BENCH_HELP = """Measure frames per second and peak memory: the whole upscale, each stage, and the bicubic floor.

Each run happens in a fresh process, so its peak memory is its own. Also checks that memory does
not grow with the video: the same upscale on N and on 8·N frames.

[bold]Examples[/bold]

  vsrup bench                                  [dim]# tiny ×4 on the sample clip[/dim]

  vsrup bench --size 640x360 --frames 48 --json out.json   [dim]# a 360p clip made from it[/dim]

  vsrup bench --model dloral --device cuda --dtype fp16 --compile --skip length
"""


@app.command("bench", help=BENCH_HELP)
def bench_command(
    model: options.Model = "tiny",
    scale: options.Scale = 4,
    clip: Path = typer.Option(
        None, "--clip", help="Input clip (default: examples/dog_320x180.mp4).", show_default=False
    ),
    size: str = typer.Option(
        None, "--size", help="Make the clip this size, e.g. 640x360 (from --clip).", show_default=False
    ),
    frames: int = typer.Option(
        None, "--frames", help="Make the clip this many frames long (looped).", show_default=False
    ),
    device: options.Device = "auto",
    dtype: options.Dtype = "auto",
    window: options.Window = 0,
    overlap: options.Overlap = -1,
    tile: options.Tile = -1,
    compile_model: options.Compile = False,
    max_memory: options.MaxMemory = None,
    random_weights: bool = typer.Option(
        False, "--random-weights", help="Untrained weights of the same architecture (speed only; tiny)."
    ),
    repeats: int = typer.Option(2, help="Timed repeats of the per-stage measurement (best kept)."),
    length_frames: int = typer.Option(
        96, "--length-frames", help="N of the memory-vs-length check (0: skip)."
    ),
    length_factor: int = typer.Option(8, "--length-factor", help="The long clip is this many times N."),
    skip: str = typer.Option(
        "", "--skip", help="Comma-separated parts to leave out: floor, decode, encode, stages, length."
    ),
    json_path: str = typer.Option(
        None,
        "--json",
        help="Write the report as JSON to this file (- for stdout, then no table).",
        show_default=False,
    ),
) -> None:
    import json

    from vsrup import bench

    bench_options = bench.BenchOptions(
        model=model,
        scale=scale,
        device=device,
        dtype=dtype,
        clip=clip,
        size=bench.parse_size(size) if size else None,
        frames=frames,
        window=options.window_or_none(window),
        overlap=options.overlap_or_none(overlap),
        tile=options.tile_or_none(tile),
        compile=compile_model,
        max_memory_gib=max_memory,
        random_weights=random_weights,
        repeats=repeats,
        length_frames=length_frames,
        length_factor=length_factor,
        skip=tuple(part.strip() for part in skip.split(",") if part.strip()),
    )
    to_stdout = json_path == "-"
    log = None if to_stdout else (lambda text: typer.echo(f"bench: {text}", err=True))
    report = bench.run_bench(bench_options, log=log)
    if json_path:
        text = json.dumps(report, indent=2)
        if to_stdout:
            typer.echo(text)
        else:
            Path(json_path).write_text(text + "\n")
    if not to_stdout:
        bench.render(report)


JOIN_HELP = """Join video-only segments made with --start/--end (in order) into OUTPUT, with SOURCE's
audio and subtitles.

[bold]Example[/bold]

  vsrup upscale long.mp4 part1.mkv --start 0 --end 600

  vsrup upscale long.mp4 part2.mkv --start 600

  vsrup join long.mp4 part1.mkv part2.mkv long_x4.mkv
"""


@app.command("join", help=JOIN_HELP)
def join_command(
    source: Path = typer.Argument(..., help="The original input (its audio and subtitles are copied)."),
    paths: list[Path] = typer.Argument(..., help="The segments in order, then the output file."),
    overwrite: options.Overwrite = False,
) -> None:
    from vsrup.io.concat import join

    if len(paths) < 2:
        raise UsageError("give at least one segment and the output file")
    frames = join(source, paths[:-1], paths[-1], overwrite)
    typer.echo(f"{paths[-1]}: {frames} frames")


# Training and evaluation keep their own argparse interfaces (`python -m vsrup.train` works too);
# these commands hand the arguments straight through, --help included.
_PASSTHROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


@app.command(
    "train",
    context_settings=_PASSTHROUGH,
    help="Train vsrup's tiny model on videos or frame folders and write safetensors + JSON config. "
    "Run `vsrup train --help` for the options; docs/MODEL_CARD.md has the commands behind the shipped weights.",
)
def train_command(ctx: typer.Context) -> None:
    from vsrup.train.__main__ import main as train_main

    raise typer.Exit(train_main(list(ctx.args)) or 0)


@app.command(
    "eval",
    context_settings=_PASSTHROUGH,
    help="Quality benchmark: PSNR-Y, SSIM-Y and flicker of a model beside bicubic and Lanczos on "
    "HR videos or frame folders (default: the held-out set). Run `vsrup eval --help` for the options.",
)
def eval_command(ctx: typer.Context) -> None:
    from vsrup.evaluate import main as eval_main

    raise typer.Exit(eval_main(list(ctx.args)) or 0)
