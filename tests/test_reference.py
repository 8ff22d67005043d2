"""vsrup against the official DLoRAL and OSEDiff code on the same three frames.

tests/fixtures/reference/ was made by scripts/make_reference_fixture.py: the references' own
inference (fp32, posterior mean, empty prompt) on tiny random weights in their checkpoint layouts,
with every stage saved. Here the same checkpoints go through vsrup's real conversion (what
`vsrup download-weights --local-file` runs) and vsrup's model is compared stage by stage, each
stage fed the reference's own input, then end to end from the 8-bit frames.
"""

from __future__ import annotations

import json
import lzma
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from vsrup.io.reader import Frame
from vsrup.models.convert import convert
from vsrup.models.dloral import DLoRAL
from vsrup.models.osediff import OSEDiff
from vsrup.models.reference_resize import pil_resize, reference_enlarge, reference_sizes
from vsrup.models.sd import SDLatentVSR
from vsrup.pipeline.plan import make_plan
from vsrup.pipeline.runner import Runner
from vsrup.pipeline.stream import upscale_stream

FIXTURE = Path(__file__).parent / "fixtures" / "reference"
LEVEL = 1 / 255


def upscale_frames(model: SDLatentVSR, frames: torch.Tensor) -> torch.Tensor:
    """Frames (T, 3, h, w) in [0, 1] (8-bit values) → the model's output frames, through the stream
    loop `vsrup upscale` runs (its plan, windows and join; only the encode is left out)."""
    runner = Runner(model, torch.device("cpu"), torch.float32)
    plan = make_plan(model.description, runner.device, runner.dtype, None, None, 0, None)
    images = (frames * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    stream = upscale_stream([Frame(i, i, 1, image) for i, image in enumerate(images)], runner, plan)
    return torch.stack([image.float() for _, image in stream])


def meta() -> dict:
    with safe_open(str(FIXTURE / "dloral.safetensors"), "pt") as f:
        return {k: json.loads(v) for k, v in f.metadata().items()}


def png(path: Path) -> torch.Tensor:
    """An 8-bit PNG as (3, H, W) float32 in [0, 1], divided as torchvision's ToTensor does."""
    return (
        torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1).float().div(255)
    )


def pngs(model: str, name: str, frames: list[int]) -> torch.Tensor:
    return torch.stack([png(FIXTURE / model / f"{name}_{t}.png") for t in frames])


def lr_frames() -> torch.Tensor:
    return torch.stack([png(FIXTURE / f"lr_{t}.png") for t in range(3)])


