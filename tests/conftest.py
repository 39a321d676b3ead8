from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared() -> Path:
    """The project's shared folder (SPEC.md, recorded traffic), beside the checkout."""
    assert (SHARED / "recorded").is_dir(), f"../shared/recorded is missing (looked in {SHARED})"
    return SHARED
