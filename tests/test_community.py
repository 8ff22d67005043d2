"""Community model files through the normal path: `vsrup upscale --model FILE` with small
random-weight models built from spandrel's own architecture classes, saved the ways people publish
them (.pth bare or wrapped, .pt, .ckpt, .safetensors). Each frame must be spandrel's own output
for it, rounded to 8 bit; tiles must blend to within 2 levels of the whole frame; a bad file is one
line and exit 5."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import decode_all, run_cli, write_rgb
from safetensors.torch import save_file
from spandrel import ModelLoader
from spandrel.architectures.Compact import Compact
from spandrel.architectures.ESRGAN import ESRGAN
from spandrel.architectures.OmniSR import OmniSR
from spandrel.architectures.PLKSR import PLKSR
from spandrel.architectures.SPAN import SPAN
from spandrel.architectures.SwinIR import SwinIR

from vsrup.errors import UsageError, WeightsError
from vsrup.models.community import add, inspect, load_community
from vsrup.weights import community as files

SIZE = (37, 29)  # odd, and not a multiple of anything an architecture pads to
TILED_SIZE = (101, 67)  # several tiles each way at the smallest tile of every architecture below

# name → (a tiny network, its scale, how the file is saved). Each way of saving is used at least once.
ARCHS = {
    "esrgan": (lambda: ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4), "params_ema.pth"),
    "compact": (lambda: Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=4), "params.pth"),
    "span": (lambda: SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=2), "bare.pth"),
    "swinir": (
        lambda: SwinIR(
            upscale=2,
            in_chans=3,
            img_size=16,
            window_size=4,
            embed_dim=12,
            depths=[1],
            num_heads=[2],
            mlp_ratio=2,
            upsampler="pixelshuffledirect",
        ),  # fmt: skip
        "bare.safetensors",
    ),
    "omnisr": (
        lambda: OmniSR(
            num_in_ch=3, num_out_ch=3, num_feat=8, block_num=1, pe=True, window_size=4, res_num=1, up_scale=2
        ),  # fmt: skip
        "bare.pt",
    ),
    "plksr": (lambda: PLKSR(dim=8, n_blocks=2, upscaling_factor=2, kernel_size=7), "state_dict.ckpt"),
}


def save(net: torch.nn.Module, path: Path, how: str) -> Path:
    """`how`: "<wrapper>.<extension>", wrapper bare, params, params_ema or state_dict."""
    wrapper, suffix = how.split(".")
    path = path.with_suffix(f".{suffix}")
    state = {k: v.clone() for k, v in net.state_dict().items()}
    if suffix == "safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state if wrapper == "bare" else {wrapper: state, "iter": 1000}, path)
    return path


def build(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = ARCHS[name][0]()
    with torch.no_grad():  # default inits leave biases near 0; spread them so every layer matters
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return net.eval()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("VSRUP_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("VSRUP_WEIGHTS", raising=False)
    return tmp_path / "cache"


def clip(path: Path, size: tuple[int, int], frames: int = 3) -> tuple[Path, list[np.ndarray]]:
    """A lossless RGB clip of noise and a gradient, so that its decoded frames are these images."""
    rng = np.random.default_rng(7)
    w, h = size
    ramp = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
    images = [np.clip(ramp + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(np.uint8) for _ in range(frames)]
    return write_rgb(path, images), images


def spandrel_frames(net: torch.nn.Module, images: list[np.ndarray]) -> list[np.ndarray]:
    """spandrel's own per-frame result, rounded to 8 bit as the encoder gets it."""
    model = ModelLoader().load_from_state_dict(net.state_dict())
    out = []
    for image in images:
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
        y = model(x)[0].clamp(0, 1)
        out.append((y * 255).round().to(torch.uint8).permute(1, 2, 0).numpy())
    return out


def upscale(monkeypatch, capsys, src: Path, out: Path, *extra: str) -> tuple[int, str]:
    code, _, err = run_cli(monkeypatch, capsys, "upscale", str(src), str(out), "--codec", "ffv1",
                           "--device", "cpu", "-q", *extra)  # fmt: skip
    return code, err


def max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> int:
    assert len(a) == len(b)
    return max(int(np.abs(x.astype(int) - y.astype(int)).max()) for x, y in zip(a, b, strict=True))


# ---------------------------------------------------------------------------------------------
# End to end


