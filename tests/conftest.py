"""Pytest fixtures: the shared real data and the sample clip, skipped where absent. Plain helpers
that tests import live in helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import REPO, SAMPLE_CLIP, SHARED_DATA


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture
def sample_clip() -> Path:
    """The small real clip shipped in the repo (cut from a shared clip, see examples/README.md). It is
    committed: missing, it is a failure of every test that uses it, not a skip."""
    if not SAMPLE_CLIP.is_file():
        pytest.fail(f"the committed sample clip {SAMPLE_CLIP.relative_to(REPO)} is missing")
    return SAMPLE_CLIP


@pytest.fixture(autouse=True)
def _catalogue_as_shipped():
    """Whatever a test registers in the model catalogue (a test model, bench's `@random` models
    measured in this process) is gone after it, so a later `vsrup models` lists only real ones."""
    from vsrup.models import catalogue

    before = dict(catalogue.ENTRIES)
    yield
    catalogue.ENTRIES.clear()
    catalogue.ENTRIES.update(before)
