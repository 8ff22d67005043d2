"""Community model files (.pth, .pt, .ckpt, .safetensors): read once, cached, and remembered.

A pickle checkpoint is opened here and nowhere else, only with torch.load(weights_only=True), and
only once: its state dict — unwrapped from the `params_ema` / `params` / `state_dict` wrappers
that training code saves — is written as safetensors in the vsrup cache under the file's sha256,
so every later run memory-maps that copy and never unpickles again. A .safetensors file is read in
place. `index.json` beside the copies remembers each file used or added (architecture, scale,
parameters, size) for `vsrup models`.

torch and safetensors are imported inside the functions: `vsrup models` lists the index without them.
"""

from __future__ import annotations

import json
import os
import pickle
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vsrup.errors import WeightsError
from vsrup.weights import cache
from vsrup.weights.registry import Entry, join_inside
from vsrup.weights.verify import file_sha256, unpinned

SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors")
# Keys under which training code nests the weights, the ones to prefer first (the EMA weights are
# the ones published models mean: BasicSR saves both `params` and `params_ema`).
WRAPPERS = ("params_ema", "params-ema", "params", "state_dict", "model_state_dict", "model", "net", "netG")
PREFIXES = ("module.", "netG.")  # left on every key by DataParallel / some trainers
INDEX = "index.json"
CONVERT = "community"  # weights.toml `convert` of a community model entry
FILE_LICENCE = "the file author's (see the file's source)"


def downloaded(entry: Entry) -> Path:
    """The downloaded file of a community weights.toml entry (verified when it was downloaded)."""
    path = join_inside(cache.downloads_dir(entry.name), entry.files[0].name)
    if not path.is_file():
        trust = " --trust-unverified" if unpinned(entry) else ""
        raise WeightsError(
            f"weights for {entry.name!r} are not downloaded; run: vsrup download-weights {entry.name}{trust}"
            f" (or pass the file itself: --model FILE)"
        )
    return path


def is_model_file(name: str | Path) -> bool:
    """A `--model` value that names a community model file (by its extension)."""
    return Path(str(name)).suffix.lower() in SUFFIXES


def community_dir() -> Path:
    return cache.vsrup_cache() / "community"


def cached_copy(digest: str) -> Path:
    """Where the safetensors copy of a pickle checkpoint with this sha256 lives."""
    return community_dir() / f"{digest}.safetensors"


def state_dict(path: Path) -> tuple[dict[str, Any], str]:
    """The file's weights (memory-mapped tensors, wrappers removed) and the file's sha256.

    A pickle is converted into the cache first if this is its first use."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"model file {path} does not exist")
    if not is_model_file(path):
        raise WeightsError(f"{path.name}: not a model file (expected {', '.join(SUFFIXES)})")
    digest = file_sha256(path)
    if path.suffix.lower() == ".safetensors":
        return unwrap(read_safetensors(path, path.name), path.name), digest
    copy = cached_copy(digest)
    if not copy.is_file():
        convert_pickle(path, copy)
    return read_safetensors(copy, path.name), digest


def convert_pickle(path: Path, out: Path) -> Path:
    """The one place a community pickle is opened: torch.load(weights_only=True), unwrap, and write
    the tensors as safetensors to `out` (through a temporary name, so a crash leaves no half file)."""
    from safetensors.torch import save_file

    tensors = unwrap(load_pickle(path), path.name)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    try:
        # clone: safetensors refuses tensors that share storage (tied weights, views of one buffer)
        save_file({k: v.detach().clone().contiguous() for k, v in tensors.items()}, str(tmp),
                  metadata={"source": path.name})  # fmt: skip
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def load_pickle(path: Path) -> Any:
    import torch

    try:
        with warnings.catch_warnings():  # torch warns before it raises: the one line below says it
            warnings.simplefilter("ignore")
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "global" in str(exc).lower():  # weights_only met a class or function it will not build
            raise WeightsError(
                f"{path.name}: refused: loading it would run code from the file (torch.load with"
                " weights_only=True allows only tensors and plain containers)"
            ) from None
        raise WeightsError(f"{path.name}: not a readable model file (corrupt or truncated?)") from None
    except Exception as exc:  # truncated zip, not a checkpoint at all, …: torch raises many kinds
        if "TorchScript" in str(exc):
            raise WeightsError(
                f"{path.name}: a TorchScript archive; vsrup reads weights only (TorchScript runs code"
                " from the file): use the model's .pth or .safetensors state dict"
            ) from None
        raise WeightsError(f"{path.name}: not a readable model file ({_first_line(exc)})") from None


def read_safetensors(path: Path, shown: str) -> dict[str, Any]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # a bad header, a truncated file: safetensors raises its own kinds
        raise WeightsError(f"{shown}: not a readable safetensors file ({_first_line(exc)})") from None


def unwrap(obj: Any, shown: str) -> dict[str, Any]:
    """The flat name → tensor state dict inside a checkpoint, without common key prefixes."""
    import torch

    for _ in range(3):  # wrappers can nest ({"state_dict": {"params_ema": …}})
        if not isinstance(obj, Mapping):
            break
        inner = next((obj[k] for k in WRAPPERS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    tensors = {}
    if isinstance(obj, Mapping):
        tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise WeightsError(f"{shown}: not a model: it holds no weights")
    for prefix in PREFIXES:
        if all(k.startswith(prefix) for k in tensors):
            tensors = {k[len(prefix) :]: v for k, v in tensors.items()}
    return tensors


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


# ---------------------------------------------------------------------------------------------
# The index `vsrup models` lists


def remember(digest: str, record: dict[str, Any]) -> None:
    """Note (or refresh) a file that was used or added. Written through a temporary name: a batch's
    workers may write at once, and the last complete index wins (a lost line is re-added next use)."""
    index = remembered()
    index[digest] = {**index.get(digest, {}), **record, "used": time.strftime("%Y-%m-%d %H:%M")}
    folder = community_dir()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{INDEX}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
    tmp.replace(folder / INDEX)


def remembered() -> dict[str, dict[str, Any]]:
    """sha256 → record of every community file used or added (an unreadable index counts as empty)."""
    try:
        index = json.loads((community_dir() / INDEX).read_text())
    except (OSError, ValueError):
        return {}
    return index if isinstance(index, dict) else {}


def listed() -> list[dict[str, Any]]:
    """`vsrup models` rows for the community files used or added, by name."""
    rows = []
    for digest, record in sorted(remembered().items(), key=lambda item: str(item[1].get("name"))):
        path = Path(str(record.get("path", "")))
        parameters = record.get("parameters") or 0
        rows.append({
            "name": record.get("name"),
            "description": f"{record.get('architecture')} ×{record.get('scale')}, "
            f"{count(parameters)} parameters: --model {path}",
            "license": FILE_LICENCE,
            "source": "file",
            "size": record.get("size"),
            "approx_size": record.get("size"),
            "bundle_size": None,
            "pinned": False,
            "cached": path.suffix.lower() == ".safetensors" or cached_copy(digest).is_file(),
            "converted": None,
            "ready": path.is_file(),
            "requires": [],
            "path": str(path),
            "architecture": record.get("architecture"),
            "scale": record.get("scale"),
            "parameters": parameters,
            "sha256": digest,
        })  # fmt: skip
    return rows


def count(parameters: int) -> str:
    """A parameter count for people: 16.7 M, or 4,920 for the tiny ones."""
    return f"{parameters / 1e6:.1f} M" if parameters >= 100_000 else f"{parameters:,}"
