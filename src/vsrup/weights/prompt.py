"""Text embeddings of a prompt for the SD 2.1-based models (`vsrup upscale --prompt`).

Both references condition the UNet on a caption. A bundle stores the embedding of the prompt it was
converted with (the empty one by default), so the default needs no text encoder at all. Any other
prompt is encoded once by the SD 2.1 CLIP text encoder recorded in the bundle at conversion, and the
result is cached in the vsrup cache (prompts/<sha256 of encoder + prompt>.safetensors): later runs
with the same prompt load neither transformers nor the encoder.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from vsrup.errors import WeightsError
from vsrup.weights import cache
from vsrup.weights.verify import file_sha256

PROMPT_KEY = "prompt_embeds"  # the tensor's name in bundles and in cached prompt files
_ENCODER_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


def text_encoder_record(text_encoder_dir: Path, tokenizer_dir: Path) -> dict[str, Any]:
    """What a bundle records about the text encoder it was converted with: where it is, and the
    sha256 and size of its weights (the identity that cached prompt embeddings are keyed by)."""
    weights = next((text_encoder_dir / n for n in _ENCODER_WEIGHTS if (text_encoder_dir / n).is_file()), None)
    if weights is None:
        raise WeightsError(f"{text_encoder_dir} has no {' or '.join(_ENCODER_WEIGHTS)}")
    return {
        "path": str(text_encoder_dir.absolute()),
        "tokenizer": str(tokenizer_dir.absolute()),
        "weights": weights.name,
        "sha256": file_sha256(weights),
        "size": weights.stat().st_size,
    }


def prompt_embeds(config: Mapping[str, Any], prompt: str) -> torch.Tensor | None:
    """The embedding of `prompt` for a bundle with this config.json, or None when the bundle's own
    stored embedding is the one (the prompt it was converted with, empty by default)."""
    if prompt == config.get("prompt", ""):
        return None
    record = config.get("text_encoder")
    if not record:
        raise WeightsError(
            "this bundle records no text encoder, so it cannot encode --prompt; convert it again from"
            " a base model folder with text_encoder/ and tokenizer/ (vsrup convert, or vsrup download-weights)"
        )
    key = hashlib.sha256(f"{record['sha256']}\0{prompt}".encode()).hexdigest()
    path = cache.prompts_dir() / f"{key}.safetensors"
    if path.is_file():
        from safetensors.torch import load_file

        return load_file(str(path))[PROMPT_KEY]
    encoder_dir = Path(record["path"])
    weights = encoder_dir / record["weights"]
    if not weights.is_file() or weights.stat().st_size != record["size"]:
        raise WeightsError(
            f"--prompt needs the text encoder this bundle was converted with, {weights}, which is gone"
            f" or changed; convert the model again (vsrup convert, or vsrup download-weights)"
        )
    embeds = encode_prompt(encoder_dir, Path(record["tokenizer"]), prompt)
    _save(path, embeds, prompt)
    return embeds


def _save(path: Path, embeds: torch.Tensor, prompt: str) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    save_file({PROMPT_KEY: embeds.contiguous()}, str(tmp), metadata={"prompt": prompt})
    tmp.replace(path)  # whole files only: a crash never leaves a half-written embedding


@torch.no_grad()
def encode_prompt(text_encoder_dir: Path, tokenizer_dir: Path, prompt: str) -> torch.Tensor:
    """CLIP last hidden state of `prompt`, padded to the tokenizer's 77 tokens (as the references'
    `encode_prompt`), in float32."""
    try:
        from transformers import CLIPTextModel, CLIPTokenizer
        from transformers.utils import logging as transformers_logging
    except ImportError as exc:  # pragma: no cover - transformers is optional
        raise WeightsError('encoding a prompt needs transformers: pip install "vsrup[convert]"') from exc
    transformers_logging.disable_progress_bar()  # a bar for a few tensors would only clutter the output
    tokenizer = CLIPTokenizer.from_pretrained(str(tokenizer_dir))
    encoder = CLIPTextModel.from_pretrained(str(text_encoder_dir)).eval()
    ids = tokenizer(
        prompt,
        max_length=tokenizer.model_max_length,
        padding="max_length",
        truncation=True,
        return_tensors="pt",
    ).input_ids
    return encoder(ids)[0].float()
