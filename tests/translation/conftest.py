"""Fixtures for translation tests (helpers live in translation_helpers.py)."""

from __future__ import annotations

import pytest
from translation_helpers import (  # pytest puts this folder on sys.path
    paired_adapters,
    save_tiny_model,
)


@pytest.fixture(scope="session")
def pairs():
    return paired_adapters()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_models")
    return (str(save_tiny_model(root / "tiny-x", 64, 3, 0)), str(save_tiny_model(root / "tiny-y", 96, 2, 1)))
