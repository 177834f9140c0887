"""Swap PEFT adapters in and out of one base model held in memory.

The base weights are loaded once; an adapter is injected for the time it is used and
then unloaded, which restores the original modules. Adapters stay plain PEFT
directories (adapter_config.json + adapter_model.safetensors).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
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


BASE = "__base__"  # PEFT's name for "no adapter" in a mixed-adapter batch


@contextmanager
def applied_together(base: Any, adapters: Sequence[Path | None]) -> Iterator[tuple[Any, list[str]]]:
    """The base model with every adapter loaded at once, each under its own name, and those names
    (`BASE` for None), in order: a PEFT model whose rows can each go through a different adapter
    (`adapter_names=` on forward and generate). Every adapter is removed again on exit, also when
    one fails to load; an adapter that does not fit the base model is an error naming it.
    """
    names = [BASE if a is None else f"tl{i:03d}" for i, a in enumerate(adapters)]  # no name prefixes another
    given = [(name, Path(a)) for name, a in zip(names, adapters) if a is not None]
    if not given:
        yield base, names
        return
    trainable = {n: p.requires_grad for n, p in base.named_parameters()}  # PEFT freezes the base weights
    model = None
    try:
        model = _load_all(base, given)  # removes what it loaded if one adapter fails
        yield model, names
    finally:
        if model is not None:
            model.unload()
        for n, p in base.named_parameters():
            p.requires_grad_(trainable[n])
        base.eval()


def _load_all(base: Any, given: list[tuple[str, Path]]) -> Any:
    from peft import PeftConfig, PeftModelForCausalLM

    configs = []
    for _, path in given:
        check_adapter_dir(path)
        config = PeftConfig.from_pretrained(str(path))
        dora = getattr(config, "use_dora", False)
        if config.peft_type != "LORA" or dora:
            raise TransferlabError(f"adapter {path} ({config.peft_type}{', DoRA' if dora else ''}) "
                                   "cannot share a batch with other adapters: only plain LoRA can; "
                                   "evaluate it on its own")
        config.inference_mode = True
        configs.append(config)
    model = None
    with warnings.catch_warnings():  # PEFT asks transformers a deprecated question; nothing to act on
        warnings.simplefilter("ignore", FutureWarning)
        try:
            for (name, path), config in zip(given, configs):
                try:
                    if model is None:
                        model = PeftModelForCausalLM(base, config, adapter_name=name)
                    else:
                        model.add_adapter(name, config)
                    model.load_adapter(str(path), adapter_name=name)
                except (RuntimeError, ValueError, KeyError) as err:
                    raise TransferlabError(f"adapter {path} does not fit the base model: {_first_line(err)}") from None
        except BaseException:
            if model is not None:
                model.unload()
            base.eval()
            raise
    return model.eval()


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    detail = next((line for line in lines if "size mismatch" in line), lines[0] if lines else type(err).__name__)
    return detail[:300]


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