@pytest.mark.parametrize("name", list(ARCHS))
def test_a_community_file_upscales_a_video_as_spandrel_does(name, tmp_path, cache, monkeypatch, capsys):
    net = build(name)
    model_file = save(net, tmp_path / f"4x-{name}", ARCHS[name][1])
    src, images = clip(tmp_path / "in.mkv", SIZE)

    code, err = upscale(monkeypatch, capsys, src, tmp_path / "out.mkv", "--model", str(model_file))

    assert code == 0, err
    _, frames = decode_all(tmp_path / "out.mkv")
    expected = spandrel_frames(net, images)
    scale = expected[0].shape[1] // SIZE[0]
    assert frames[0].shape == (SIZE[1] * scale, SIZE[0] * scale, 3)
    assert float(np.std(expected[0])) > 2  # a real picture, not a constant a broken path could match
    assert max_diff(frames, expected) <= 1  # fp32: the same numbers, up to rounding


@pytest.mark.parametrize("name", ["compact", "swinir", "plksr"])
def test_tiles_blend_to_within_two_levels_of_the_whole_frame(name, tmp_path, cache, monkeypatch, capsys):
    net = build(name, seed=1)
    model_file = save(net, tmp_path / name, "bare.safetensors")
    src, _ = clip(tmp_path / "in.mkv", TILED_SIZE, frames=1)
    smallest = load_community(model_file, None).description.tiling.smallest
    assert smallest < TILED_SIZE[1]  # so the frame really is cut into tiles both ways

    assert upscale(monkeypatch, capsys, src, tmp_path / "whole.mkv", "--model", str(model_file))[0] == 0
    tiled = upscale(monkeypatch, capsys, src, tmp_path / "tiled.mkv", "--model", str(model_file),
                    "--tile", str(smallest))  # fmt: skip
    assert tiled[0] == 0, tiled[1]

    assert max_diff(decode_all(tmp_path / "tiled.mkv")[1], decode_all(tmp_path / "whole.mkv")[1]) <= 2


def test_tiling_in_the_model_matches_the_whole_frame_at_any_tile_size(tmp_path, cache):
    model = load_community(save(build("compact", seed=2), tmp_path / "m", "bare.pth"), None)
    frames = torch.rand(2, 3, 45, 77)
    whole = model.upscale(frames)
    for tile in (1, 33, 40):  # below the smallest tile is raised to it; any size works
        tiled = model.upscale(frames, tile=tile)
        assert tiled.shape == whole.shape == (2, 3, 180, 308)
        assert (tiled - whole).abs().max() * 255 <= 2


def test_every_way_of_saving_gives_the_same_model_and_params_ema_wins(tmp_path, cache):
    net, other = build("compact", seed=3), build("compact", seed=4)
    frames = torch.rand(1, 3, 29, 37)
    expected = load_community(save(net, tmp_path / "bare", "bare.pth"), None).upscale(frames)
    for how in ("params.pth", "params_ema.pth", "state_dict.ckpt", "bare.pt", "bare.safetensors"):
        model = load_community(save(net, tmp_path / how.replace(".", "_"), how), None)
        assert torch.equal(model.upscale(frames), expected), how
    both = tmp_path / "both.pth"  # BasicSR saves both; the EMA weights are the published ones
    torch.save({"params": other.state_dict(), "params_ema": net.state_dict()}, both)
    assert torch.equal(load_community(both, None).upscale(frames), expected)


def test_a_model_that_sees_the_whole_frame_is_never_tiled(tmp_path, cache):
    """OmniSR's grid attention mixes pixels across the whole frame: tiles would change the picture."""
    model = load_community(save(build("omnisr"), tmp_path / "o", "bare.pth"), None)
    assert model.description.tiling.space == "none"
    frames = torch.rand(1, 3, 45, 77)
    assert torch.equal(model.upscale(frames, tile=32), model.upscale(frames))


