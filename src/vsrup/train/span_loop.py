"""Train span-video's adapter (LoRA + neighbour fusion) on a frozen, locally converted SPAN base.

    python -m vsrup.train.span_loop --scale 4 --run-dir runs/span-video-x4 --out FILE [--resume]

Seeded per step like `loop.py` (a resumed run sees the batches the uninterrupted run would have),
one thread by default, a checkpoint every `ckpt_seconds`. The run directory holds
`checkpoint.safetensors` (+ .json; the adapter only, the shipped format), `optimizer.pt`,
`state.json` and `log.jsonl` (loss, and every `eval_every` steps the monitor: PSNR-Y gain over
bicubic on windows from the training clips' unused last tenth, clean and H.264 CRF 26).
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch

from vsrup.errors import UsageError, VsrupError
from vsrup.models.span import load_span_net
from vsrup.models.span_video import AdapterConfig, SPANVideoNet, load_adapter, save_adapter
from vsrup.train import losses
from vsrup.train.data import DEFAULT_DATA, default_sources, portable_path, still_images
from vsrup.train.loop import warmup_cosine
from vsrup.train.span_data import (
    build_split_cache,
    gain_over_bicubic,
    make_triples,
    monitor_inputs,
    to_tensor,
)


@dataclass
class SpanTrainSettings:
    out: str
    base: str = ""  # converted SPAN safetensors (default: the vsrup cache's span_x{scale})
    scale: int = 4
    steps: int = 4000
    batch: int = 8
    crop: int = 192  # HR crop (LR = crop / scale)
    lr: float = 3e-4
    seed: int = 0
    rank: int = 8
    alpha: float = 8.0
    temporal: bool = True
    hidden: int = 48
    clean: float = 0.35  # share of clean bicubic LR
    blur_scale: float = 1.0  # × the blur σ of the general degradation mix (see span_data)
    lone: float = 0.1  # per side: a neighbour replaced by the frame itself (shot edges)
    frequency_weight: float = 0.05
    # Mean over samples of log(Charbonnier) instead of the mean Charbonnier: a sample's gradient is
    # divided by its own error, so the easy (clean) samples weigh as much as the compressed ones,
    # as in a mean of per-frame PSNRs (what the benchmark reports). No frequency term then.
    log_loss: bool = False
    run_dir: str = "runs/span-video-x4"
    cache_dir: str = "runs/span-cache"
    cache_windows: int = 50  # windows spread over each clip's training part, 3 crops each
    ckpt_seconds: float = 240.0
    eval_every: int = 200
    threads: int = 1
    data: str = ""  # a folder of training clips (default: ../shared/data beside the project)
    stills: str = ""  # photographs for moving-camera windows (scripts/prep_wallpapers.py → images/)
    per_still: int = 4


def lr_at(step: int, s: SpanTrainSettings) -> float:
    """Warm-up over the first 2.5 % of steps, then cosine decay to 5 % of the peak."""
    return warmup_cosine(step, s.steps, s.lr, warm_div=40, floor=0.05)


def _base_path(s: SpanTrainSettings) -> Path:
    if s.base:
        return Path(s.base)
    from vsrup.weights.span_wheel import require_base

    return require_base(s.scale)


def _batch(train: np.ndarray, step: int, s: SpanTrainSettings):
    rng = np.random.default_rng([s.seed, step])
    picks = rng.integers(0, train.shape[0], s.batch)
    windows = []
    for i in picks:
        y, x = (int(v) for v in rng.integers(0, train.shape[2] - s.crop + 1, 2))
        w = train[i, :, y : y + s.crop, x : x + s.crop]
        w = w[:, :, ::-1] if rng.random() < 0.5 else w
        w = w.transpose(0, 2, 1, 3) if rng.random() < 0.5 else w
        windows.append(w[::-1] if rng.random() < 0.5 else w)
    p = step / s.steps  # the curriculum of loop.py: frame-varying degradations from 30 % of the run
    vary = 0.0 if p < 0.3 else 0.5 * (p - 0.3) / 0.7
    return make_triples(to_tensor(np.stack(windows)), s.scale, rng, s.clean, vary, s.lone, s.blur_scale)


def _save(run: Path, net: SPANVideoNet, opt, state: dict) -> None:
    save_adapter(net, run / "checkpoint.safetensors", {"state": state})
    torch.save(opt.state_dict(), run / "optimizer.tmp.pt")
    (run / "optimizer.tmp.pt").replace(run / "optimizer.pt")
    (run / "state.tmp.json").write_text(json.dumps(state, indent=2))
    (run / "state.tmp.json").replace(run / "state.json")


def _log(run: Path, record: dict) -> None:
    with (run / "log.jsonl").open("a") as log:
        log.write(json.dumps(record) + "\n")


def train(
    s: SpanTrainSettings,
    resume: bool = False,
    command: str = "",
    stop_after: int | None = None,
    reschedule: bool = False,
) -> dict:
    torch.set_num_threads(s.threads)
    if s.scale not in (2, 4) or s.crop % s.scale:
        raise UsageError("need --scale 2 or 4 and a crop divisible by it")
    run = Path(s.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    sources = default_sources(Path(s.data) if s.data else DEFAULT_DATA)
    sources = [p for p in sources if p.is_file()]  # the clips (the frame folders are LR or held out)
    stills = still_images(Path(s.stills)) if s.stills else []
    train_hr, val_hr = build_split_cache(
        sources, Path(s.cache_dir), s.seed, s.crop + 32, s.cache_windows, stills=stills, per_still=s.per_still
    )
    inputs = monitor_inputs(val_hr, s.scale)
    base_path = _base_path(s)
    torch.manual_seed(s.seed)
    config = AdapterConfig(s.scale, s.rank, s.alpha, s.temporal, s.hidden)
    net = SPANVideoNet(load_span_net(base_path), config)
    step, elapsed, history = 0, 0.0, []
    if resume and (run / "state.json").is_file():
        state = json.loads((run / "state.json").read_text())
        # (a setting added since the run started counts as unchanged: its default is what the run used)
        changed = {k for k, v in asdict(s).items() if state["settings"].get(k, v) != v}
        if changed - ({"steps"} if reschedule else set()):
            raise UsageError(f"{run} was started with other settings ({', '.join(sorted(changed))})")
        if changed:  # a new length: the cosine schedule stretches from here on, recorded
            history = state.get("reschedules", []) + [{"at_step": state["step"], "steps": s.steps}]
        net = load_adapter(load_span_net(base_path), run / "checkpoint.safetensors")
        step, elapsed, history = state["step"], state["elapsed_s"], history or state.get("reschedules", [])
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=s.lr, betas=(0.9, 0.99))
    if step:
        opt.load_state_dict(torch.load(run / "optimizer.pt", weights_only=True))
    else:
        net.eval()
        _log(run, {"step": 0, "monitor": gain_over_bicubic(net, inputs, s.scale), "note": "base"})
    net.train()
    start, last_ckpt = time.perf_counter() - elapsed, time.perf_counter()
    while step < s.steps:
        lr, flows, hr = _batch(train_hr, step, s)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, s)
        out = net(lr[:, 0], lr[:, 1], lr[:, 2], flows)
        if s.log_loss:
            per_sample = torch.sqrt((out - hr) ** 2 + 1e-6).mean((1, 2, 3))
            pixel, loss = per_sample.mean(), per_sample.log().mean()
        else:
            pixel, freq = losses.charbonnier(out, hr), losses.frequency(out, hr)
            loss = pixel + s.frequency_weight * freq
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        record = {"step": step, "loss": round(loss.item(), 5), "pixel": round(pixel.item(), 5)}
        if step % s.eval_every == 0 or step == s.steps:
            net.eval()
            record["monitor"] = gain_over_bicubic(net, inputs, s.scale)
            net.train()
        if step % 10 == 0 or "monitor" in record:
            _log(run, record | {"elapsed_s": round(time.perf_counter() - start, 1)})
        done = step == s.steps or (stop_after is not None and step >= stop_after)
        if done or time.perf_counter() - last_ckpt > s.ckpt_seconds:
            _save(
                run,
                net,
                opt,
                {
                    "step": step,
                    "elapsed_s": time.perf_counter() - start,
                    "settings": asdict(s),
                    "reschedules": history,
                },
            )
            last_ckpt = time.perf_counter()
        if stop_after is not None and step >= stop_after:
            return {"steps": step, "stopped": True}
    training = {
        "command": command,
        "steps": s.steps,
        "threads": s.threads,
        "train_time_s": round(time.perf_counter() - start, 1),
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "data": [portable_path(p) for p in sources],
        "stills": {"folder": s.stills, "images": len(stills), "per_still": s.per_still},
        "settings": asdict(s) | {"base": Path(base_path).name},
        "reschedules": history,
        "monitor": gain_over_bicubic(net.eval(), inputs, s.scale),
    }
    save_adapter(net, Path(s.out), {"training": training})
    return training


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="vsrup train span-video", description=__doc__)
    for f in fields(SpanTrainSettings):
        flag = "--" + f.name.replace("_", "-")
        if isinstance(f.default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default)
        elif f.name == "out":
            parser.add_argument(flag, required=True)
        else:
            parser.add_argument(flag, type=type(f.default), default=f.default)
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    parser.add_argument("--reschedule", action="store_true", help="with --resume: a new --steps")
    args = vars(parser.parse_args(argv))
    resume, reschedule = args.pop("resume"), args.pop("reschedule")
    try:
        command = "python -m vsrup.train.span_loop " + shlex.join(argv)
        summary = train(SpanTrainSettings(**args), resume, command, reschedule=reschedule)
    except VsrupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"wrote {args['out']} after {summary['steps']} steps; monitor {summary['monitor']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
