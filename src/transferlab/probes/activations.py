"""Residual-stream activations: one batched, padded forward pass per (model, dataset).

Hooks on the decoder blocks keep, for every requested layer, only the hidden state at the
chosen position (the last real token, or the mean over real tokens), so memory stays at
rows x layers x width. The pass runs through the base model (no LM head: no vocabulary
logits are ever computed) and stops right after the deepest requested layer.

Layer numbering: 0 is the input of the first block (the embeddings as the blocks see
them), L is the output of block L. Activations are stored in the run's store as a
float32 .npy of shape (layers, rows, width), read back memory-mapped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from transferlab.errors import TransferlabError

VERSION = 1  # bump when extraction changes what is stored: part of the cache key
POSITIONS = ("last", "mean")


class _Done(Exception):
    """Raised by the deepest hook so the remaining blocks never run."""


def decoder_layers(model: Any) -> tuple[Any, Any]:
    """(base model, its list of decoder blocks) for a causal LM or a base model."""
    for base in (getattr(model, "model", None), model):
        if base is not None and hasattr(base, "layers"):
            return base, base.layers
        inner = getattr(base, "language_model", None) if base is not None else None
        if inner is not None and hasattr(inner, "layers"):
            return inner, inner.layers
    raise TransferlabError(f"cannot find the decoder blocks of {type(model).__name__}: "
                           "activation extraction supports decoder-only transformers")


def num_layers(model: Any) -> int:
    return len(decoder_layers(model)[1])


def resolve_layers(requested: Sequence[int] | str | None, total: int, model_name: str = "the model") -> list[int]:
    """Layer indices in 0..total; None or 'all' = 1..total; negative counts from the end; 'every:k' = a stride."""
    if requested is None or requested == "all":
        return list(range(1, total + 1))
    if isinstance(requested, str):
        if requested.startswith("every:"):
            step = int(requested.split(":", 1)[1])
            if step < 1:
                raise TransferlabError(f"layer stride must be >= 1, got {step}")
            return list(range(step, total + 1, step))
        requested = [int(x) for x in requested.replace(" ", "").split(",") if x]
    out = []
    for layer in requested:
        index = total + 1 + layer if layer < 0 else layer
        if not 0 <= index <= total:
            raise TransferlabError(f"layer {layer} is out of range: {model_name} has layers 0-{total} "
                                   f"(0 = embeddings, {total} = last block)")
        out.append(index)
    if not out:
        raise TransferlabError("no layers requested")
    return sorted(set(out))


def tokenize(tokenizer: Any, texts: Sequence[str], max_length: int | None = None) -> list[list[int]]:
    """Token ids of each text, with the tokenizer's own special tokens (Gemma's <bos>)."""
    encoded = tokenizer(list(texts), add_special_tokens=True, truncation=max_length is not None,
                        max_length=max_length)
    return [list(ids) for ids in encoded["input_ids"]]


def batches_by_length(lengths: Sequence[int], batch_size: int, max_tokens: int | None = None) -> list[list[int]]:
    """Row indices grouped into batches of similar length (longest first), so padding is small."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    out: list[list[int]] = []
    for i in order:
        if out and len(out[-1]) < batch_size and (
                max_tokens is None or (len(out[-1]) + 1) * lengths[out[-1][0]] <= max_tokens):
            out[-1].append(i)
        else:
            out.append([i])
    return out


def pad_batch(token_lists: Sequence[Sequence[int]], pad_id: int) -> tuple[Any, Any]:
    """Right-padded (ids, attention mask) tensors: the last real token sits at mask.sum() - 1."""
    import torch

    width = max(len(t) for t in token_lists)
    ids = torch.full((len(token_lists), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(token_lists), width), dtype=torch.long)
    for row, tokens in enumerate(token_lists):
        ids[row, : len(tokens)] = torch.as_tensor(tokens)
        mask[row, : len(tokens)] = 1
    return ids, mask


@dataclass
class Extraction:
    activations: np.ndarray  # (layers, rows, width) float32
    layers: list[int]
    tokens: int
    seconds: float


