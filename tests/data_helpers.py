"""Shared helpers for the data tests (kept out of conftest.py on purpose)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: The real data: $STPATCH_DATA_DIR, else ../shared/data beside the project.
DATA_DIR = Path(
    os.environ.get("STPATCH_DATA_DIR") or Path(__file__).resolve().parents[1].parent / "shared" / "data"
)


def require(*rel: str) -> Path:
    """Skip the calling test with a clear reason unless every ``rel`` exists under DATA_DIR."""
    for r in rel:
        if not (DATA_DIR / r).exists():
            pytest.skip(f"real data not available: {DATA_DIR / r} is missing (set STPATCH_DATA_DIR)")
    return DATA_DIR
