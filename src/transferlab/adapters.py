"""Swap PEFT adapters in and out of one base model held in memory.

The base weights are loaded once; an adapter is injected for the time it is used and
then unloaded, which restores the original modules. Adapters stay plain PEFT
directories (adapter_config.json + adapter_model.safetensors).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from transferlab.errors import TransferlabError


def check_adapter_dir(path: Path) -> None:
    """A clear error when a directory is not a PEFT adapter."""
    if not (path / "adapter_config.json").exists():
        raise TransferlabError(f"{path} is not a PEFT adapter directory (no adapter_config.json)")


@contextmanager
def applied(base: Any, adapter: Path | None, trainable: bool = False) -> Iterator[Any]:
    """The base model with `adapter` applied (or the base itself for None), restored on exit."""
    if adapter is None:
        yield base
        return
    from peft import PeftModel

    check_adapter_dir(adapter)
    with warnings.catch_warnings():  # PEFT asks transformers a deprecated question; nothing to act on
        warnings.simplefilter("ignore", FutureWarning)
        peft_model = PeftModel.from_pretrained(base, str(adapter), is_trainable=trainable)
    try:
        yield peft_model
    finally:
        peft_model.unload()
        base.eval()


@contextmanager
def fresh(base: Any, lora_config: Any) -> Iterator[Any]:
    """A new, trainable LoRA adapter on the base model, removed again on exit."""
    from peft import get_peft_model

    with warnings.catch_warnings():  # PEFT asks transformers a deprecated question; nothing to act on
        warnings.simplefilter("ignore", FutureWarning)
        peft_model = get_peft_model(base, lora_config)
    try:
        yield peft_model
    finally:
        peft_model.unload()
        base.eval()


def save(peft_model: Any, directory: Path, base_name: str) -> None:
    """Save in PEFT's own format, recording which base model the adapter belongs to."""
    for config in peft_model.peft_config.values():
        config.base_model_name_or_path = base_name
    # No embedding layers are trained, and "auto" would ask the hub about the base model.
    peft_model.save_pretrained(str(directory), safe_serialization=True, save_embedding_layers=False)
