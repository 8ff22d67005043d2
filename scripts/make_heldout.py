"""Cut the held-out super-resolution benchmark (benchmarks/heldout/) from extracted originals.

    python scripts/make_heldout.py SRC [--out benchmarks/heldout] [--check]

SRC holds the original media at their repository paths, one folder per repository (see
benchmarks/heldout/SOURCES.md for the commits and the `git show` lines that extract them):

    SRC/sam2/demo/data/gallery/05_default_juggle.mp4                    facebookresearch/sam2
    SRC/sam2/notebooks/videos/bedroom.mp4                               facebookresearch/sam2
    SRC/RAFT/demo-frames/frame_00NN.png                                 princeton-vl/RAFT
    SRC/VideoFlow/demo_input_images/frame_00NN.png                      XiaoyuShi97/VideoFlow

Each sequence is a run of consecutive frames cropped to a box whose sides are multiples of 4 (so ÷2
and ÷4 are exact), never resized. Videos are decoded to RGB the way `vsrup.train.data.read_frames`
does it, so the stored frames are exactly what the evaluation would have read from the source.
The crop is written losslessly as FFV1 (8-bit RGB as bgr0, intra only, slice CRCs) in Matroska, decoded
again and compared with the crop bit for bit; `frames_sha256` in the manifest hashes the decoded
RGB bytes, which stays stable even if another FFmpeg build writes a different file.
`--check` cuts into a temporary folder and compares those hashes with the committed manifest.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

OUT = Path(__file__).resolve().parents[1] / "benchmarks" / "heldout"


@dataclass(frozen=True)
class Sequence:
    name: str
    category: str
    source: str  # path under SRC: a frame folder or a video file
    first: int  # index of the first frame kept (0-based, in sorted/decoding order)
    count: int
    box: tuple[int, int, int, int]  # x, y, width, height in source pixels
    fps: Fraction
    license: str
    license_clear: bool
    origin: str  # repository@commit:path


SAM2 = "facebookresearch/sam2@2b90b9f5ceec907a1c18123530e92e794ad901a4"
RAFT = "princeton-vl/RAFT@2888e15a51fa41140771d3f498ed8023cff098d1"
VIDEOFLOW = "XiaoyuShi97/VideoFlow@51489304db6e75fbdd9ff64d4656c1d120b5a673"
SINTEL_LICENSE = "CC-BY-3.0 (Sintel, Blender Foundation)"

# One row per sequence reads better than one argument per line.
# fmt: off
SEQUENCES = [
    Sequence("sam2_juggle", "fast-motion", "sam2/demo/data/gallery/05_default_juggle.mp4", 200, 16,
             (576, 64, 448, 576), Fraction(24), "Apache-2.0 (sam2 LICENSE)", True,
             f"{SAM2}:demo/data/gallery/05_default_juggle.mp4"),
    Sequence("sam2_bedroom", "people", "sam2/notebooks/videos/bedroom.mp4", 140, 16, (0, 0, 640, 540),
             Fraction(30), "Apache-2.0 (sam2 LICENSE)", True, f"{SAM2}:notebooks/videos/bedroom.mp4"),
    # Second cuts of the same two held-out clips: other frames, other content (a static-camera
    # facade behind branches; a pan over striped wallpaper, a mirror and a dresser).
    Sequence("sam2_juggle_facade", "buildings", "sam2/demo/data/gallery/05_default_juggle.mp4", 0, 16,
             (0, 0, 576, 352), Fraction(24), "Apache-2.0 (sam2 LICENSE)", True,
             f"{SAM2}:demo/data/gallery/05_default_juggle.mp4"),
    Sequence("sam2_bedroom_wall", "indoor-pan", "sam2/notebooks/videos/bedroom.mp4", 0, 16,
             (576, 0, 384, 540), Fraction(30), "Apache-2.0 (sam2 LICENSE)", True,
             f"{SAM2}:notebooks/videos/bedroom.mp4"),
    Sequence("sintel_market", "varied-cg", "RAFT/demo-frames", 0, 10, (296, 0, 640, 436), Fraction(24),
             f"{SINTEL_LICENSE} in a BSD-3-Clause repo", True, f"{RAFT}:demo-frames"),
    Sequence("sintel_bamboo", "foliage", "VideoFlow/demo_input_images", 0, 10, (128, 0, 640, 436),
             Fraction(24), f"{SINTEL_LICENSE}; repo has no license file", True,
             f"{VIDEOFLOW}:demo_input_images"),
]
# fmt: on
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}


def read_source(path: Path, first: int, count: int) -> list[np.ndarray]:
    """Frames first..first+count-1 of a frame folder or a video, as HWC uint8 RGB."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        return [np.asarray(Image.open(p).convert("RGB")) for p in files[first : first + count]]
    frames = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= first:
                frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                break
    return frames


