"""Shared fixtures: the corpus location (tests that need it skip when it is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"


def corpus_dir(name: str) -> Path:
    """../shared/corpus/<name>, or skip the test with a reason."""
    path = CORPUS / name
    if not path.is_dir():
        pytest.skip(f"test corpus {path} is absent")
    return path


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory) -> None:
    """rd's PSNR cache (and any other XDG cache) in a folder of the test session, not the user's."""
    import os

    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))


@pytest.fixture
def kodak() -> Path:
    return corpus_dir("kodak")


@pytest.fixture
def graphics() -> Path:
    return corpus_dir("graphics")