def extract(model: Any, tokenizer: Any, texts: Sequence[str], layers: Sequence[int] | str | None = None,
            position: str = "last", batch_size: int = 16, max_tokens: int | None = 8192, device: str | None = None,
            progress: Callable[[int], None] | None = None) -> Extraction:
    """Residual stream at `position` for every text and requested layer, in one pass per batch."""
    import time

    import torch

    if position not in POSITIONS:
        raise TransferlabError(f"position must be one of {', '.join(POSITIONS)}, got {position!r}")
    if not texts:
        raise TransferlabError("no texts to extract activations for")
    base, blocks = decoder_layers(model)
    chosen = resolve_layers(layers, len(blocks), getattr(getattr(model, "config", None), "name_or_path", "the model"))
    device = device or str(next(model.parameters()).device)
    token_lists = tokenize(tokenizer, texts)
    if any(len(t) == 0 for t in token_lists):
        raise TransferlabError("a text tokenised to nothing: remove empty statements from the dataset")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    width = int(model.config.hidden_size if hasattr(model, "config") else blocks[0].hidden_size)
    out = np.empty((len(chosen), len(texts), width), dtype=np.float32)
    slot = {layer: k for k, layer in enumerate(chosen)}
    deepest = max(chosen)
    state: dict[str, Any] = {}

    def keep(layer: int, hidden: Any) -> None:
        hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        if position == "last":
            picked = hidden[state["rows"], state["last"]]
        else:
            weights = state["weights"]
            picked = (hidden * weights[:, :, None]).sum(dim=1) / weights.sum(dim=1, keepdim=True)
        out[slot[layer], state["index"]] = picked.float().cpu().numpy()

    def pre_hook(_module: Any, args: tuple, kwargs: dict) -> None:
        keep(0, args[0] if args else kwargs["hidden_states"])
        if deepest == 0:
            raise _Done

    def make_hook(layer: int) -> Callable[..., None]:
        def hook(_module: Any, _args: Any, output: Any) -> None:
            if layer in slot:
                keep(layer, output)
            if layer == deepest:
                raise _Done
        return hook

    handles = [blocks[i - 1].register_forward_hook(make_hook(i)) for i in range(1, deepest + 1)]
    if 0 in slot:
        handles.append(blocks[0].register_forward_pre_hook(pre_hook, with_kwargs=True))
    start = time.perf_counter()
    try:
        with torch.inference_mode():
            for batch in batches_by_length([len(t) for t in token_lists], batch_size, max_tokens):
                ids, mask = pad_batch([token_lists[i] for i in batch], pad_id)
                ids, mask = ids.to(device), mask.to(device)
                state["index"] = np.asarray(batch)
                state["rows"] = torch.arange(len(batch), device=device)
                state["last"] = mask.sum(dim=1) - 1
                if position == "mean":
                    real = mask.clone()
                    if special:
                        real &= ~torch.isin(ids, torch.as_tensor(sorted(special), device=device))
                    state["weights"] = torch.where(real.sum(dim=1, keepdim=True) > 0, real, mask).to(
                        next(model.parameters()).dtype)
                try:
                    base(input_ids=ids, attention_mask=mask, use_cache=False)
                except _Done:
                    pass
                if progress:
                    progress(len(batch))
    finally:
        for h in handles:
            h.remove()
    return Extraction(out, chosen, sum(len(t) for t in token_lists), time.perf_counter() - start)


def activation_key(model_identity: str, dataset_fingerprint: str, layers: Sequence[int], position: str) -> str:
    from transferlab.tasks.base import stable_hash

    return stable_hash("activations", VERSION, model_identity, dataset_fingerprint, list(layers), position)


def cached_activations(store: Any, loaded: Any, dataset: Any, layers: Sequence[int] | str | None,
                       position: str = "last", batch_size: int = 16,
                       progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, list[int], bool]:
    """Activations of a dataset from the store, extracted (and stored atomically) when missing.

    Returns (memory-mapped array (layers, rows, width), layer indices, whether it was cached).
    """
    chosen = resolve_layers(layers, num_layers(loaded.model), loaded.name)
    key = activation_key(loaded.identity, dataset.fingerprint(), chosen, position)
    if store.has("activations", key):
        return np.load(store.path("activations", key) / "activations.npy", mmap_mode="r"), chosen, True
    result = extract(loaded.model, loaded.tokenizer, dataset.texts, chosen, position, batch_size,
                     device=loaded.device, progress=progress)
    meta = {"model": loaded.identity, "dataset": dataset.name, "fingerprint": dataset.fingerprint(),
            "layers": chosen, "position": position, "rows": len(dataset.rows), "tokens": result.tokens,
            "seconds": round(result.seconds, 3)}
    with store.writing("activations", key, meta) as tmp:
        np.save(tmp / "activations.npy", result.activations)
    return np.load(store.path("activations", key) / "activations.npy", mmap_mode="r"), chosen, False