def test_the_description_declares_what_the_file_is(tmp_path, cache):
    swinir = load_community(save(build("swinir"), tmp_path / "2x-SwinIR-test", "bare.pth"), None)
    d = swinir.description
    assert (d.name, d.scale, d.scales, d.neighbourhood) == ("2x-SwinIR-test", 2, (2,), (0, 0))
    assert d.tiling.space == "pixel" and d.tiling.minimum >= 16  # spandrel: SwinIR needs 16 pixels
    assert d.tiling.minimum % 4 == d.tiling.overlap % 4 == 0  # on its attention windows (4 here)
    assert d.tiling.smallest >= 2 * d.tiling.overlap > 0
    assert d.dtypes == ("float32", "bfloat16")  # spandrel: no fp16 for SwinIR
    assert d.licence.startswith("the file author's")
    esrgan = load_community(save(build("esrgan"), tmp_path / "e", "bare.pth"), None).description
    assert esrgan.scale == 4 and "float16" in esrgan.dtypes
    assert esrgan.bytes_per_output_pixel != d.bytes_per_output_pixel  # per architecture


def test_a_model_without_fp16_runs_in_fp32_and_gives_back_the_callers_dtype(tmp_path, cache):
    model = load_community(save(build("swinir"), tmp_path / "s", "bare.pth"), None, dtype=torch.float16)
    assert model.dtype == torch.float32
    assert model.upscale(torch.rand(1, 3, 20, 20, dtype=torch.float16)).dtype == torch.float16


# ---------------------------------------------------------------------------------------------
# Scale


def test_another_scale_than_the_files_is_refused_naming_it(tmp_path, cache, monkeypatch, capsys):
    model_file = save(build("span"), tmp_path / "span", "bare.pth")  # a ×2 model
    src, _ = clip(tmp_path / "in.mkv", SIZE, frames=1)
    code, err = upscale(monkeypatch, capsys, src, tmp_path / "out.mkv", "--model", str(model_file),
                        "--scale", "4")  # fmt: skip
    assert code == 2 and "×2 model" in err and "--scale 2" in err and "Traceback" not in err
    assert not (tmp_path / "out.mkv").exists()
    with pytest.raises(UsageError):
        load_community(model_file, 4)
    assert upscale(monkeypatch, capsys, src, tmp_path / "out.mkv", "--model", str(model_file),
                   "--scale", "2")[0] == 0  # fmt: skip


# ---------------------------------------------------------------------------------------------
# The cache: a pickle is opened once


def test_a_pickle_is_unpickled_once_then_read_from_the_safetensors_cache(
    tmp_path, cache, monkeypatch, capsys
):
    model_file = save(build("compact"), tmp_path / "c", "params.pth")
    src, _ = clip(tmp_path / "in.mkv", SIZE, frames=2)
    unpickled = []
    real_load = torch.load

    def counting_load(*args, **kwargs):
        unpickled.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    assert upscale(monkeypatch, capsys, src, tmp_path / "a.mkv", "--model", str(model_file))[0] == 0
    assert unpickled == [True]  # once, and only with weights_only
    assert files.cached_copy(files.file_sha256(model_file)).is_file()

    assert upscale(monkeypatch, capsys, src, tmp_path / "b.mkv", "--model", str(model_file))[0] == 0
    assert unpickled == [True]  # the second run memory-mapped the safetensors copy
    assert max_diff(decode_all(tmp_path / "a.mkv")[1], decode_all(tmp_path / "b.mkv")[1]) == 0
    # The cache is keyed by content: a changed file is converted again, never mixed up.
    changed = build("compact", seed=9)
    save(changed, model_file.with_suffix(""), "params.pth")
    frames = torch.rand(1, 3, 8, 8)
    fresh = load_community(model_file, None).upscale(frames)
    assert torch.allclose(fresh, ModelLoader().load_from_state_dict(changed.state_dict())(frames), atol=1e-5)
    assert unpickled == [True, True]


def test_models_lists_files_used_or_added(tmp_path, cache, monkeypatch, capsys):
    used = save(build("span"), tmp_path / "2x-span", "bare.safetensors")
    load_community(used, None)
    record = add(save(build("esrgan"), tmp_path / "4x-esrgan", "params_ema.pth"))
    assert (record["architecture"], record["scale"]) == ("ESRGAN", 4) and record["parameters"] > 0

    code, out, err = run_cli(monkeypatch, capsys, "models", "--json")
    assert code == 0, err
    rows = {row["name"]: row for row in json.loads(out) if row["source"] == "file"}
    assert set(rows) == {"2x-span", "4x-esrgan"}
    assert (rows["2x-span"]["architecture"], rows["2x-span"]["scale"]) == ("SPAN", 2)
    assert rows["4x-esrgan"]["size"] == (tmp_path / "4x-esrgan.pth").stat().st_size
    assert rows["4x-esrgan"]["ready"] and rows["4x-esrgan"]["path"] == str(tmp_path / "4x-esrgan.pth")
    code, out, _ = run_cli(monkeypatch, capsys, "models", "--add", str(used))
    assert code == 0 and "SPAN ×2" in out


