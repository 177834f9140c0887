"""Where transferlab keeps its caches, and how to override it."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "TRANSFERLAB_CACHE"


def cache_dir(override: str | Path | None = None) -> Path:
    """The cache directory: the override, else $TRANSFERLAB_CACHE, else ~/.cache/transferlab."""
    if override:
        return Path(override).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path("~/.cache/transferlab").expanduser()
