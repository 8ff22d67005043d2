"""The `vsrup` command line: parses options and calls library functions; no logic of its own.

Every user-facing failure is a `VsrupError`: `main` prints it on one line and exits with its code
(see README, "Exit codes"); `--debug` shows the traceback instead.
"""

from __future__ import annotations

import logging
import sys
from enum import Enum
from pathlib import Path

import typer

from vsrup import __version__
from vsrup.errors import Interrupted, UsageError, VsrupError

ROOT_HELP = """Upscale videos with one-step latent diffusion super-resolution.

[bold]Environment[/bold] [dim](a command-line option always wins)[/dim]

  VSRUP_MODEL, VSRUP_SCALE, VSRUP_DEVICE, VSRUP_DTYPE, VSRUP_TILE, VSRUP_MAX_MEMORY, VSRUP_PROGRESS:
  defaults for the options of the same name (each command's --help shows which it reads).

  VSRUP_CACHE: converted weights (default $XDG_CACHE_HOME/vsrup or ~/.cache/vsrup);
  VSRUP_WEIGHTS: another model registry file; HF_HOME, HF_HUB_OFFLINE: the Hugging Face cache.

[bold]Shell completion[/bold]

  vsrup --install-completion      [dim]# bash, zsh, fish or PowerShell; then open a new shell[/dim]

  vsrup --show-completion         [dim]# print the script to install it yourself[/dim]
"""