# ---------------------------------------------------------------------------------------------
# Files that are not a super-resolution model: one line, exit 5


def bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = save(build("compact"), tmp_path / "good", "bare.pth")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    safetensors = save(build("compact"), tmp_path / "good", "bare.safetensors")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(safetensors.read_bytes()[:-100])
    text = tmp_path / "notes.pth"
    text.write_text("not a model at all\n")
    no_weights = tmp_path / "optimizer.pth"
    torch.save({"epoch": 3, "lr": 0.1}, no_weights)
    unknown = tmp_path / "unknown.safetensors"
    save_file({"encoder.layer.weight": torch.randn(4, 4)}, str(unknown))
    denoise = save(
        Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=1), tmp_path / "1x", "bare.pth"
    )
    grey = save(
        Compact(num_in_ch=1, num_out_ch=1, num_feat=8, num_conv=2, upscale=4), tmp_path / "g", "bare.pth"
    )
    rgba = save(ESRGAN(in_nc=4, out_nc=4, num_filters=8, num_blocks=1, scale=4), tmp_path / "a", "bare.pth")
    scripted = tmp_path / "scripted.pt"
    torch.jit.trace(build("compact"), torch.rand(1, 3, 8, 8)).save(str(scripted))
    return {
        "TorchScript": (scripted, "a TorchScript archive"),
        "truncated pickle": (truncated, "not a readable model file"),
        "truncated safetensors": (cut, "not a readable safetensors file"),
        "text": (text, "not a readable model file"),
        "no weights": (no_weights, "holds no weights"),
        "unknown architecture": (unknown, "not a model architecture spandrel knows"),
        "×1 denoise": (denoise, "×1 restoration"),
        "1 channel": (grey, "1 channels in"),
        "4 channels": (rgba, "4 channels in"),
    }


def test_bad_files_are_one_line_and_exit_5(tmp_path, cache, monkeypatch, capsys):
    src, _ = clip(tmp_path / "in.mkv", SIZE, frames=1)
    for what, (path, message) in bad_files(tmp_path).items():
        code, err = upscale(monkeypatch, capsys, src, tmp_path / "out.mkv", "--model", str(path))
        assert code == 5, (what, err)
        assert message in err and path.name in err, (what, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, (what, err)
        assert not (tmp_path / "out.mkv").exists()
    assert files.remembered() == {}  # nothing bad is listed
    code, err = upscale(monkeypatch, capsys, src, tmp_path / "out.mkv", "--model", str(tmp_path / "none.pth"))
    assert code == 2 and "none.pth" in err and "Traceback" not in err  # no such file: a usage error


def test_inpainting_and_face_models_are_not_super_resolution(tmp_path):
    """spandrel's LaMa and GFPGAN files are tens of MB: their descriptors are built around a tiny
    module here, with spandrel's own architecture objects, as spandrel builds them."""
    from spandrel import ImageModelDescriptor, MaskedImageModelDescriptor
    from spandrel.architectures.GFPGAN import GFPGANArch
    from spandrel.architectures.LaMa import LaMaArch

    from vsrup.models.community import check_super_resolution

    net = torch.nn.Conv2d(3, 3, 1)
    common = {"state_dict": net.state_dict(), "tags": [], "supports_half": True, "supports_bfloat16": True,
              "input_channels": 3, "output_channels": 3}  # fmt: skip
    inpaint = MaskedImageModelDescriptor(net, architecture=LaMaArch(), purpose="Inpainting", **common)
    face = ImageModelDescriptor(net, architecture=GFPGANArch(), purpose="FaceSR", scale=1, **common)
    with pytest.raises(WeightsError, match="lama.pth: a LaMa inpainting model, not super-resolution"):
        check_super_resolution(inpaint, "lama.pth")
    with pytest.raises(WeightsError, match="face restoration model, not super-resolution"):
        check_super_resolution(face, "GFPGANv1.4.pth")


def test_a_pickle_that_needs_code_is_refused(tmp_path, cache):
    path = tmp_path / "evil.pth"
    torch.save({"params": {"w": torch.zeros(1)}, "config": Path("x")}, path)  # a class, not plain data
    with pytest.raises(WeightsError, match="refused: loading it would run code"):
        inspect(path)
    assert not files.community_dir().exists() or not list(files.community_dir().glob("*.safetensors"))


# ---------------------------------------------------------------------------------------------
# weights.toml entries for well-known community files


@pytest.fixture
def server():
    """A local file server: path → bytes in `served`."""
    served: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            data = served.get(self.path)
            self.send_response(404 if data is None else 200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data or b"")))
            self.end_headers()
            self.wfile.write(data or b"")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}", served
    httpd.shutdown()
    httpd.server_close()


