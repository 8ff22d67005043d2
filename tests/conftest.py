"""Pytest fixtures: the shared real data and the sample clip, skipped where absent. Plain helpers
that tests import live in helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import SAMPLE_CLIP, SHARED_DATA


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture
def sample_clip() -> Path:
    """The small real clip shipped in the repo (cut from a shared clip, see examples/README.md)."""
    if not SAMPLE_CLIP.exists():
        pytest.skip("examples/ sample clip missing")
    return SAMPLE_CLIP
