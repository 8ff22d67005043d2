"""The model catalogue: every model vsrup can run, found by name or by path, loaded one way.

`find(name_or_path)` gives a `CatalogueEntry`; `entry.load(scale, device, dtype, …)` gives a
ready model (eval mode, no gradients) whose `description` is then checked against what was asked
(scale, --prompt, --reference-postprocess). `load_model` is the two in one call: every command
(upscale, preview, eval, bench, the estimate, device and Ray workers) loads through it.

Registering a name — one call, e.g. for a model family `span`:

    def _load_span(scale, device, dtype, options):      # options: LoadOptions (prompt, …)
        from vsrup.models.span import load_span         # lazy: heavy imports only when used
        return load_span(scale, device, dtype)

    register("span", _load_span, scales=(2, 4), licence="MIT", kind="built-in",
             summary="SPAN, a fast per-frame model")

Registering a path kind — one call, e.g. community model files:

    def _community(path: Path) -> CatalogueEntry | None:
        if path.suffix.lower() not in {".pth", ".pt", ".ckpt", ".safetensors"}:
            return None                                  # not mine: the next kind is asked
        return CatalogueEntry(str(path), loader, scales=(), kind="community file", path=path)

    register_path_kind("community file", "a .pth/.pt/.ckpt/.safetensors model file", _community)

Names are looked up first; then each path kind is asked in the order registered, and the first
that returns an entry wins (so a specific kind, e.g. tiny weights with their JSON beside them,
is registered before a general one). `scales=()` means the scales are known only once loaded
(the loaded description's `scales` is checked then); a loader may also refuse a scale itself with
a `UsageError` naming the scales it has.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from vsrup.errors import UsageError
from vsrup.models.base import VSRModel


@dataclass(frozen=True)
class LoadOptions:
    """Construction-time choices a model may offer; its description says whether it does."""

    prompt: str = ""  # --prompt: the text a diffusion model conditions on ("" = its default)
    reference_postprocess: bool = False  # --reference-postprocess: the references' 8-bit finish


DEFAULT_SCALE = 4  # --scale left out, for a model that offers it

# loader(scale, device, dtype, options) -> VSRModel on `device` in `dtype`; the scale is None only
# for an entry whose scales are known once loaded (the loader takes the model's own)
Loader = Callable[[int | None, torch.device, torch.dtype, LoadOptions], VSRModel]


@dataclass(frozen=True)
class CatalogueEntry:
    """One model as the catalogue knows it before loading (the loaded model's description says the rest)."""

    name: str  # the registered name, or the path as the user gave it
    loader: Loader
    scales: tuple[int, ...] = ()  # () = known only once loaded
    licence: str = "unknown"
    kind: str = "built-in"  # built-in, embedded, download, or a path kind's name
    summary: str = ""
    path: Path | None = None  # for a path kind: the file or folder

    @property
    def default_scale(self) -> int | None:
        """The scale when --scale is left out: DEFAULT_SCALE where the model offers it, else its
        first; None while the scales are known only once loaded (the loader then takes the model's
        own, e.g. a community file's)."""
        if not self.scales:
            return None
        return DEFAULT_SCALE if DEFAULT_SCALE in self.scales else self.scales[0]

    def check_scale(self, scale: int) -> None:
        """A clear line naming the valid scales, before anything heavy is loaded."""
        if self.scales and scale not in self.scales:
            raise UsageError(
                f"--scale must be {_choices(self.scales)} for the {self.name} model (got {scale})"
            )

    def load(
        self,
        scale: int | None,
        device: torch.device | str,
        dtype: torch.dtype,
        prompt: str = "",
        reference_postprocess: bool = False,
    ) -> VSRModel:
        """The model at `scale` (None: `default_scale`)."""
        scale = self.default_scale if scale is None else scale
        if scale is not None:
            self.check_scale(scale)
        options = LoadOptions(prompt, reference_postprocess)
        model = self.loader(scale, torch.device(device), dtype, options).eval().requires_grad_(False)
        described = model.description
        if scale is not None and described.scale != scale:
            raise UsageError(
                f"--scale must be {_choices(described.scales)} for the {self.name} model (got {scale})"
            )
        if prompt and not described.prompt:
            raise UsageError(
                f"--prompt does not apply to the {described.name} model (it takes no text prompt)"
            )
        if reference_postprocess and not described.reference_postprocess:
            raise UsageError(
                f"--reference-postprocess does not apply to the {described.name} model"
                " (it has no reference post-processing)"
            )
        return model


def _choices(scales: tuple[int, ...]) -> str:
    if len(scales) == 1:
        return str(scales[0])
    return "one of " + ", ".join(map(str, scales))


ENTRIES: dict[str, CatalogueEntry] = {}  # by name, in registration order
# (kind, what it accepts in words, resolve(path) -> entry or None), tried in order
PATH_KINDS: list[tuple[str, str, Callable[[Path], CatalogueEntry | None]]] = []


def register(
    name: str,
    loader: Loader,
    *,
    scales: tuple[int, ...] = (),
    licence: str = "unknown",
    kind: str = "built-in",
    summary: str = "",
) -> CatalogueEntry:
    """Make `name` findable (see the module docstring); registering a name again replaces it."""
    entry = CatalogueEntry(name, loader, tuple(scales), licence, kind, summary)
    ENTRIES[name] = entry
    return entry


def register_path_kind(kind: str, accepts: str, resolve: Callable[[Path], CatalogueEntry | None]) -> None:
    """Let `--model PATH` find models of `kind` (see the module docstring). `accepts` describes the
    paths in words, for the message that lists the choices."""
    PATH_KINDS[:] = [k for k in PATH_KINDS if k[0] != kind] + [(kind, accepts, resolve)]


def names() -> list[str]:
    return list(ENTRIES)


def find(name_or_path: str | Path) -> CatalogueEntry:
    """The entry for a registered name or a path of a registered kind; else a UsageError that
    lists the names and the kinds of path."""
    text = str(name_or_path)
    if text in ENTRIES:
        return ENTRIES[text]
    path = Path(text).expanduser()
    if path.exists():
        for _kind, _accepts, resolve in PATH_KINDS:
            entry = resolve(path)
            if entry is not None:
                return entry
    kinds = "; ".join(accepts for _kind, accepts, _resolve in PATH_KINDS)
    what = "is not a model file or folder vsrup can read" if path.exists() else None
    lead = f"{text}: {what}" if what else f"unknown model {text!r}"
    raise UsageError(
        f"{lead}; choose one of: {', '.join(names())}" + (f" (or a path: {kinds})" if kinds else "")
    )


def load_model(
    name_or_path: str | Path,
    scale: int | None,
    device: torch.device | str,
    dtype: torch.dtype,
    prompt: str = "",
    reference_postprocess: bool = False,
) -> VSRModel:
    """`find(name_or_path).load(...)`: a model ready for inference (eval mode, on device, in dtype)."""
    return find(name_or_path).load(scale, device, dtype, prompt, reference_postprocess)