def cut(seq: Sequence, src: Path) -> list[np.ndarray]:
    frames = read_source(src / seq.source, seq.first, seq.count)
    if len(frames) != seq.count:
        sys.exit(f"{seq.name}: {src / seq.source} has only {len(frames)} frames from {seq.first}")
    x, y, w, h = seq.box
    height, width = frames[0].shape[:2]
    if w % 4 or h % 4 or x + w > width or y + h > height:
        sys.exit(f"{seq.name}: box {seq.box} is not a multiple of 4 inside {width}x{height}")
    return [np.ascontiguousarray(f[y : y + h, x : x + w]) for f in frames]


def write_ffv1(path: Path, frames: list[np.ndarray], fps: Fraction) -> None:
    h, w = frames[0].shape[:2]
    # bitexact: no random UIDs or version strings, so the same FFmpeg build writes the same bytes.
    with av.open(str(path), "w", format="matroska", options={"fflags": "+bitexact"}) as out:
        stream = out.add_stream("ffv1", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "bgr0"
        stream.options = {"level": "3", "g": "1", "slicecrc": "1", "context": "1"}
        stream.codec_context.flags |= av.codec.context.Flags.bitexact
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="bgr0")
            frame.pts, frame.time_base = i, 1 / fps
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


def decoded_hash(path: Path) -> tuple[list[np.ndarray], str]:
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    digest = hashlib.sha256()
    for f in frames:
        digest.update(f.tobytes())
    return frames, digest.hexdigest()


def make(src: Path, out: Path) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for seq in SEQUENCES:
        crop = cut(seq, src)
        target = out / f"{seq.name}.mkv"
        write_ffv1(target, crop, seq.fps)
        back, frames_sha = decoded_hash(target)
        if len(back) != len(crop) or any(not np.array_equal(a, b) for a, b in zip(back, crop, strict=True)):
            sys.exit(f"{seq.name}: the FFV1 file does not decode to the cropped frames")
        data = target.read_bytes()
        rows.append(
            {
                "seq": seq,
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "frames_sha256": frames_sha,
                "width": seq.box[2],
                "height": seq.box[3],
            }
        )
        print(f"{seq.name:15s} {seq.box[2]}x{seq.box[3]} x{seq.count}  {len(data):9d} bytes", flush=True)
    return rows


def manifest_text(rows: list[dict]) -> str:
    lines = [
        "# Held-out SR benchmark, written by scripts/make_heldout.py; sources and caveats: SOURCES.md.",
        "# Each file is lossless FFV1 (RGB) in Matroska: the HR ground truth. The eval makes the LR.",
        "# frames_sha256 = sha256 of the decoded rgb24 frames, concatenated in order.",
        "version = 1",
        "",
    ]
    for r in rows:
        s: Sequence = r["seq"]
        fps = str(s.fps.numerator) if s.fps.denominator == 1 else f"{float(s.fps):.6f}"
        lines += [
            f"[sequences.{s.name}]",
            f'file = "{s.name}.mkv"',
            f'category = "{s.category}"',
            f"fps = {fps}",
            f"frames = {s.count}",
            f"width = {r['width']}",
            f"height = {r['height']}",
            f'license = "{s.license}"',
            f"license_clear = {'true' if s.license_clear else 'false'}",
            f'origin = "{s.origin}"',
            f"first_frame = {s.first}",
            f"crop = [{', '.join(str(v) for v in s.box)}]  # x, y, width, height in the source",
            f"bytes = {r['bytes']}",
            f'sha256 = "{r["sha256"]}"',
            f'frames_sha256 = "{r["frames_sha256"]}"',
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("src", type=Path, help="folder with the extracted originals (see above)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    parser.add_argument("--check", action="store_true", help="re-cut into a temp folder and compare")
    args = parser.parse_args()
    if not args.check:
        rows = make(args.src, args.out)
        (args.out / "manifest.toml").write_text(manifest_text(rows))
        print(f"total {sum(r['bytes'] for r in rows)} bytes in {len(rows)} files")
        return
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    expected = tomllib.loads((args.out / "manifest.toml").read_text())["sequences"]
    with tempfile.TemporaryDirectory() as tmp:
        rows = make(args.src, Path(tmp))
    bad = [r["seq"].name for r in rows if expected[r["seq"].name]["frames_sha256"] != r["frames_sha256"]]
    if bad:
        sys.exit(f"decoded frames differ from the manifest: {', '.join(bad)}")
    print("all sequences match the manifest")


if __name__ == "__main__":
    main()
