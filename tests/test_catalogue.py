"""The model catalogue: one function finds every model by name or path, one loads it, and what the
engine then knows of a model is its description."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vsrup import models
from vsrup.errors import UsageError
from vsrup.models import catalogue
from vsrup.models.base import ModelDescription, Tiling, VSRModel
from vsrup.models.tiny import TinyConfig, TinyVSR, save_tiny


class Doubler(VSRModel):
    """Nearest ×2 that records the tiles it was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.tiles: list[int] = []

    @property
    def description(self) -> ModelDescription:
        return ModelDescription("doubler", 2, (2,), tiling=Tiling("pixel", minimum=16))

    def upscale(self, frames: torch.Tensor, tile: int = 0) -> torch.Tensor:
        self.tiles.append(tile)
        return frames.repeat_interleave(2, -1).repeat_interleave(2, -2)


@pytest.fixture
def clean_catalogue(monkeypatch):
    """Registrations made by a test are undone after it."""
    monkeypatch.setattr(catalogue, "ENTRIES", dict(catalogue.ENTRIES))
    monkeypatch.setattr(catalogue, "PATH_KINDS", list(catalogue.PATH_KINDS))


def test_an_unknown_name_lists_the_names_and_the_kinds_of_path():
    with pytest.raises(UsageError) as caught:
        models.find("no-such-model")
    text = str(caught.value)
    assert text.startswith("unknown model 'no-such-model'; choose one of: tiny, dloral, osediff, bicubic")
    assert "a converted bundle folder" in text and "tiny weights" in text


def test_a_scale_the_model_does_not_offer_is_refused_before_loading_with_the_valid_ones():
    for name in ("tiny", "bicubic", "dloral", "osediff"):  # dloral: refused without its weights
        with pytest.raises(UsageError, match=rf"--scale must be one of 2, 4 for the {name} model \(got 3\)"):
            models.load_model(name, 3, "cpu", torch.float32)


def test_options_a_model_does_not_offer_are_refused_from_its_description():
    with pytest.raises(UsageError, match="--prompt does not apply to the bicubic model"):
        models.load_model("bicubic", 2, "cpu", torch.float32, prompt="a dog")
    with pytest.raises(UsageError, match="--reference-postprocess does not apply to the tiny model"):
        models.load_model("tiny", 4, "cpu", torch.float32, reference_postprocess=True)


def test_a_registered_name_and_path_kind_are_found_and_loaded(clean_catalogue, tmp_path):
    made: list[Doubler] = []

    def load(scale, device, dtype, options):
        made.append(Doubler().to(device=device, dtype=dtype))
        return made[-1]

    models.register("doubler", load, scales=(2,), licence="MIT", summary="nearest ×2")
    assert models.names()[-1] == "doubler" and models.find("doubler").licence == "MIT"
    model = models.load_model("doubler", 2, "cpu", torch.float32)
    assert model is made[0] and not model.training

    def resolve(path: Path):
        if path.suffix != ".dbl":
            return None
        return models.CatalogueEntry(str(path), load, (2,), kind="doubler file", path=path)

    models.register_path_kind("doubler file", "a .dbl file", resolve)
    (tmp_path / "m.dbl").write_bytes(b"")
    assert models.find(str(tmp_path / "m.dbl")).kind == "doubler file"
    (tmp_path / "m.txt").write_bytes(b"")
    with pytest.raises(UsageError, match=r"is not a model file or folder vsrup can read.*a \.dbl file"):
        models.find(str(tmp_path / "m.txt"))


def test_the_engine_hands_the_plan_tile_to_upscale_as_an_argument(clean_catalogue, tmp_path):
    """Runtime choices travel as arguments: the tile reaches `upscale(frames, tile)`, and the
    smallest tile the user may ask for is the model's declared one."""
    from helpers import make_clip

    from vsrup.upscale import Upscaler, UpscaleSettings

    made: list[Doubler] = []
    models.register("doubler", lambda *args: made.append(Doubler()) or made[-1], scales=(2,))
    clip = make_clip(tmp_path / "in.mp4", frames=3, size=(48, 32))
    Upscaler(UpscaleSettings(model="doubler", scale=2, device="cpu", tile=24)).upscale_file(
        clip, tmp_path / "o.mp4"
    )
    assert made[0].tiles and set(made[0].tiles) == {24}
    with pytest.raises(
        UsageError, match=r"--tile must be 0 \(off\) or at least 16 for the doubler model \(got 8\)"
    ):
        Upscaler(UpscaleSettings(model="doubler", scale=2, device="cpu", tile=8))


def test_tiny_weights_are_a_path_kind_with_the_scale_they_were_trained_for(tmp_path):
    torch.manual_seed(0)
    trained = TinyVSR(TinyConfig(scale=2, width=8, refiner_blocks=1))
    torch.nn.init.normal_(trained.to_pixels.weight, std=0.05)
    weights = tmp_path / "run" / "final.safetensors"
    save_tiny(trained, weights)

    entry = models.find(str(weights))
    assert (entry.kind, entry.scales) == ("tiny weights", (2,))
    loaded = entry.load(2, "cpu", torch.float32)
    frames = torch.rand(2, 3, 12, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded.upscale(frames), trained.eval().upscale(frames))
    with pytest.raises(UsageError, match=r"--scale must be 2 for the .*final.safetensors model \(got 4\)"):
        models.load_model(str(weights), 4, "cpu", torch.float32)


def test_a_folder_that_is_not_a_bundle_is_a_weights_error(tmp_path):
    from vsrup.errors import WeightsError

    with pytest.raises(WeightsError, match="is not a converted vsrup bundle"):
        models.load_model(str(tmp_path), 4, "cpu", torch.float32)
