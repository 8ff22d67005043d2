"""Fetch Debian wallpaper packages and collect their photographs as training stills for `tiny`.

    python scripts/prep_wallpapers.py [--out runs/wallpapers] [--packages gnome-backgrounds ...]

Runs `apt-get download` (needs `apt-get update` once), unpacks each .deb with `dpkg-deb -x`, keeps
raster images whose short side is ≥ 1080 px (one per wallpaper: the largest rendition when a
package ships several sizes), copies them to `<out>/images/<package>/`, keeps each package's
`copyright` file, and writes `<out>/manifest.json` (package, version, image count, licence lines)
for the model card. Everything lands under the git-ignored `runs/`; nothing is committed.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from PIL import Image

# desktop-base is left out on purpose: its themes are vector art and logos, not photographs.
PACKAGES = ("gnome-backgrounds", "mate-backgrounds", "plasma-workspace-wallpapers")
SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
MIN_SIDE = 1080


def download(package: str, into: Path) -> Path:
    subprocess.run(["apt-get", "download", package], cwd=into, check=True, capture_output=True)
    return next(into.glob(f"{package}_*.deb"))


def version_of(deb: Path) -> str:
    out = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def wallpaper_key(path: Path, root: Path) -> str:
    """Plasma ships `<Name>/contents/images/<W>x<H>.<ext>`: one wallpaper, many sizes."""
    parts = path.relative_to(root).parts
    return "/".join(parts[: parts.index("contents")]) if "contents" in parts else str(path.relative_to(root))


def photos(root: Path) -> list[Path]:
    """The largest raster rendition of every wallpaper under `root` with a short side ≥ MIN_SIDE."""
    best: dict[str, tuple[int, Path]] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in SUFFIXES or "/usr/share/doc/" in str(path):
            continue
        try:
            w, h = Image.open(path).size
        except OSError:
            continue
        key = wallpaper_key(path, root)
        if min(w, h) >= MIN_SIDE and w * h > best.get(key, (0, path))[0]:
            best[key] = (w * h, path)
    return [p for _, p in best.values()]


def licence_lines(copyright_file: Path) -> list[str]:
    text = copyright_file.read_text(errors="replace")
    found = re.findall(r"^License:\s*(\S.*)$|Licensed under (.*?)(?:\.|$)", text, flags=re.M)
    return sorted({(a or b).strip() for a, b in found if (a or b).strip()})


def prepare(package: str, out: Path, work: Path) -> dict:
    deb = download(package, work)
    unpacked = work / package
    subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)
    target = out / "images" / package
    target.mkdir(parents=True, exist_ok=True)
    kept = photos(unpacked)
    for i, path in enumerate(sorted(kept)):
        shutil.copyfile(path, target / f"{i:03d}_{path.name}")
    copyright_file = unpacked / "usr/share/doc" / package / "copyright"
    shutil.copyfile(copyright_file, out / f"{package}.copyright")
    return {
        "package": package,
        "version": version_of(deb),
        "images": len(kept),
        "licenses": licence_lines(copyright_file),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("runs/wallpapers"))
    parser.add_argument("--packages", nargs="*", default=list(PACKAGES))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        manifest = [prepare(p, args.out, Path(tmp)) for p in args.packages]
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    for entry in manifest:
        print(
            f"{entry['package']} {entry['version']}: {entry['images']} images, {', '.join(entry['licenses'])}"
        )


if __name__ == "__main__":
    main()
