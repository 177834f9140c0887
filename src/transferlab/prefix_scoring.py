"""Log-likelihoods of requests whose contexts begin alike: the shared beginning runs once.

The contexts of one task often start with the same tokens: a task description ("The
following are multiple choice questions (with answers) about anatomy."), a system prompt,
few-shot examples. Scored one by one, every context runs them again. Here the longest
token prefix all contexts share runs once per adapter, and every row continues from its
keys and values: each row computes only what follows the prefix. The scores equal
`evaluate.loglikelihood`'s up to float rounding; a prefix shorter than `MIN_PREFIX` tokens
is not worth the bookkeeping, and the requests go to `evaluate.loglikelihood` unchanged.

    scores = loglikelihood_after_prefix(peft_model, tokenizer, pairs, routes, batch_size=32)
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch

from transferlab.evaluate import Progress, encode, loglikelihood, routed, score_continuations

MIN_PREFIX = 8  # tokens


def common_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    """How many leading tokens every sequence shares."""
    first, n = sequences[0], min(len(s) for s in sequences)
    for i in range(n):
        if any(s[i] != first[i] for s in sequences):
            return i
    return n


@torch.inference_mode()
def loglikelihood_after_prefix(model: Any, tokenizer: Any, pairs: Sequence[tuple[str, str]],
                               adapters: Sequence[str] | None = None, *, batch_size: int = 32,
                               progress: Progress | None = None) -> list[float]:
    """Sum of log-probabilities of each continuation given its context, as `evaluate.loglikelihood`
    computes it (`adapters`: one PEFT adapter name per pair, for mixed-adapter batches), with
    the contexts' shared token prefix run once per adapter."""
    context_ids = {c: encode(tokenizer, c) for c in dict.fromkeys(c for c, _ in pairs)}
    if not context_ids:
        return []
    # at least one token of every context after the prefix: its last position predicts the answer
    p = min(common_prefix_length(list(context_ids.values())), min(len(v) for v in context_ids.values()) - 1)
    if p < MIN_PREFIX:
        return loglikelihood(model, tokenizer, pairs, batch_size=batch_size, progress=progress, adapters=adapters)
    names = list(dict.fromkeys(adapters)) if adapters else [None]
    device = next(model.parameters()).device
    prefix = torch.tensor([context_ids[pairs[0][0]][:p]] * len(names), device=device)
    cache = model(input_ids=prefix, use_cache=True, logits_to_keep=1, **routed(names)).past_key_values
    groups: dict[tuple[str | None, str], list[tuple[int, list[int]]]] = {}
    for i, (context, continuation) in enumerate(pairs):
        cont = encode(tokenizer, continuation)
        if not cont:
            raise ValueError(f"empty continuation for context ending {context[-40:]!r}")
        groups.setdefault((adapters[i] if adapters else None, context), []).append((i, cont))
    rows = [(context_ids[context][p:], requests, adapter) for (adapter, context), requests in groups.items()]
    order = sorted(range(len(rows)), key=lambda r: -len(rows[r][0]))
    results = [0.0] * len(pairs)
    step = max(1, batch_size // 4)  # as evaluate's shared-context path: a row's choices widen its batch
    for start in range(0, len(order), step):
        batch = [rows[r] for r in order[start : start + step]]
        _score_batch(model, tokenizer, batch, cache, names, p, device, results)
        if progress:
            progress(sum(len(requests) for _, requests, _ in batch))
    return results


def _score_batch(model: Any, tokenizer: Any, batch: list, prefix_cache: Any, names: list, p: int, device: Any,
                 results: list[float]) -> None:
    """One batch of contexts (their tokens after the prefix) and every request on each of them."""
    pad = tokenizer.pad_token_id
    width = max(len(suffix) for suffix, _, _ in batch)
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for b, (suffix, _, _) in enumerate(batch):
        ids[b, width - len(suffix):] = torch.tensor(suffix)
        mask[b, width - len(suffix):] = 1
    positions = p + (mask.cumsum(-1) - 1).clamp(min=0)
    full_mask = torch.cat([torch.ones((len(batch), p), dtype=torch.long), mask], dim=1)  # padding sits after the prefix
    cache = copy.deepcopy(prefix_cache)
    cache.batch_select_indices(torch.tensor([names.index(adapter) for _, _, adapter in batch], device=device))
    routes = [adapter for _, _, adapter in batch]
    out = model(input_ids=ids.to(device), attention_mask=full_mask.to(device), position_ids=positions.to(device),
                past_key_values=cache, use_cache=True, logits_to_keep=1, **routed(routes))
    score_continuations(model, out, full_mask, positions, routes, [requests for _, requests, _ in batch], pad, results)