app = typer.Typer(
    name="vsrup",
    help=ROOT_HELP,
    add_completion=True,  # --install-completion / --show-completion (documented above)
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
_state = {"debug": False}


class ProgressMode(str, Enum):
    auto = "auto"
    bar = "bar"
    json = "json"
    quiet = "quiet"


class CompareMode(str, Enum):
    split = "split"
    side = "side"


class BundleDtype(str, Enum):
    fp16 = "fp16"
    bf16 = "bf16"
    fp32 = "fp32"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vsrup {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    _state["debug"] = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="vsrup: %(message)s")


UPSCALE_HELP = """Upscale a video (or every video of a folder) and keep its audio, subtitles and timing.

[bold]Examples[/bold]

  vsrup upscale in.mp4 out.mp4                     [dim]# ×4 with the built-in model[/dim]

  vsrup upscale in.mp4 out.mp4 --scale 2 --crf 16   [dim]# ×2, higher quality encode[/dim]

  vsrup upscale in.mkv out.mkv --model dloral --tile 96   [dim]# diffusion model, tiled[/dim]

  vsrup upscale in.mp4 out.mp4 --progress json      [dim]# one JSON object per line[/dim]

  vsrup upscale clips/ out/ --suffix _x4 --skip-existing   [dim]# a folder, keeping its layout[/dim]

  vsrup upscale a.mp4 b.mkv "more/*.mov" out/       [dim]# several inputs into one folder[/dim]

  vsrup upscale long.mp4 out.mp4 --resume           [dim]# rerun after a crash to continue[/dim]
"""


@app.command(help=UPSCALE_HELP)
def upscale(
    paths: list[Path] = typer.Argument(
        ...,
        help="Inputs (videos, folders, globs), then the output: a file for one input video (its "
        "extension picks the container), else a folder.",
        show_default=False,
    ),
    scale: int = typer.Option(4, "--scale", "-s", envvar="VSRUP_SCALE", help="Upscaling factor: 2 or 4."),
    model: str = typer.Option(
        "tiny",
        "--model",
        "-m",
        envvar="VSRUP_MODEL",
        help="Model name (see `vsrup models`) or a converted bundle folder.",
    ),
    window: int = typer.Option(0, help="Frames per temporal window (0: the model's default)."),
    overlap: int = typer.Option(-1, help="Frames shared by consecutive windows (-1: the model's default)."),
    tile: int = typer.Option(
        -1,
        envvar="VSRUP_TILE",
        help="Spatial tile size in latent pixels (-1: chosen from the device's free memory, 0: no tiling).",
    ),
    device: str = typer.Option("auto", envvar="VSRUP_DEVICE", help="auto, cpu, cuda or cuda:N."),
    dtype: str = typer.Option(
        "auto", envvar="VSRUP_DTYPE", help="auto (fp16 on GPU, fp32 on CPU), fp16, bf16, fp32."
    ),
    compile_model: bool = typer.Option(
        False,
        "--compile",
        help="torch.compile the model's heavy modules (CUDA only; slow first window, faster after).",
    ),
    max_memory: float = typer.Option(
        None,
        "--max-memory",
        envvar="VSRUP_MAX_MEMORY",
        help="GiB of device memory to use at most, per process (tiles and window are sized to it; on "
        "CUDA the allocator enforces it). For a shared GPU, or to check that a job fits a smaller card.",
        show_default=False,
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Print the chosen device, window, overlap, tile and speed switches."
    ),
    codec: str = typer.Option(
        None, help="Video encoder (default by extension: .mp4 → libx264, .mkv → libx264)."
    ),
    crf: int = typer.Option(None, help="Encoder quality (x264/x265 CRF, default 18)."),
    preset: str = typer.Option(None, help="Encoder preset, e.g. slow, medium, veryfast."),
    pix_fmt: str = typer.Option(
        None, "--pix-fmt", help="Output pixel format (default: yuv420p, 10-bit for 10-bit input)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", "-y", help="Replace an existing output file."),
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
    from vsrup.batch import interrupted, treat_sigterm_as_interrupt, upscale_paths
    from vsrup.engine import UpscaleSettings
    from vsrup.progress import make_reporter
    from vsrup.video import EncodeSettings

    settings = UpscaleSettings(
        scale=scale,
        model=model,
        window=window or None,
        overlap=None if overlap < 0 else overlap,
        tile=None if tile < 0 else tile,
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
        prompt=prompt,
    )
    if dry_run:
        from vsrup.estimate import dry_run as estimate_run

        estimate_run(paths, settings, compare and compare.value, as_json=progress == ProgressMode.json)
        return
    reporter = make_reporter("quiet" if quiet else progress.value)
    treat_sigterm_as_interrupt()
    try:
        if compare is not None:
            from vsrup.compare import compare_paths

            compare_paths(paths, settings, compare.value, reporter)
        elif ray_address:
            from vsrup.cluster import upscale_ray

            upscale_ray(paths, settings, reporter, ray_address, suffix=suffix, skip_existing=skip_existing)
        elif devices:
            from vsrup.parallel import upscale_devices

            upscale_devices(paths, settings, devices, reporter, suffix=suffix, skip_existing=skip_existing)
        else:
            upscale_paths(paths, settings, reporter, suffix=suffix, skip_existing=skip_existing)
    except KeyboardInterrupt as exc:  # typer would turn it into a silent exit code
        raise interrupted(exc, resume) from None
    finally:
        reporter.close()


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
    scale: int = typer.Option(4, "--scale", "-s", envvar="VSRUP_SCALE", help="Upscaling factor: 2 or 4."),
    model: str = typer.Option(
        "tiny",
        "--model",
        "-m",
        envvar="VSRUP_MODEL",
        help="Model name (see `vsrup models`) or a converted bundle folder.",
    ),
    zoom: int = typer.Option(
        3, help="Extra enlargement of the detail crops (they show 1/zoom of the frame)."
    ),
    tile: int = typer.Option(
        0, envvar="VSRUP_TILE", help="Spatial tile size in latent pixels (0: no tiling)."
    ),
    device: str = typer.Option("auto", envvar="VSRUP_DEVICE", help="auto, cpu, cuda or cuda:N."),
    dtype: str = typer.Option(
        "auto", envvar="VSRUP_DTYPE", help="auto (fp16 on GPU, fp32 on CPU), fp16, bf16, fp32."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", "-y", help="Replace an existing PNG."),
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
        tile=tile,
        zoom=zoom,
        overwrite=overwrite,
    )
    typer.echo(str(result.path))


MODELS_HELP = """List models with their download size, license and whether each is ready to use.

Sizes marked ≈ are estimates for files weights.toml does not pin yet.

[bold]Examples[/bold]

  vsrup models

  vsrup models --json
"""


@app.command("models", help=MODELS_HELP)
def models_command(
    json_: bool = typer.Option(False, "--json", help="Print a JSON list, one object per model."),
) -> None:
    import json

    from vsrup import weights

    rows = weights.list_models()
    if json_:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("model", "ready", "size", "license", "source", "description")
    for row in rows:
        size = weights.describe_size(row)
        table.add_row(
            row["name"],
            "yes" if row["ready"] else "no",
            size,
            row["license"],
            row["source"],
            row["description"],
        )
    Console().print(table)


DOWNLOAD_HELP = """Download, verify (sha256 + size) and convert model weights once; later runs load them offline.

[bold]Examples[/bold]

  vsrup download-weights dloral

  vsrup download-weights dloral --local-file ~/Downloads/model.pkl

  vsrup download-weights dloral --local-file model.pkl --base-dir ~/sd21-base   [dim]# no network[/dim]

  HF_HUB_OFFLINE=1 vsrup download-weights --all   [dim]# only what is cached already[/dim]
"""


@app.command("download-weights", help=DOWNLOAD_HELP)
def download_weights_command(
    names: list[str] = typer.Argument(
        None, help="Models to download (see `vsrup models`).", show_default=False
    ),
    all_: bool = typer.Option(False, "--all", help="Download every model in weights.toml."),
    cache_dir: Path = typer.Option(
        None, "--cache-dir", help="Hugging Face hub cache to use (default: $HF_HUB_CACHE, else $HF_HOME/hub)."
    ),
    revision: str = typer.Option(
        None, help="Hub commit, branch or tag instead of the pinned revision (one model)."
    ),
    local_file: Path = typer.Option(
        None, "--local-file", help="Your own copy of the checkpoint (file, or a folder in the repo's layout)."
    ),
    trust_unverified: bool = typer.Option(
        False,
        "--trust-unverified",
        help="Download files that weights.toml pins no sha256 for (their sha256 is printed).",
    ),
    base_dir: Path = typer.Option(
        None,
        "--base-dir",
        help="Your own Stable Diffusion 2.1-base folder (diffusers layout) instead of downloading sd21-base.",
        show_default=False,
    ),
    dtype: BundleDtype = typer.Option(
        None,
        "--dtype",
        help="Precision of the converted weights (default fp16; fp32 keeps the reference weights exactly).",
        show_default=False,
    ),
) -> None:
    from vsrup import weights
    from vsrup.progress import DownloadBars

    with DownloadBars() as bars:
        done = weights.download_weights(
            names or [],
            all_,
            cache_dir,
            revision,
            local_file,
            trust_unverified,
            bars.update,
            base_dir=base_dir,
            dtype=dtype and dtype.value,
        )
    for row in done:
        typer.echo(f"{row['name']}: ready  {row['path']}")


CONVERT_HELP = """Convert an official checkpoint you already have, with your own Stable Diffusion 2.1-base
folder (diffusers layout: unet/, vae/, text_encoder/, tokenizer/): no network needed.

The checkpoint is read with torch.load(weights_only=True), its LoRA adapters merged, and the
result written as one safetensors bundle. Without --out it goes where `--model NAME` finds it.

[bold]Examples[/bold]

  vsrup convert dloral --checkpoint model.pkl --base ~/sd21-base

  vsrup convert osediff --checkpoint osediff.pkl --base ~/sd21-base --dtype fp32 --out osediff-fp32

  vsrup upscale in.mp4 out.mp4 --model osediff-fp32   [dim]# a bundle folder works as --model[/dim]
"""


@app.command("convert", help=CONVERT_HELP)
def convert_command(
    name: str = typer.Argument(..., help="The model: dloral or osediff."),
    checkpoint: Path = typer.Option(
        ..., "--checkpoint", help="DLoRAL's model.pkl or OSEDiff's osediff.pkl.", show_default=False
    ),
    base: Path = typer.Option(
        ..., "--base", help="Your Stable Diffusion 2.1-base folder (diffusers layout).", show_default=False
    ),
    out: Path = typer.Option(
        None, "--out", help="Bundle folder to write (default: the vsrup cache).", show_default=False
    ),
    dtype: BundleDtype = typer.Option(
        "fp16",
        "--dtype",
        help="Precision of the converted weights (fp32 keeps the reference weights exactly).",
    ),
) -> None:
    from vsrup import weights

    typer.echo(f"{name}: ready  {weights.convert_local(name, checkpoint, base, out, dtype.value)}")


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
    model: str = typer.Option(
        "tiny", "--model", "-m", help="Model name (see `vsrup models`) or a converted bundle folder."
    ),
    scale: int = typer.Option(4, "--scale", "-s", help="Upscaling factor: 2 or 4."),
    clip: Path = typer.Option(
        None, "--clip", help="Input clip (default: examples/dog_320x180.mp4).", show_default=False
    ),
    size: str = typer.Option(
        None, "--size", help="Make the clip this size, e.g. 640x360 (from --clip).", show_default=False
    ),
    frames: int = typer.Option(
        None, "--frames", help="Make the clip this many frames long (looped).", show_default=False
    ),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    dtype: str = typer.Option("auto", help="auto (fp16 on GPU, fp32 on CPU), fp16, bf16, fp32."),
    window: int = typer.Option(0, help="Frames per temporal window (0: the model's default)."),
    overlap: int = typer.Option(-1, help="Frames shared by consecutive windows (-1: the model's default)."),
    tile: int = typer.Option(-1, help="Latent tile (-1: from free memory, 0: none)."),
    compile_model: bool = typer.Option(False, "--compile", help="torch.compile the model (CUDA only)."),
    max_memory: float = typer.Option(
        None, "--max-memory", help="GiB of device memory to plan for and (CUDA) cap at.", show_default=False
    ),
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

    options = bench.BenchOptions(
        model=model,
        scale=scale,
        device=device,
        dtype=dtype,
        clip=clip,
        size=bench.parse_size(size) if size else None,
        frames=frames,
        window=window or None,
        overlap=None if overlap < 0 else overlap,
        tile=None if tile < 0 else tile,
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
    report = bench.run_bench(options, log=log)
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
    overwrite: bool = typer.Option(False, "--overwrite", "-y", help="Replace an existing output file."),
) -> None:
    from vsrup import segments

    if len(paths) < 2:
        raise UsageError("give at least one segment and the output file")
    frames = segments.join(source, paths[:-1], paths[-1], overwrite)
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


def main() -> None:
    """Console entry point: one-line errors with distinct exit codes."""
    try:
        # Not standalone, the parser *returns* the code of an in-command exit instead of raising.
        code = app(standalone_mode=False)
    except VsrupError as exc:
        _fail(exc, exc)
    except KeyboardInterrupt as exc:
        _fail(exc, Interrupted("interrupted; no partial output was left behind"))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort as exc:
        _fail(exc, Interrupted("aborted"))
    except Exception as exc:  # usage errors from the parser, and anything unexpected
        if callable(getattr(exc, "show", None)):  # the parser's own usage message
            exc.show()
            sys.exit(UsageError.exit_code)
        _fail(
            exc, VsrupError(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for details)")
        )
    if code == Interrupted.exit_code:
        _fail(KeyboardInterrupt(), Interrupted("interrupted; no partial output was left behind"))
    if isinstance(code, int) and code:
        sys.exit(code)


def _fail(original: BaseException, error: VsrupError) -> None:
    if _state["debug"]:
        import traceback

        traceback.print_exception(original)
    print(f"vsrup: error: {error}", file=sys.stderr)
    sys.exit(error.exit_code)


if __name__ == "__main__":
    main()
