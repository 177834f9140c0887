"""The evaluation engine: batched log-likelihood and batched greedy generation.

Both sort requests by length so a batch pads little, and log-likelihood computes
vocabulary logits only at the positions of the scored continuation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from transferlab.tasks.base import Example, Task, score_choices
from transferlab.tasks.prompts import render_context

Progress = Callable[[int], None]


def _batches(order: Sequence[int], size: int) -> list[list[int]]:
    return [list(order[i : i + size]) for i in range(0, len(order), size)]


def _encode(tokenizer: Any, text: str) -> list[int]:
    # The chat template already contains the special tokens the model expects.
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@torch.inference_mode()
def loglikelihood(model: Any, tokenizer: Any, pairs: Sequence[tuple[str, str]], batch_size: int = 32,
                  progress: Progress | None = None) -> list[float]:
    """Sum of log-probabilities of each continuation given its context.

    Continuations of one token that share a context (True/False, A/B/C/D) are read off a
    single forward pass of the context. Rows are left-padded so every sequence ends at
    the last position; only the last `longest continuation + 1` positions get vocabulary logits.
    """
    device = next(model.parameters()).device
    rows: list[list[int]] = []  # token ids of each forward row
    scored: list[list[tuple[int, list[int]]]] = []  # per row: (request index, continuation ids)
    shared: dict[str, int] = {}  # context -> row that scores its one-token continuations
    for i, (context, continuation) in enumerate(pairs):
        ctx, cont = _encode(tokenizer, context), _encode(tokenizer, continuation)
        if not cont:
            raise ValueError(f"empty continuation for context ending {context[-40:]!r}")
        if len(cont) == 1:
            if context not in shared:
                shared[context] = len(rows)
                rows.append(ctx)
                scored.append([])
            scored[shared[context]].append((i, cont))
        else:
            rows.append(ctx + cont)
            scored.append([(i, cont)])
    shared_rows = set(shared.values())
    order = sorted(range(len(rows)), key=lambda r: -len(rows[r]))
    results = [0.0] * len(pairs)
    pad = tokenizer.pad_token_id
    for batch in _batches(order, batch_size):
        width = max(len(rows[r]) for r in batch)
        keep = max(len(cont) for r in batch for _, cont in scored[r]) + 1
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for b, r in enumerate(batch):
            ids[b, width - len(rows[r]):] = torch.tensor(rows[r])
            mask[b, width - len(rows[r]):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                    logits_to_keep=keep)
        logprobs = torch.log_softmax(out.logits.float(), dim=-1).cpu()
        for b, r in enumerate(batch):
            for i, cont in scored[r]:
                n = len(cont)
                # Kept index j predicts the token after it. A row that contains its continuation
                # reads it from the n positions before the last; a shared row's one-token
                # continuations are predicted by its last position.
                end = keep if r in shared_rows else keep - 1
                picked = logprobs[b, end - n : end].gather(-1, torch.tensor(cont)[:, None])
                results[i] = float(picked.sum())
        if progress:
            progress(sum(len(scored[r]) for r in batch))
    return results


@torch.inference_mode()
def generate(model: Any, tokenizer: Any, contexts: Sequence[str], max_new_tokens: int = 256,
             stop: Sequence[str] = (), batch_size: int = 16, progress: Progress | None = None) -> list[str]:
    """Greedy completions, cut at the first stop sequence (the end-of-turn token always stops)."""
    device = next(model.parameters()).device
    encoded = [_encode(tokenizer, c) for c in contexts]
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    outputs = [""] * len(encoded)
    pad = tokenizer.pad_token_id
    for batch in _batches(order, batch_size):
        width = max(len(encoded[i]) for i in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            ids[row, width - len(encoded[i]):] = torch.tensor(encoded[i])
            mask[row, width - len(encoded[i]):] = 1
        kwargs: dict[str, Any] = {}
        if stop:
            kwargs.update(stop_strings=list(stop), tokenizer=tokenizer)
        generated = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), do_sample=False,
                                   max_new_tokens=max_new_tokens, pad_token_id=pad,
                                   eos_token_id=tokenizer.eos_token_id, temperature=None, top_p=None, top_k=None,
                                   **kwargs)
        for row, i in enumerate(batch):
            text = tokenizer.decode(generated[row, width:], skip_special_tokens=True)
            outputs[i] = cut_at_stop(text, stop)
        if progress:
            progress(len(batch))
    return outputs


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """The text before the earliest stop sequence."""
    cut = len(text)
    for s in stop:
        at = text.find(s)
        if at != -1:
            cut = min(cut, at)
    return text[:cut]


@dataclass
class TaskEvaluation:
    """Per-example scores of one model (and adapter) on one task split."""

    task: str
    split: str
    uids: list[str]
    scores: dict[str, list[float]]
    outputs: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.uids)

    def mean(self, metric: str) -> float:
        values = self.scores[metric]
        return sum(values) / len(values) if values else float("nan")

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "split": self.split, "uids": self.uids, "scores": self.scores,
                "outputs": self.outputs}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskEvaluation:
        return cls(data["task"], data["split"], data["uids"], data["scores"], data.get("outputs", []))


def request_count(task: Task, examples: Sequence[Example]) -> int:
    """How many model requests `evaluate_task` makes: the unit of its progress callback."""
    if task.output_type == "multiple_choice":
        return sum(len(e.choices) for e in examples)
    return len(examples)


def evaluate_task(model: Any, tokenizer: Any, task: Task, examples: Sequence[Example], *, split: str = "test",
                  batch_size: int = 16, max_new_tokens: int | None = None,
                  progress: Progress | None = None) -> TaskEvaluation:
    """Score a model on examples of a task: log-likelihood of choices, or generate and score."""
    contexts = [render_context(task, e, tokenizer) for e in examples]
    scores: dict[str, list[float]] = {m: [] for m in task.metrics}
    outputs: list[str] = []
    if task.output_type == "multiple_choice":
        pairs = [(c, choice) for c, e in zip(contexts, examples) for choice in e.choices]
        per_choice = loglikelihood(model, tokenizer, pairs, batch_size=batch_size * 2, progress=progress)
        at = 0
        for e in examples:
            row = score_choices(e, per_choice[at : at + len(e.choices)])
            at += len(e.choices)
            for m in task.metrics:
                scores[m].append(row[m])
    else:
        outputs = generate(model, tokenizer, contexts, max_new_tokens=max_new_tokens or task.max_new_tokens,
                           stop=task.stop, batch_size=batch_size, progress=progress)
        many = getattr(task, "score_many", None)
        rows = many(list(examples), outputs) if many else [task.score(e, o) for e, o in zip(examples, outputs)]
        for row in rows:
            for m in task.metrics:
                scores[m].append(float(row[m]))
    return TaskEvaluation(task.name, split, [e.uid for e in examples], scores, outputs)
