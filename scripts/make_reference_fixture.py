#!/usr/bin/env python3
"""Make tests/fixtures/reference/: the official DLoRAL and OSEDiff inference, run on tiny random
weights and three small frames, with every stage saved for tests/test_reference.py.

Run by hand, once, with the references' own code and pinned libraries (diffusers 0.25, peft 0.9,
transformers 4.28, Pillow 9.5, huggingface_hub 0.25; plus torch, torchvision, mmengine, mmcv-lite,
opencv-python-headless, einops, safetensors), in a checkout of this repository:

    python scripts/make_reference_fixture.py --dloral-src DLORAL_DIR --osediff-src OSEDIFF_DIR

DLORAL_DIR / OSEDIFF_DIR hold github yjsunnn/DLoRAL at 40c13086 and cswry/OSEDiff at fcc4f09c. Their
code is imported from there at run time and never copied here. Each reference runs in a child
process (both have top-level packages named `ram`, `models`, `my_utils`), with its own command line
(`src/test_DLoRAL.py`, `test_osediff.py`) executed as `__main__`, fp32, empty user prompt.

The weights are SD2.1-base-shaped (same block types, 2 layers per block, linear projections, the
same key names) at width 16 with 8 norm groups, written in the official layouts: a diffusers
folder `sd21-base/` (unet, vae, text_encoder, tokenizer, scheduler), DLoRAL's `model.pkl` (whole
8-channel UNet with six rank-4 adapters + `state_dict_bpp`) and OSEDiff's `osediff.pkl` (LoRA and
conv_in of the UNet, LoRA of the VAE encoder). Random values are rounded to a few levels per tensor
(`_coarse`) so that the xz archive stays small; for the same reason SPyNet's weights are sparse and
the CFR submodules the reference never runs are zeros.

Run-time patches (nothing in the checkouts is edited):
  1. CUDA → CPU: `.cuda()` returns its object; "cuda" devices in `.to(...)`/`torch.tensor` become
     "cpu". The references hard-code CUDA; this machine has none.
  2. Posterior mean: `DiagonalGaussianDistribution.sample` returns the mean (a contiguous copy,
     as a sample is: DLoRAL `.view`s it). The references sample
     the VAE posterior unseeded, so their outputs are not reproducible; the mean is vsrup's choice.
  3. DLoRAL: its 8-channel `conv_in` is built as `nn.Conv2d(8, 320, ...)`, SD2.1's width hard-coded;
     in `src.DLoRAL_model` that one call gets the tiny UNet's width instead.
  4. DLoRAL: `CFR_model.forward` asserts the ÷8 images are at least 64×64 (model input ≥ 512²);
     that `assert` statement is removed from the source text before it is compiled (the file is
     untouched), so the fixture runs at a 128 px processing size. Only a size check: SPyNet pads
     to a multiple of 32 and runs the same arithmetic.
  5. `unet.enable_xformers_memory_efficient_attention()` is a no-op: xformers is not installable
     here; it computes the same attention as the default processor.
Stubs (off the numeric path):
  6. RAM/DAPE tagger (`ram`): returns no tags, so the prompt is the references' "{tags}, {prompt},"
     with both empty: ", ,".
  7. DLoRAL reads frames from an .mp4 with `cv2.VideoCapture`; a stand-in yields the fixture's PNG
     frames (lossless) and the real `cv2.imwrite` writes them, as the reference does.
  8. `mmcv.ops` (compiled ops, absent from mmcv-lite): `ModulatedDeformConv2d` is only the base
     class of a module the inference never builds. mmengine's `load_checkpoint` (SPyNet's
     pretrained download) is a no-op: `--load_cfr` overwrites every CFR parameter from the
     checkpoint.
  9. torchvision's compiled ops do not load against the CPU build of torch; its fake-op
     registrations are skipped (its transforms, used here, are pure Python).
"""

from __future__ import annotations