@pytest.fixture(scope="module")
def official_files(tmp_path_factory) -> dict[str, Path]:
    """The fixture's checkpoints, unpacked, keyed as weights.toml names them for the converter."""
    root = tmp_path_factory.mktemp("official")
    with tarfile.open(fileobj=lzma.open(FIXTURE / "weights.tar.xz")) as tar:
        tar.extractall(root, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    files = {
        str(p.relative_to(root / "sd21-base")): p for p in (root / "sd21-base").rglob("*") if p.is_file()
    }
    files = {("sd21-base/" + k): v for k, v in files.items()}  # as vsrup.weights passes a required model's
    return {**files, "model.pkl": root / "model.pkl", "osediff.pkl": root / "osediff.pkl"}


def load(kind: type[SDLatentVSR], files: dict[str, Path], out: Path) -> SDLatentVSR:
    bundle = convert(kind.name, files, out, dtype=torch.float32, prompt=meta()["prompt"])
    model = kind.from_bundle(bundle, "cpu", torch.float32, scale=meta()["scale"])
    model.process_size = meta()["process_size"]
    model.color_fix = meta()["colour_fix"]
    model.reference_preprocess = True
    return model


@pytest.fixture(scope="module")
def dloral(official_files, tmp_path_factory) -> DLoRAL:
    return load(DLoRAL, official_files, tmp_path_factory.mktemp("dloral"))


@pytest.fixture(scope="module")
def osediff(official_files, tmp_path_factory) -> OSEDiff:
    return load(OSEDiff, official_files, tmp_path_factory.mktemp("osediff"))


def test_official_preprocessing_gives_the_references_model_input_exactly():
    # Both references: int() sizes to the processing size, ×4 BICUBIC, LANCZOS to a multiple of 8,
    # rounded to 8 bit after each resize. Exact: the model sees the same bytes.
    m = meta()
    cond = reference_enlarge(lr_frames(), m["scale"], m["process_size"])
    assert cond.shape == (3, 3, 128, 176)  # 24×34 → 32×45 → 128×180 → 128×176
    torch.testing.assert_close(cond, pngs("dloral", "input", [0, 1, 2]), atol=0, rtol=0)
    torch.testing.assert_close(cond, pngs("osediff", "input", [0, 1, 2]), atol=0, rtol=0)


def test_reference_sizes_floor_enlarge_and_squeeze_as_the_references():
    # 24 px < 128 // 4: enlarged by 32/24 (int() floors 45.33), ×4, then squeezed 180 → 176.
    assert reference_sizes(34, 24, 4, 128) == [(45, 32), (180, 128), (176, 128)]
    assert reference_sizes(33, 200, 4, 0) == [(132, 800), (128, 800)]  # only squeezed
    assert reference_sizes(1, 1, 4, 0) == [(4, 4), (8, 8)]  # never below one VAE block
    # The references' float arithmetic, not exact rationals: (512 // 4) / 49 * 49 is 127.999…
    assert reference_sizes(60, 49, 4, 512)[0] == (156, 127)


def test_frames_that_are_not_8bit_are_resized_without_rounding_to_8bit():
    ten_bit = torch.randint(0, 1024, (1, 3, 6, 5)).float() / 1023
    out = pil_resize(ten_bit, [(10, 12)], ["bicubic"])
    assert ((out * 255 - (out * 255).round()).abs() > 0.01).any()
    eight_bit = torch.randint(0, 256, (1, 3, 6, 5)).float() / 255
    out = pil_resize(eight_bit, [(10, 12)], ["bicubic"])
    torch.testing.assert_close(out * 255, (out * 255).round(), atol=1e-4, rtol=0)


@torch.no_grad()
def test_dloral_matches_the_reference_stage_by_stage(dloral):
    ref = load_file(str(FIXTURE / "dloral.safetensors"))
    # The fixture's embedding was computed under torch 2.13; 2.14's CPU kernels accumulate in
    # another order, which moves one value of 1232 by 1.07e-6 (a few fp32 ulps of a value ~1).
    torch.testing.assert_close(dloral.prompt_embeds, ref["prompt_embeds"], atol=2e-6, rtol=0)
    cond = pngs("dloral", "input", [0, 1, 2]) * 2 - 1
    torch.testing.assert_close(dloral.prepare(lr_frames()), cond, atol=0, rtol=0)

    latents = dloral.encode(cond)
    torch.testing.assert_close(latents, ref["latents"], atol=1e-5, rtol=0)

    seen = []
    hook = dloral.cfr.register_forward_hook(lambda module, args, out: seen.append(torch.cat(out, 1)))
    x0 = dloral.denoise(dloral.temporal_fuse(ref["latents"], cond), ref["latents"])
    hook.remove()
    # Frames 1 and 2 with their true predecessors; the reference never makes frame 0.
    torch.testing.assert_close(torch.cat(seen)[1:], ref["unet_input"], atol=1e-5, rtol=0)
    torch.testing.assert_close(x0[1:], ref["x0"], atol=1e-4, rtol=0)

    decoded = dloral.decode(ref["x0"]).clamp(-1, 1)
    torch.testing.assert_close(decoded, ref["decoded"], atol=2e-4, rtol=0)

    dloral.reference_postprocess = True
    try:
        finished = dloral.finish(ref["decoded"], cond[1:])
    finally:
        dloral.reference_postprocess = False
    assert_8bit_close(finished, pngs("dloral", "colour_fixed", [1, 2]))


@torch.no_grad()
def test_osediff_matches_the_reference_stage_by_stage(osediff):
    ref = load_file(str(FIXTURE / "osediff.safetensors"))
    cond = pngs("osediff", "input", [0, 1, 2]) * 2 - 1
    torch.testing.assert_close(osediff.prepare(lr_frames()), cond, atol=0, rtol=0)
    torch.testing.assert_close(osediff.encode(cond), ref["latents"], atol=1e-5, rtol=0)
    eps = osediff.run_unet(ref["latents"], osediff.timestep)
    torch.testing.assert_close(eps, ref["unet_output"], atol=1e-4, rtol=0)
    # x0 = (z − √(1−ᾱ)ε)/√ᾱ amplifies ε's rounding ~15×
    torch.testing.assert_close(osediff.denoise(ref["latents"], ref["latents"]), ref["x0"], atol=2e-3, rtol=0)
    decoded = osediff.decode(ref["x0"]).clamp(-1, 1)
    torch.testing.assert_close(decoded, ref["decoded"], atol=2e-4, rtol=0)
    osediff.reference_postprocess = True
    try:
        finished = osediff.finish(ref["decoded"], cond)
    finally:
        osediff.reference_postprocess = False
    assert_8bit_close(finished, pngs("osediff", "output", [0, 1, 2]))


def assert_8bit_close(ours: torch.Tensor, theirs: torch.Tensor, flips: float = 1e-3) -> None:
    """8-bit images equal but for rare flips (fewer than `flips` of the values): a float difference
    of 1e-5 still moves a value across a truncation boundary now and then, and the colour fix can
    stretch that one level to two before it truncates again."""
    assert ours.shape == theirs.shape
    diff = (ours.float() - theirs.float()).abs()
    assert diff.max() <= 2 * LEVEL + 1e-6, f"max difference {diff.max() * 255:.2f} levels"
    assert (diff > 1e-3).float().mean() <= flips, f"{(diff > 1e-3).float().mean():.4%} values differ"


@torch.no_grad()
def test_dloral_end_to_end_matches_the_reference_output(dloral):
    dloral.reference_postprocess = True
    try:
        out = upscale_frames(dloral, lr_frames())
    finally:
        dloral.reference_postprocess = False
    assert out.shape == (3, 3, 96, 136)  # ×4 of 24×34: resized back from the 128×176 processing size
    assert_8bit_close(out[1:], pngs("dloral", "output", [1, 2]))


@torch.no_grad()
def test_osediff_end_to_end_matches_the_reference_output(osediff):
    osediff.reference_postprocess = True
    try:
        out = upscale_frames(osediff, lr_frames())
    finally:
        osediff.reference_postprocess = False
    assert out.shape == (3, 3, 96, 136)
    assert_8bit_close(out, pngs("osediff", "output_resized", [0, 1, 2]))


@torch.no_grad()
def test_float_postprocessing_differs_from_the_reference_only_by_its_8bit_truncation(osediff):
    assert not osediff.reference_postprocess  # the default
    out = upscale_frames(osediff, lr_frames())
    theirs = pngs("osediff", "output_resized", [0, 1, 2])
    diff = out - theirs
    assert diff.abs().max() <= 3 * LEVEL
    # truncation loses half a level on average; the float path keeps it
    assert 0.25 * LEVEL < diff.mean() < 0.75 * LEVEL
