"""The committed held-out set (benchmarks/heldout): only licence-clear sequences, each one the file
its manifest pins, none of them from the training data."""

import hashlib

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from vsrup.evaluate import HELD_OUT, held_out_sources
from vsrup.train.data import HELD_OUT as TRAINING_REFUSES


def manifest() -> dict:
    return tomllib.loads((HELD_OUT / "manifest.toml").read_text())["sequences"]


def test_every_committed_sequence_has_a_stated_licence():
    entries = manifest()
    assert entries, "the held-out manifest lists no sequence"
    unclear = [name for name, entry in entries.items() if entry["license_clear"] is not True]
    assert unclear == [], f"sequences without a stated licence: {unclear}"


def test_the_folder_holds_exactly_the_manifest_files_and_their_pinned_bytes():
    entries = manifest()
    assert sorted(p.name for p in HELD_OUT.glob("*.mkv")) == sorted(e["file"] for e in entries.values())
    for name, entry in entries.items():
        data = (HELD_OUT / entry["file"]).read_bytes()
        assert len(data) == entry["bytes"], name
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], name
    assert held_out_sources() == [HELD_OUT / e["file"] for e in entries.values()]


def test_no_sequence_comes_from_a_training_source():
    """A SAM 2 cut must come from a clip the training refuses (`train.data.HELD_OUT`); the clips it
    trains on (01–04) must never be cut for the benchmark."""
    for name, entry in manifest().items():
        origin = entry["origin"]
        if "facebookresearch/sam2" in origin:
            assert origin.rsplit("/", 1)[-1] in TRAINING_REFUSES, name
        assert not any(clip in origin for clip in ("01_dog", "02_cups", "03_blocks", "04_coffee")), name
