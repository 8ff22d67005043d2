"""The training loop for the tiny model: seeded, resumable, logged.

Every step draws its data from `numpy.random.default_rng([seed, step])`, so a run resumed from a
checkpoint sees exactly the batches it would have seen, and (with the same thread count) reproduces
the uninterrupted run bit for bit. A run directory holds:

- `checkpoint.safetensors` (+ `.json` config) — model weights, the same format as the shipped asset;
- `optimizer.pt` — Adam state (torch.save; stays in the run dir, never shipped);
- `state.json` — step, settings, elapsed time; `log.jsonl` — one line of losses per `log_every` steps.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from vsrup.errors import UsageError
from vsrup.models.tiny import SCALES, TinyConfig, TinyVSR, load_tiny, save_tiny
from vsrup.train import losses
from vsrup.train.data import (
    DEFAULT_DATA,
    build_cache,
    default_sources,
    portable_path,
    sample_windows,
    still_images,
)
from vsrup.train.degrade import degrade, downscale, sample_params


@dataclass
class TrainSettings:
    out: str  # where the final weights go (.safetensors; the .json config is written beside it)
    scale: int = 4
    steps: int = 3000
    batch: int = 4
    frames: int = 5  # frames per training window: the recurrence needs a few to learn to carry state
    crop: int = 160  # HR crop size (LR is crop / scale); ≥ 40 LR px so DIS has room to match
    lr: float = 2e-3
    seed: int = 0
    data: list[str] = field(default_factory=list)  # videos / frame folders; empty = all of data_root
    data_root: str = ""  # default: ../shared/data beside the project root
    stills: str = ""  # folder of photographs for moving-camera windows (scripts/prep_wallpapers.py)
    per_still: int = 8  # camera windows per photograph
    run_dir: str = "runs/tiny"
    cache_dir: str = ""  # default: <run_dir>/cache
    clean_fraction: float = 0.6  # plain bicubic pairs: the benchmark's LR
    vary_start: float = 0.3  # fraction of the run after which frame-varying degradations begin
    vary_max: float = 0.5  # share of degraded windows that are frame-varying at the end
    width: int = 32
    refiner_blocks: int = 4
    align: str = "flow"  # temporal module: flow | offset | none (see TinyConfig)
    prop_blocks: int = 1
    aligned_inputs: bool = False  # encoder also sees the flow-aligned previous and next LR frames
    latent_stride: int = 1  # 2 for the ×2 model: the same cost per output pixel as ×4
    ckpt_every: int = 200
    log_every: int = 10
    eval_every: int = 100
    threads: int = 1
    cache_frames: int = 7  # frames per cached HR window (training windows are cut from these)
    cache_crop: int = 192  # cached HR crop size
    cache_windows: int = 40  # windows spread over each source, 3 crops each
    # Start from these weights (.safetensors; several comma-separated, later ones win): every
    # tensor whose name and shape match.
    init: str = ""


def warmup_cosine(step: int, steps: int, peak: float, warm_div: int, floor: float) -> float:
    """The learning rate at `step` of `steps`: a linear warm-up over the first steps // warm_div,
    then cosine decay from `peak` to `floor` × peak (every trainer here uses this shape)."""
    warm = max(1, steps // warm_div)
    if step < warm:
        return peak * (step + 1) / warm
    p = (step - warm) / max(1, steps - warm)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p)))


def lr_at(step: int, s: TrainSettings) -> float:
    """Short linear warm-up, then cosine decay to 2% of the peak."""
    return warmup_cosine(step, s.steps, s.lr, warm_div=30, floor=0.02)


def vary_prob(step: int, s: TrainSettings) -> float:
    """The curriculum: consistent-window degradations first, frame-varying ones phased in later."""
    p = step / max(1, s.steps)
    return 0.0 if p < s.vary_start else s.vary_max * (p - s.vary_start) / (1 - s.vary_start)


def make_batch(cache: np.ndarray, step: int, s: TrainSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """(LR, HR) windows for `step`, (B, T, 3, h, w) and (B, T, 3, H, W), fully determined by seed+step."""
    rng = np.random.default_rng([s.seed, step])
    hr = torch.from_numpy(sample_windows(cache, rng, s.batch, s.frames, s.crop))
    hr = hr.permute(0, 1, 4, 2, 3).float() / 255
    lrs = []
    for window in hr:
        recipe = sample_params(rng, s.clean_fraction)
        lrs.append(degrade(window, s.scale, recipe, rng, vary=rng.random() < vary_prob(step, s)))
    return torch.stack(lrs), hr


def psnr_gain(model: TinyVSR, val_hr: torch.Tensor, scale: int) -> float:
    """Mean PSNR (RGB) gain over bicubic on fixed clean-bicubic windows: a cheap training monitor
    drawn from the training clips (the held-out benchmark is `vsrup.evaluate`)."""
    lr = downscale(val_hr.flatten(0, 1), scale).unflatten(0, val_hr.shape[:2])
    with torch.no_grad():
        out = model.upscale_windows(lr)
    bic = torch.nn.functional.interpolate(lr.flatten(0, 1), scale_factor=scale, mode="bicubic").clamp(0, 1)

    def psnr(x: torch.Tensor) -> float:
        mse = ((x.flatten(0, 1) if x.dim() == 5 else x) - val_hr.flatten(0, 1)).pow(2).mean((1, 2, 3))
        return float((10 * torch.log10(1 / mse.clamp_min(1e-10))).mean())

    return psnr(out) - psnr(bic)


def _load_matching(model: TinyVSR, path: Path) -> list[str]:
    """Warm start: copy every tensor of `path` whose name and shape match (e.g. a ×4 model's
    encoder, alignment and refiner into a ×2 model, whose output conv differs). Two growths keep
    the source's output exactly, so training starts from its quality instead of re-learning it:
    an encoder that gained the aligned-neighbour inputs gets the old weights on the frame's own
    channels and zeros on the neighbours'; a residual block the source lacks starts as the
    identity. Returns the names left at their fresh initialisation."""
    from safetensors.torch import load_file

    if not path.is_file():
        raise UsageError(f"--init weights not found: {path}")
    source, own = load_file(str(path)), model.state_dict()
    matched = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
    for k, v in source.items():
        if k in own and k not in matched and _gained_aligned_inputs(own[k], v):
            matched[k] = torch.zeros_like(own[k])
            matched[k][:, : v.shape[1]] = v
    for k in own:
        if k not in matched and ".conv2." in k:  # a new ResBlock: zero residual = identity
            matched[k] = torch.zeros_like(own[k])
    model.load_state_dict(matched, strict=False)
    return sorted(set(own) - set(matched))


def _gained_aligned_inputs(own: torch.Tensor, source: torch.Tensor) -> bool:
    """The first conv of an encoder fed (frame, aligned previous, aligned next) where the source
    had the frame alone: three times the inputs, the frame's first. (×4 → ×2 also changes the
    inputs, 3 → 12 space-to-depth channels, but those are not the old ones plus new ones.)"""
    return (
        own.dim() == 4
        and own.shape[0] == source.shape[0]
        and own.shape[2:] == source.shape[2:]
        and own.shape[1] == 3 * source.shape[1]
    )


def _check_resumable(state: dict, s: TrainSettings, reschedule: bool) -> list[dict]:
    """Refuse a resume with other settings, except a new step count when `reschedule` is set.
    Returns the run's reschedule history, with this change appended."""
    history = list(state.get("reschedules", []))
    saved, now = state["settings"], asdict(s)
    if saved == now:
        return history
    changed = {k for k in set(saved) | set(now) if saved.get(k) != now.get(k)}
    if not reschedule or changed != {"steps"}:
        raise UsageError(f"{s.run_dir} was started with other settings; use a new --run-dir")
    if s.steps <= state["step"]:
        raise UsageError(f"--steps {s.steps} is not past the run's step {state['step']}")
    return history + [{"at_step": state["step"], "steps_from": saved["steps"], "steps_to": s.steps}]