import argparse
import io
import json
import lzma
import math
import os
import pickle
import runpy
import subprocess
import sys
import tarfile
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "reference"
DEFAULT_FRAMES = ROOT.parent / "shared" / "data" / "frames" / "vimeo_septuplet"
DLORAL_REV, OSEDIFF_REV = "40c13086", "fcc4f09c"

SCALE, PROCESS_SIZE = 4, 128
CROP = (64, 20, 98, 44)  # (left, top, right, bottom): 34×24 px of im1..im3 (112×64), with motion
PROMPT = ", ,"  # the references' f"{tags}, {prompt}," with no tags and no user prompt

WIDTH, GROUPS, TEXT_DIM = 16, 8, 16
UNET_CONFIG = {
    "act_fn": "silu",
    "attention_head_dim": [2, 4, 4, 4],
    "block_out_channels": [WIDTH] * 4,
    "center_input_sample": False,
    "cross_attention_dim": TEXT_DIM,
    "down_block_types": [
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ],
    "downsample_padding": 1,
    "dual_cross_attention": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": GROUPS,
    "out_channels": 4,
    "sample_size": 16,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "use_linear_projection": True,
}
VAE_CONFIG = {
    "act_fn": "silu",
    "block_out_channels": [WIDTH] * 4,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": GROUPS,
    "out_channels": 3,
    "sample_size": 128,
    "scaling_factor": 0.18215,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}
