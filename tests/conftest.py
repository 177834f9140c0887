"""Shared fixtures: a tiny random Llama with a real (character-level) tokenizer and chat template.

Unit tests use these so they run in seconds without the bundled model; integration tests
(marked `integration`) use the real SmolLM2-135M.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_models import CHAT_TEMPLATE, TinyLoaded, make_tokenizer  # noqa: F401  (re-exported for tests)


@pytest.fixture
def tiny():
    return TinyLoaded()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def one_thread():
    """A 64-wide model runs far faster on one thread than on contended cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