def test_download_weights_fetches_a_community_entry_once_and_upscale_finds_it_by_name(
    tmp_path, cache, server, monkeypatch, capsys
):
    url, served = server
    net = build("compact", seed=5)
    served["/files/4x-test.pth"] = save(net, tmp_path / "upstream", "params_ema.pth").read_bytes()
    registry = tmp_path / "weights.toml"
    registry.write_text(
        '[models.test-x4]\ndescription = "test"\nlicense = "BSD-3-Clause"\nsource = "url"\n'
        f'url = "{url}/files/4x-test.pth"\nconvert = "community"\nfiles = [{{ name = "4x-test.pth" }}]\n'
        'note = "NOT PINNED."\n'
    )
    monkeypatch.setenv("VSRUP_WEIGHTS", str(registry))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    from vsrup.models import catalogue, register_community_entries

    monkeypatch.setattr(catalogue, "ENTRIES", dict(catalogue.ENTRIES))  # this test's names go with it
    register_community_entries()  # as a process started with this VSRUP_WEIGHTS does at import
    src, images = clip(tmp_path / "in.mkv", SIZE, frames=2)

    code, err = upscale(monkeypatch, capsys, src, tmp_path / "early.mkv", "--model", "test-x4")
    assert code == 5 and "vsrup download-weights test-x4 --trust-unverified" in err
    code, _, err = run_cli(monkeypatch, capsys, "download-weights", "test-x4")
    assert code == 5 and "--trust-unverified" in err  # unpinned: nothing downloaded unasked
    code, out, err = run_cli(monkeypatch, capsys, "download-weights", "test-x4", "--trust-unverified")
    assert code == 0, err

    downloaded = cache / "downloads" / "test-x4" / "4x-test.pth"
    assert downloaded.read_bytes() == served["/files/4x-test.pth"]
    assert files.cached_copy(files.file_sha256(downloaded)).is_file()  # converted at download time
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("unpickled after download-weights"))
    code, err = upscale(monkeypatch, capsys, src, tmp_path / "out.mkv", "--model", "test-x4")
    assert code == 0, err
    assert max_diff(decode_all(tmp_path / "out.mkv")[1], spandrel_frames(net, images)) <= 1
    code, out, _ = run_cli(monkeypatch, capsys, "models", "--json")
    row = next(r for r in json.loads(out) if r["name"] == "test-x4")
    assert row["ready"] and row["license"] == "BSD-3-Clause" and row["converted"] is None
    model = load_community(downloaded, None, name="test-x4", licence="BSD-3-Clause")
    assert (model.description.name, model.description.licence) == ("test-x4", "BSD-3-Clause")


def test_the_shipped_community_entries_are_upstream_release_files():
    from vsrup import weights

    entries = {n: e for n, e in weights.load_registry(weights.REGISTRY).items() if e.convert == "community"}
    assert {"realesrgan-x4", "realesr-general", "realesr-anime"} <= set(entries)
    for entry in entries.values():
        assert entry.source == "url" and len(entry.files) == 1 and files.is_model_file(entry.files[0].name)
        assert entry.locations[0].url.startswith("https://github.com/xinntao/Real-ESRGAN/releases/download/")
        assert entry.license == "BSD-3-Clause"
        assert entry.pinned or "NOT PINNED" in entry.note


def test_preview_takes_the_files_scale_too(tmp_path, cache, monkeypatch, capsys):
    from vsrup.preview import make_preview

    model_file = save(build("plksr"), tmp_path / "2x-plksr", "bare.safetensors")  # a ×2 model
    src, _ = clip(tmp_path / "in.mkv", (64, 48), frames=2)
    preview = make_preview(src, tmp_path / "p.png", None, model=str(model_file), device="cpu")
    assert preview.panel_size == (128, 96) and (tmp_path / "p.png").is_file()