def _init_paths(s: TrainSettings) -> list[Path]:
    return [Path(p.strip()) for p in s.init.split(",") if p.strip()]


def _save_checkpoint(run: Path, model: TinyVSR, opt: torch.optim.Optimizer, state: dict) -> None:
    save_tiny(model, run / "checkpoint.safetensors", {"state": state})
    torch.save(opt.state_dict(), run / "optimizer.tmp.pt")
    (run / "optimizer.tmp.pt").replace(run / "optimizer.pt")
    (run / "state.tmp.json").write_text(json.dumps(state, indent=2))
    (run / "state.tmp.json").replace(run / "state.json")


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]train"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
        disable=not enabled,
    )


def train(
    settings: TrainSettings,
    resume: bool = False,
    progress: bool = True,
    command: str = "",
    stop_after: int | None = None,
    reschedule: bool = False,
) -> dict:
    """Train (or resume) a tiny model and write its weights to `settings.out`. Returns a summary.

    `stop_after` ends the run early at that step with a checkpoint (as an interruption would),
    without writing `out`; `resume=True` then continues it exactly. `reschedule=True` lets a
    resumed run change `steps` (nothing else), e.g. to end sooner on a loaded machine; the change
    is recorded (step, old and new count) in the state and in the final weights' JSON, so the
    recipe stays reproducible."""
    s = settings
    if s.scale not in SCALES or s.crop % (s.scale * s.latent_stride) or s.frames < 1 or s.steps < 1:
        raise UsageError("need scale 2 or 4, crop divisible by scale × stride, frames ≥ 1, steps ≥ 1")
    torch.set_num_threads(s.threads)
    run = Path(s.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    sources = [Path(d) for d in s.data] or default_sources(Path(s.data_root) if s.data_root else DEFAULT_DATA)
    stills = still_images(Path(s.stills)) if s.stills else []
    cache_dir = Path(s.cache_dir) if s.cache_dir else run / "cache"
    cache = build_cache(
        sources,
        cache_dir,
        s.seed,
        s.cache_frames,
        s.cache_crop,
        s.cache_windows,
        stills=stills,
        per_still=s.per_still,
    )
    # Cache crops are 160 px by default; smaller caches (tests) give smaller monitor windows.
    val_crop = min(160, cache.shape[2], cache.shape[3]) // s.scale * s.scale
    val_rng = np.random.default_rng([s.seed, 2**32 - 1])
    val_hr = torch.from_numpy(sample_windows(cache, val_rng, 8, s.frames, val_crop))
    val_hr = val_hr.permute(0, 1, 4, 2, 3).float() / 255

    torch.manual_seed(s.seed)
    config = TinyConfig(
        s.scale,
        s.width,
        refiner_blocks=s.refiner_blocks,
        align=s.align,
        prop_blocks=s.prop_blocks,
        latent_stride=s.latent_stride,
        aligned_inputs=s.aligned_inputs,
    )
    model = TinyVSR(config)
    for path in _init_paths(s):
        _load_matching(model, path)
    opt = torch.optim.Adam(model.parameters(), lr=s.lr, betas=(0.9, 0.99))
    step, elapsed, reschedules = 0, 0.0, []
    if resume and (run / "state.json").is_file():
        state = json.loads((run / "state.json").read_text())
        reschedules = _check_resumable(state, s, reschedule)
        model = load_tiny(run / "checkpoint.safetensors")
        opt = torch.optim.Adam(model.parameters(), lr=s.lr, betas=(0.9, 0.99))
        opt.load_state_dict(torch.load(run / "optimizer.pt", weights_only=True))
        step, elapsed = state["step"], state["elapsed_s"]
    model.train()
    start = time.perf_counter() - elapsed
    gain = float("nan")
    with _progress(progress) as bar:
        task = bar.add_task("train", total=s.steps, completed=step, info="")
        while step < s.steps:
            lr_win, hr_win = make_batch(cache, step, s)
            for group in opt.param_groups:
                group["lr"] = lr_at(step, s)
            out = model.upscale_windows(lr_win)
            loss, parts = losses.total(out, hr_win)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            if step % s.eval_every == 0 or step == s.steps:
                model.eval()
                gain = psnr_gain(model, val_hr, s.scale)
                model.train()
            if step % s.log_every == 0 or step == s.steps:
                record = {"step": step, "loss": loss.item(), **parts, "lr": lr_at(step - 1, s)}
                record |= {
                    "val_gain_db": None if math.isnan(gain) else round(gain, 4),
                    "elapsed_s": round(time.perf_counter() - start, 1),
                }
                with (run / "log.jsonl").open("a") as log:
                    log.write(json.dumps(record) + "\n")
            bar.update(task, completed=step, info=f"loss {loss.item():.4f}  val +{gain:.2f} dB")
            if step % s.ckpt_every == 0 or step == s.steps:
                state = {"step": step, "elapsed_s": time.perf_counter() - start, "settings": asdict(s)}
                _save_checkpoint(run, model, opt, state | {"reschedules": reschedules})
            if stop_after is not None and step >= stop_after:
                state = {"step": step, "elapsed_s": time.perf_counter() - start, "settings": asdict(s)}
                _save_checkpoint(run, model, opt, state | {"reschedules": reschedules})
                return {"steps": step, "stopped": True}
    elapsed = time.perf_counter() - start
    training = {
        "command": command or "python -m vsrup.train " + " ".join(sys.argv[1:]),
        "seed": s.seed,
        "steps": s.steps,
        "threads": s.threads,
        "train_time_s": round(elapsed, 1),
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "data": [portable_path(p) for p in sources],
        "stills": {"folder": s.stills, "images": len(stills), "per_still": s.per_still},
        "cache_windows_total": int(cache.shape[0]),
        "settings": asdict(s),
        "reschedules": reschedules,
        "val_gain_db_train_clips": round(gain, 3),
    }
    if s.init:  # the warm start is part of the recipe: pin exactly which weights it was
        training["init_sha256"] = [hashlib.sha256(p.read_bytes()).hexdigest() for p in _init_paths(s)]
    model.eval()
    save_tiny(model, Path(s.out), {"training": training})
    return training
