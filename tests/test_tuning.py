"""Device-aware defaults: the tile is chosen from the free memory, and CUDA-only switches stay off on
the CPU (`--compile` is accepted there with a warning)."""

from __future__ import annotations

import logging

import torch

from vsrup import tuning
from vsrup.models.base import ModelDescription, Tiling, VSRModel
from vsrup.pipeline.plan import choose_plan

MIB = 2**20


class Sized(VSRModel):
    """A model that declares its activation cost: 100 bytes per output pixel (fp32)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1)

    @property
    def description(self) -> ModelDescription:
        tiling = Tiling("latent", minimum=8, overlap=16)
        return ModelDescription("sized", 4, (4,), tiling=tiling, bytes_per_output_pixel=100)


def test_estimate_scales_with_frames_pixels_and_precision():
    model = Sized()
    one = tuning.estimate_bytes(model.description, 1, 180, 320, torch.float32)
    assert one == 180 * 320 * 16 * 100
    assert tuning.estimate_bytes(model.description, 8, 180, 320, torch.float32) == 8 * one
    assert tuning.estimate_bytes(model.description, 8, 180, 320, torch.float16) == 4 * one


def test_whole_frames_when_they_fit_and_smaller_tiles_for_less_memory():
    model = Sized()
    need = tuning.estimate_bytes(model.description, 8, 720, 1280, torch.float32)  # ~9 GiB
    tile, estimate, _ = tuning.choose_tile(
        model.description, 8, 720, 1280, torch.float32, free=4 * need, share=0.5
    )
    assert (tile, estimate) == (0, need)
    chosen = [
        tuning.choose_tile(model.description, 8, 720, 1280, torch.float32, free=int(need * f), share=0.5)[0]
        for f in (1.0, 0.25, 0.05)
    ]
    assert all(t > 0 for t in chosen)
    assert chosen == sorted(chosen, reverse=True) and chosen[0] > chosen[-1]
    # A chosen tile's share of the frame fits the budget.
    for f, t in zip((1.0, 0.25, 0.05), chosen, strict=True):
        assert need * (t * t) / (720 * 1280) <= need * f * 0.5


def test_plan_keeps_an_explicit_tile_and_describes_itself():
    model = Sized()
    plan = choose_plan(model.description, torch.device("cpu"), torch.float32, 8, 2, 96, (320, 180))
    assert plan.tile == 96 and plan.window == 8 and plan.overlap == 2
    text = plan.describe()
    assert "tile 96" in text and "window 8" in text and "cpu" in text
    auto = choose_plan(model.description, torch.device("cpu"), torch.float32, 8, 2, None, (320, 180))
    assert auto.tile == 0  # 74 MiB of activations fits any host that can run the tests
    assert auto.estimate_mib == tuning.estimate_bytes(model.description, 8, 180, 320, torch.float32) / MIB


def test_compile_is_ignored_on_cpu_with_a_warning(caplog):
    model = Sized()
    with caplog.at_level(logging.WARNING, logger="vsrup.tuning"):
        notes = tuning.accelerate(model, torch.device("cpu"), compile=True)
    assert any("--compile" in r.message for r in caplog.records)
    assert any("ignored" in n for n in notes)
    assert isinstance(model.conv, torch.nn.Conv2d)  # not wrapped by torch.compile
    assert model.conv.weight.is_contiguous()  # channels_last is CUDA-only


def test_gpu_window_doubles_only_with_room_and_only_when_not_set():
    model, gpu = Sized(), torch.device("cuda")  # free memory is given, so no GPU is needed
    need_16 = tuning.estimate_bytes(model.description, 16, 180, 320, torch.float16)
    roomy = choose_plan(
        model.description, gpu, torch.float16, 8, 2, None, (320, 180), auto_window=True, free=4 * need_16
    )
    assert (roomy.window, roomy.tile) == (16, 0)
    tight = choose_plan(
        model.description, gpu, torch.float16, 8, 2, None, (320, 180), auto_window=True, free=need_16
    )
    assert tight.window == 8  # 16 frames would not fit in the 70 % share
    fixed = choose_plan(
        model.description, gpu, torch.float16, 8, 2, None, (320, 180), auto_window=False, free=4 * need_16
    )
    assert fixed.window == 8
    cpu = choose_plan(
        model.description,
        torch.device("cpu"),
        torch.float32,
        8,
        2,
        None,
        (320, 180),
        auto_window=True,
        free=10**12,
    )
    assert cpu.window == 8  # the CPU keeps the model's window


def test_max_memory_caps_the_plan():
    model = Sized()
    roomy = choose_plan(
        model.description, torch.device("cpu"), torch.float32, 8, 2, None, (1280, 720), free=10**12
    )
    need = roomy.estimate_mib * MIB
    capped = choose_plan(
        model.description,
        torch.device("cpu"),
        torch.float32,
        8,
        2,
        None,
        (1280, 720),
        free=10**12,
        limit=int(need / 4),
    )
    assert roomy.tile == 0 and capped.tile > 0
    assert capped.free_mib == need / 4 / MIB
    # Measured free memory under a limit: no more than the limit less what the process holds already.
    assert tuning.free_memory_bytes(torch.device("cpu"), limit=2**40) <= 2**40
    assert tuning.free_memory_bytes(torch.device("cpu"), limit=1) == 0


def test_upscale_max_memory_tiles_the_frame_and_says_so(tmp_path, monkeypatch, capsys):
    from helpers import decode_all, make_clip, run_cli

    clip = make_clip(tmp_path / "in.mp4", frames=5, size=(96, 64))
    out = tmp_path / "out.mp4"
    code, _out, err = run_cli(
        monkeypatch, capsys, "upscale", str(clip), str(out), "--max-memory", "0.001", "--verbose",
    )  # fmt: skip
    assert code == 0, err
    # The smallest of the planner's TILE_SIZES that is at least twice the model's overlap (20).
    assert "tile 48 latent px" in err and "host memory plan capped at 0.0 GiB" in err
    pts, images = decode_all(out)
    assert len(pts) == 5 and images[0].shape == (256, 384, 3)
    code, _out, err = run_cli(
        monkeypatch, capsys, "upscale", str(clip), str(tmp_path / "x.mp4"), "--max-memory", "0"
    )
    assert code == 2 and "--max-memory must be a positive number" in err and "Traceback" not in err
    assert not (tmp_path / "x.mp4").exists()


def test_the_compare_estimate_stays_near_the_plain_one():
    """`--compare` runs the model and bicubic side by side: its description declares both parts'
    memory, so its estimate (and so its tile) stays near the plain model's, not a default guess."""
    from vsrup.compare import CompareModel
    from vsrup.models import load_model

    tiny = load_model("tiny", 4, "cpu", torch.float32)
    plain = tuning.estimate_bytes(tiny.description, 8, 1080, 1920, torch.float32)
    for mode in ("split", "side"):
        compared = tuning.estimate_bytes(CompareModel(tiny, mode).description, 8, 1080, 1920, torch.float32)
        assert plain < compared <= 2.1 * plain
    free = 4 * plain  # whole frames fit the plain run's budget: they must fit the comparison's too
    plans = [
        choose_plan(m.description, torch.device("cpu"), torch.float32, 8, 2, None, (1920, 1080), free=free)
        for m in (tiny, CompareModel(tiny, "split"))
    ]
    assert [p.tile for p in plans] == [0, 0]


def test_compare_side_doubles_the_output_width_in_the_description():
    from vsrup.compare import CompareModel
    from vsrup.models import load_model

    bicubic = load_model("bicubic", 2, "cpu", torch.float32)
    assert bicubic.description.output_size(64, 48) == (128, 96)
    assert CompareModel(bicubic, "split").description.output_size(64, 48) == (128, 96)
    assert CompareModel(bicubic, "side").description.output_size(64, 48) == (256, 96)
    out = CompareModel(bicubic, "side", labels=False).upscale(torch.rand(1, 3, 48, 64))
    assert out.shape[-2:] == (96, 256)