SCHEDULER_CONFIG = {  # stabilityai/stable-diffusion-2-1-base scheduler/scheduler_config.json
    "_class_name": "PNDMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}
# SD2.1's tokenizer pads with "!"; the vocabulary holds what the prompt needs.
VOCAB = {"<|startoftext|>": 0, "<|endoftext|>": 1, "!": 2, "!</w>": 3, ",": 4, ",</w>": 5}
TOKENIZER_CONFIG = {
    "tokenizer_class": "CLIPTokenizer",
    "model_max_length": 77,
    "bos_token": "<|startoftext|>",
    "eos_token": "<|endoftext|>",
    "unk_token": "<|endoftext|>",
    "pad_token": "!",
    "do_lower_case": True,
}

UNET_GREP = ["to_k", "to_q", "to_v", "to_out.0", "conv", "conv1", "conv2", "conv_in", "conv_shortcut",
             "conv_out", "proj_out", "proj_in", "ff.net.2", "ff.net.0.proj"]  # fmt: skip
VAE_GREP = [
    "conv1",
    "conv2",
    "conv_in",
    "conv_shortcut",
    "conv",
    "conv_out",
    "to_k",
    "to_q",
    "to_v",
    "to_out.0",
]
CFR_UNUSED = ("feat_extract.", "weight_predict.", "weight_predict_final.", "reconstruction_feat.",
              "conv_hr.", "conv_last.")  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Patches shared by both references


def patch_environment() -> None:
    import torch
    import torch.library

    register_fake = torch.library.register_fake

    def tolerant(op, *args, **kwargs):  # patch 9
        decorator = register_fake(op, *args, **kwargs)
        if not callable(decorator):
            return decorator

        def apply(fn):
            try:
                return decorator(fn)
            except RuntimeError:
                return fn

        return apply

    torch.library.register_fake = tolerant

    def cpu(device):  # patch 1
        if isinstance(device, str) and device.startswith("cuda"):
            return "cpu"
        if isinstance(device, torch.device) and device.type == "cuda":
            return torch.device("cpu")
        return device

    def with_cpu(fn):
        def wrapped(self, *args, **kwargs):
            args = tuple(cpu(a) for a in args)
            if "device" in kwargs:
                kwargs["device"] = cpu(kwargs["device"])
            return fn(self, *args, **kwargs)

        return wrapped

    torch.Tensor.to = with_cpu(torch.Tensor.to)
    torch.nn.Module.to = with_cpu(torch.nn.Module.to)
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self

    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    DiagonalGaussianDistribution.sample = lambda self, generator=None: self.mean.contiguous()  # patch 2
    from diffusers.models.modeling_utils import ModelMixin

    ModelMixin.enable_xformers_memory_efficient_attention = lambda self, *a, **k: None  # patch 5

    # patch 6: the RAM/DAPE tagger finds no tags
    class NoTagger(torch.nn.Module):
        def __init__(self, *args, **kwargs):
            super().__init__()

    ram = types.ModuleType("ram")
    ram.inference_ram = lambda image, model: [""]
    ram.__path__ = []
    models = types.ModuleType("ram.models")
    models.__path__ = []
    ram_lora = types.ModuleType("ram.models.ram_lora")
    ram_lora.ram = NoTagger
    sys.modules.update({"ram": ram, "ram.models": models, "ram.models.ram_lora": ram_lora})


def torch_on_cpu():
    """`torch` for a reference module's namespace, whose `torch.tensor(..., device="cuda")` makes
    a CPU tensor (patch 1; torch.tensor itself stays untouched for TorchScript's sake)."""
    import torch

    class TorchOnCpu(types.ModuleType):
        def __getattr__(self, name):
            return getattr(torch, name)

        @staticmethod
        def tensor(*args, **kwargs):
            if str(kwargs.get("device", "")).startswith("cuda"):
                kwargs["device"] = "cpu"
            return torch.tensor(*args, **kwargs)

    return TorchOnCpu("torch")


class Recorder:
    """Tensors seen during the reference run, keyed by stage, one entry per model call."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def new(self) -> dict:
        self.calls.append({})
        return self.calls[-1]

    @property
    def last(self) -> dict:
        return self.calls[-1]


def _colour_fix_recorder(module, rec: Recorder) -> None:
    fix = module.adain_color_fix

    def adain_color_fix(target, source):
        result = fix(target=target, source=source)
        rec.last["truncated"] = np.asarray(target).copy()
        rec.last["colour_fixed"] = np.asarray(result).copy()
        return result

    module.adain_color_fix = adain_color_fix


# ---------------------------------------------------------------------------------------------
# DLoRAL


def run_dloral(root: Path, work: Path) -> None:
    import torch

    os.chdir(root)
    sys.path[:0] = [str(root), str(root / "src")]
    patch_environment()
    mmcv_ops = types.ModuleType("mmcv.ops")  # patch 8
    mmcv_ops.ModulatedDeformConv2d = torch.nn.Module
    mmcv_ops.modulated_deform_conv2d = None
    sys.modules["mmcv.ops"] = mmcv_ops
    import mmengine.runner

    mmengine.runner.load_checkpoint = lambda *a, **k: None

    # patch 4: compile cfr_main without its size assertion, as the module the reference imports
    import src.cross_frame_retrieval  # noqa: F401  (the package, so the submodule can be set)

    path = root / "src" / "cross_frame_retrieval" / "cfr_main.py"
    text = path.read_text()
    start = text.index("        assert lqs_downsample.size(3) >= 64")
    end = text.index("\n\n", start)
    assert text.count("assert lqs_downsample.size(3) >= 64") == 1
    text = (
        text[:start] + "        pass  # size assertion lifted (make_reference_fixture patch 4)" + text[end:]
    )
    cfr_main = types.ModuleType("src.cross_frame_retrieval.cfr_main")
    cfr_main.__file__ = str(path)
    sys.modules[cfr_main.__name__] = cfr_main
    exec(compile(text, str(path), "exec"), cfr_main.__dict__)

    import src.DLoRAL_model as dm
    import src.my_utils.wavelet_color_fix as colour

    # The checkpoint's CFR part, from the reference's own class (state_dict_bpp as its save_model).
    ckpt = torch.load(work / "model.pkl", weights_only=False)
    torch.manual_seed(11)
    cfr = cfr_main.CFR_model(mid_channels=64, num_blocks=7, is_low_res_input=False, spynet_pretrained=None)
    state = {}
    for key, value in cfr.state_dict().items():
        if key.startswith(CFR_UNUSED):
            state[key] = torch.zeros_like(value)
        elif key.startswith("spynet.basic_module"):  # sparse: its 1.4M weights dominate the archive
            keep = torch.rand(value.shape) < 0.1
            scale = 0.05 if key.endswith("bias") else 2 * _fan_std(value)
            state[key] = torch.randint(-2, 3, value.shape) * scale * keep
        elif key in ("spynet.mean", "spynet.std"):
            state[key] = value.clone()
        else:
            state[key] = _coarse(torch.randn(value.shape) * _fan_std(value))
    ckpt["state_dict_bpp"] = state
    torch.save(ckpt, work / "model.pkl")

    class Conv2dTinyWidth(torch.nn.Conv2d):  # patch 3
        def __init__(self, cin, cout, *args, **kwargs):
            super().__init__(cin, WIDTH if (cin, cout) == (8, 320) else cout, *args, **kwargs)

    dm.nn = types.SimpleNamespace(**{**vars(torch.nn), "Conv2d": Conv2dTinyWidth})
    dm.torch = torch_on_cpu()

    rec = Recorder()
    _colour_fix_recorder(colour, rec)
    init, forward = dm.Generator_eval.__init__, dm.Generator_eval.forward

    def init_and_hook(self, args):
        init(self, args)
        self.cfr_main_net.register_forward_pre_hook(lambda m, a: rec.last.update(latents=a[1].clone()))
        self.unet.register_forward_hook(
            lambda m, a, out: rec.last.update(unet_input=a[0].clone(), unet_output=out.sample.clone())
        )

    def forward_recorded(self, stages, c_t, uncertainty_map, prompt=None, weight_dtype=None):
        rec.new().update(vae_input=c_t.clone(), prompt=prompt)
        out = forward(self, stages, c_t, uncertainty_map, prompt=prompt, weight_dtype=weight_dtype)
        rec.last.update(decoded=out[0].clone(), x0=out[1].clone(), prompt_embeds=out[2].clone())
        return out

    dm.Generator_eval.__init__, dm.Generator_eval.forward = init_and_hook, forward_recorded

    frames = [np.asarray(_open_rgb(p))[:, :, ::-1].copy() for p in sorted((work / "lr").glob("*.png"))]
    import cv2

    class FramesCapture:  # patch 7
        def __init__(self, path):
            self.frames = list(frames)

        def read(self):
            return (True, self.frames.pop(0)) if self.frames else (False, None)

        def release(self):
            pass

    cv2.VideoCapture = FramesCapture
    out_dir = work / "dloral_out"
    sys.argv = ["src/test_DLoRAL.py", "-i", str(work / "clip.mp4"), "-o", str(out_dir),
                "--pretrained_path", str(work / "model.pkl"),
                "--pretrained_model_path", str(work / "sd21-base"),
                "--pretrained_model_name_or_path", str(work / "sd21-base"),
                "--process_size", str(PROCESS_SIZE), "--upscale", str(SCALE), "--align_method", "adain",
                "--mixed_precision", "fp32", "--stages", "1", "--load_cfr", "--vae_encoder_tiled_size", "4096"]  # fmt: skip
    runpy.run_path(str(root / "src" / "test_DLoRAL.py"), run_name="__main__")
    outputs = [np.asarray(_open_rgb(p)) for p in sorted((out_dir / "clip").glob("frame_*.png"))]
    _save_records(work / "dloral_records.pkl", rec, outputs)


# ---------------------------------------------------------------------------------------------
# OSEDiff


def run_osediff(src: Path, work: Path) -> None:
    os.chdir(src)
    sys.path[:0] = [str(src)]
    patch_environment()
    import my_utils.wavelet_color_fix as colour
    import osediff

    osediff.torch = torch_on_cpu()
    rec = Recorder()
    _colour_fix_recorder(colour, rec)
    init, forward = osediff.OSEDiff_test.__init__, osediff.OSEDiff_test.forward

    def init_and_hook(self, args):
        init(self, args)
        self.unet.register_forward_hook(
            lambda m, a, out: rec.last.update(latents=a[0].clone(), unet_output=out.sample.clone())
        )
        step = self.noise_scheduler.step

        def step_recorded(*args, **kwargs):
            out = step(*args, **kwargs)
            rec.last["x0"] = out.prev_sample.clone()
            return out

        self.noise_scheduler.step = step_recorded

    def forward_recorded(self, lq, prompt):
        rec.new().update(vae_input=lq.clone(), prompt=prompt)
        out = forward(self, lq, prompt)
        rec.last["decoded"] = out.clone()
        return out

    osediff.OSEDiff_test.__init__, osediff.OSEDiff_test.forward = init_and_hook, forward_recorded
    out_dir = work / "osediff_out"
    sys.argv = ["test_osediff.py", "-i", str(work / "lr"), "-o", str(out_dir),
                "--pretrained_model_name_or_path", str(work / "sd21-base"),
                "--osediff_path", str(work / "osediff.pkl"),
                "--process_size", str(PROCESS_SIZE), "--upscale", str(SCALE), "--align_method", "adain",
                "--mixed_precision", "fp32"]  # fmt: skip
    runpy.run_path(str(src / "test_osediff.py"), run_name="__main__")
    outputs = [np.asarray(_open_rgb(p)) for p in sorted(out_dir.glob("*.png"))]
    _save_records(work / "osediff_records.pkl", rec, outputs)


def _open_rgb(path: Path):
    from PIL import Image

    return Image.open(path).convert("RGB")


def _save_records(path: Path, rec: Recorder, outputs: list[np.ndarray]) -> None:
    calls = [{k: (v.numpy() if hasattr(v, "numpy") else v) for k, v in call.items()} for call in rec.calls]
    path.write_bytes(pickle.dumps({"calls": calls, "outputs": outputs}))


# ---------------------------------------------------------------------------------------------
# Tiny weights in the official layouts


def _fan_std(t) -> float:
    fan_in = int(np.prod(t.shape[1:])) if t.ndim > 1 else int(t.shape[0])
    return 1.0 / math.sqrt(max(1, fan_in))


def _coarse(t):
    """`t` rounded to steps of a power of two near half its spread: a few levels per tensor, so
    the archive compresses (random full-precision floats do not)."""
    std = float(t.float().std()) if t.numel() > 1 else 0.0
    if std == 0:
        return t.clone()
    step = 2.0 ** math.floor(math.log2(std / 2))
    return (t / step).round() * step


def _randomise(module, lora_scale: float = 0.2) -> None:
    import torch

    with torch.no_grad():
        for name, p in module.named_parameters():
            if "lora_" in name:
                p.copy_(_coarse(torch.randn(p.shape) * lora_scale))
            elif "norm" in name:
                p.copy_(_coarse(1.0 + 0.1 * torch.randn(p.shape)) if name.endswith("weight") else
                        _coarse(0.1 * torch.randn(p.shape)))  # fmt: skip
            else:
                p.copy_(_coarse(p))


def unet_lora_modules(unet) -> tuple[list[str], list[str], list[str]]:
    """(encoder, decoder, others) by the references' `initialize_unet` rule."""
    enc, dec, oth = [], [], []
    for n, _ in unet.named_parameters():
        if "bias" in n or "norm" in n:
            continue
        for pattern in UNET_GREP:
            if pattern in n and ("down_blocks" in n or "conv_in" in n):
                enc.append(n.replace(".weight", ""))
                break
            if pattern in n and ("up_blocks" in n or "conv_out" in n):
                dec.append(n.replace(".weight", ""))
                break
            if pattern in n:
                oth.append(n.replace(".weight", ""))
                break
    return enc, dec, oth


def vae_lora_modules(vae) -> list[str]:
    """OSEDiff's `initialize_vae` rule (no `break`: names repeat, as in the real checkpoint)."""
    out = []
    for n, _ in vae.named_parameters():
        if "bias" in n or "norm" in n:
            continue
        for pattern in VAE_GREP:
            if pattern in n and "encoder" in n:
                out.append(n.replace(".weight", ""))
            elif "quant_conv" in n and "post_quant_conv" not in n:
                out.append(n.replace(".weight", ""))
    return out


def write_weights(work: Path) -> None:
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from peft import LoraConfig
    from transformers import CLIPTextConfig, CLIPTextModel

    base = work / "sd21-base"
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**UNET_CONFIG)
    _randomise(unet)
    unet.save_pretrained(base / "unet")
    vae = AutoencoderKL(**VAE_CONFIG)
    _randomise(vae)
    vae.save_pretrained(base / "vae")
    (base / "scheduler").mkdir(parents=True)
    (base / "scheduler" / "scheduler_config.json").write_text(json.dumps(SCHEDULER_CONFIG))
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(VOCAB), hidden_size=TEXT_DIM, intermediate_size=32,
                                        num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=77,
                                        projection_dim=TEXT_DIM))  # fmt: skip
    _randomise(text)
    text.save_pretrained(base / "text_encoder", safe_serialization=True)
    (base / "tokenizer").mkdir(parents=True)
    (base / "tokenizer" / "vocab.json").write_text(json.dumps(VOCAB))
    (base / "tokenizer" / "merges.txt").write_text("#version: 0.2\n")
    (base / "tokenizer" / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG))
    special = {k: TOKENIZER_CONFIG[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token")}
    (base / "tokenizer" / "special_tokens_map.json").write_text(json.dumps(special))
    (base / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))

    # DLoRAL model.pkl: the whole UNet (8-channel conv_in), six adapters (as its save_model).
    torch.manual_seed(1)
    unet8 = UNet2DConditionModel(**{**UNET_CONFIG, "in_channels": 8})
    _randomise(unet8)
    enc, dec, oth = unet_lora_modules(unet8)
    rank = 4
    for kind in ("quality", "consistency"):
        for part, modules in (("encoder", enc), ("decoder", dec), ("others", oth)):
            config = LoraConfig(r=rank, init_lora_weights="gaussian", target_modules=modules)
            unet8.add_adapter(config, adapter_name=f"default_{part}_{kind}")
    _randomise(unet8)
    ckpt = {"lora_rank_unet_quality": rank, "lora_rank_unet_consistency": rank}
    for kind in ("quality", "consistency"):
        ckpt[f"unet_lora_encoder_modules_{kind}"] = enc
        ckpt[f"unet_lora_decoder_modules_{kind}"] = dec
        ckpt[f"unet_lora_others_modules_{kind}"] = oth
    ckpt["state_dict_unet"] = dict(unet8.state_dict())
    torch.save(ckpt, work / "model.pkl")  # state_dict_bpp is added by the DLoRAL child

    # OSEDiff osediff.pkl: LoRA + conv_in of the UNet, LoRA of the VAE encoder (as its save_model).
    torch.manual_seed(2)
    unet = UNet2DConditionModel.from_pretrained(base / "unet")
    enc, dec, oth = unet_lora_modules(unet)
    for part, modules in (("encoder", enc), ("decoder", dec), ("others", oth)):
        unet.add_adapter(
            LoraConfig(r=rank, init_lora_weights="gaussian", target_modules=modules), f"default_{part}"
        )
    vae = AutoencoderKL.from_pretrained(base / "vae")
    vae_modules = vae_lora_modules(vae)
    vae.add_adapter(
        LoraConfig(r=rank, init_lora_weights="gaussian", target_modules=vae_modules), "default_encoder"
    )
    for module in (unet, vae):
        with torch.no_grad():
            for name, p in module.named_parameters():
                if "lora_" in name:
                    p.copy_(_coarse(torch.randn(p.shape) * 0.2))
    ckpt = {
        "vae_lora_encoder_modules": vae_modules,
        "unet_lora_encoder_modules": enc,
        "unet_lora_decoder_modules": dec,
        "unet_lora_others_modules": oth,
        "rank_unet": rank,
        "rank_vae": rank,
        "state_dict_unet": {k: v for k, v in unet.state_dict().items() if "lora" in k or "conv_in" in k},
        "state_dict_vae": {k: v for k, v in vae.state_dict().items() if "lora" in k},
    }
    torch.save(ckpt, work / "osediff.pkl")


# ---------------------------------------------------------------------------------------------
# The fixture


def _u8(images: np.ndarray) -> np.ndarray:
    """[-1, 1] floats that came from 8-bit images (k/255·2 − 1) back to their 8-bit values."""
    u8 = np.round((images + 1) / 2 * 255)
    back = (u8.astype(np.float32) / 255) * 2 - 1
    assert np.array_equal(back.astype(np.float32), images.astype(np.float32)), "input is not 8-bit"
    return u8.astype(np.uint8)


def _frames_of_pairs(stage: list[np.ndarray]) -> np.ndarray:
    """Per-frame stage from DLoRAL's (previous, current) pairs; the shared frames must agree."""
    frames = [stage[0][0], stage[0][1]]
    for pair in stage[1:]:
        np.testing.assert_allclose(pair[0], frames[-1], atol=1e-6)
        frames.append(pair[1])
    return np.stack(frames)


def _check_truncation(decoded: np.ndarray, truncated: list[np.ndarray]) -> None:
    """ToPILImage's truncation of the decoded image is what the colour fix received."""
    import torch

    expected = (torch.from_numpy(decoded) * 0.5 + 0.5).mul(255).byte().permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(expected, np.stack(truncated))


def _write_pngs(folder: Path, name: str, images, frames: list[int]) -> None:
    """8-bit images (N, 3, H, W) or (N, H, W, 3) as lossless PNGs `{name}_{frame}.png`."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for image, t in zip(images, frames, strict=True):
        image = np.asarray(image)
        if image.shape[0] == 3:
            image = image.transpose(1, 2, 0)
        Image.fromarray(np.ascontiguousarray(image)).save(folder / f"{name}_{t}.png")


def assemble(work: Path, out: Path, meta: dict) -> None:
    """Float stages as safetensors (fp32: the 8-bit truncation of the decoded images is checked
    exactly), 8-bit stages as PNG. Frames are numbered as in the clip: DLoRAL makes frames 1 and 2 only."""
    import torch
    from PIL import Image
    from safetensors.torch import save_file

    d = pickle.loads((work / "dloral_records.pkl").read_bytes())
    calls = d["calls"]
    assert len(calls) == 2 and all(c["prompt"] == PROMPT for c in calls), [c["prompt"] for c in calls]
    decoded = np.concatenate([c["decoded"] for c in calls])
    _check_truncation(decoded, [c["truncated"] for c in calls])
    dloral = {
        # every call is one (previous, current) pair; [0] drops the batch axis
        "latents": _frames_of_pairs([c["latents"][0] for c in calls]),
        "unet_input": np.concatenate([c["unet_input"] for c in calls]),
        "unet_output": np.concatenate([c["unet_output"] for c in calls]),
        "x0": np.concatenate([c["x0"] for c in calls]),
        "decoded": decoded,
        "prompt_embeds": calls[0]["prompt_embeds"],
    }
    folder = out / "dloral"
    _write_pngs(folder, "input", _u8(_frames_of_pairs([c["vae_input"][0] for c in calls])), [0, 1, 2])
    _write_pngs(folder, "colour_fixed", [c["colour_fixed"] for c in calls], [1, 2])
    _write_pngs(folder, "output", d["outputs"], [1, 2])

    o = pickle.loads((work / "osediff_records.pkl").read_bytes())
    calls = o["calls"]
    assert len(calls) == 3 and all(c["prompt"] == PROMPT for c in calls)
    decoded = np.concatenate([c["decoded"] for c in calls])
    _check_truncation(decoded, [c["truncated"] for c in calls])
    for c, output in zip(calls, o["outputs"], strict=True):
        np.testing.assert_array_equal(c["colour_fixed"], output)  # no resize back: see below
    osediff = {
        "latents": np.concatenate([c["latents"] for c in calls]),
        "unet_output": np.concatenate([c["unet_output"] for c in calls]),
        "x0": np.concatenate([c["x0"] for c in calls]),
        "decoded": decoded,
    }
    folder = out / "osediff"
    _write_pngs(folder, "input", _u8(np.concatenate([c["vae_input"] for c in calls])), [0, 1, 2])
    _write_pngs(folder, "output", o["outputs"], [0, 1, 2])
    # The reference computes its resize back to ×scale and discards it (`output_pil.resize(...)`
    # without assignment): this is that expression's value, which vsrup returns.
    size = (meta["lr_width"] * SCALE, meta["lr_height"] * SCALE)
    resized = [np.asarray(Image.fromarray(im).resize(size)) for im in o["outputs"]]
    _write_pngs(folder, "output_resized", resized, [0, 1, 2])

    metadata = {k: json.dumps(v) for k, v in meta.items()}
    for name, stages in (("dloral", dloral), ("osediff", osediff)):
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in stages.items()}
        save_file(tensors, str(out / f"{name}.safetensors"), metadata=metadata)

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted((work / "sd21-base").rglob("*")):
            if path.is_file():
                tar.add(path, arcname=str(path.relative_to(work)))
        tar.add(work / "model.pkl", arcname="model.pkl")
        tar.add(work / "osediff.pkl", arcname="osediff.pkl")
    (out / "weights.tar.xz").write_bytes(lzma.compress(buffer.getvalue(), preset=9 | lzma.PRESET_EXTREME))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dloral-src", type=Path, required=True)
    parser.add_argument("--osediff-src", type=Path, required=True)
    parser.add_argument("--frames", type=Path, default=DEFAULT_FRAMES, help="folder with im1.png … im3.png")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--work", type=Path, default=Path("/tmp/vsrup-reference-work"))
    parser.add_argument("--child", choices=["dloral", "osediff"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "dloral":
        return run_dloral(args.dloral_src.resolve(), args.work.resolve())
    if args.child == "osediff":
        return run_osediff(args.osediff_src.resolve(), args.work.resolve())

    import shutil

    from PIL import Image

    work = args.work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    (work / "lr").mkdir(parents=True)
    args.out.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        frame = Image.open(args.frames / f"im{i + 1}.png").convert("RGB").crop(CROP)
        frame.save(work / "lr" / f"frame_{i:04d}.png")
        frame.save(args.out / f"lr_{i}.png")
    write_weights(work)
    for child in ("dloral", "osediff"):
        subprocess.run([sys.executable, __file__, "--child", child, "--dloral-src", str(args.dloral_src),
                        "--osediff-src", str(args.osediff_src), "--work", str(work)], check=True)  # fmt: skip
    import diffusers
    import peft
    import PIL
    import torch
    import transformers

    meta = {
        "dloral_rev": DLORAL_REV,
        "osediff_rev": OSEDIFF_REV,
        "scale": SCALE,
        "process_size": PROCESS_SIZE,
        "prompt": PROMPT,
        "lr_width": CROP[2] - CROP[0],
        "lr_height": CROP[3] - CROP[1],
        "colour_fix": "adain",
        "versions": {m.__name__: m.__version__ for m in (torch, diffusers, peft, transformers, PIL)},
    }
    assemble(work, args.out, meta)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
