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
from transferlab.tasks.prompts import PromptOptions, effective_options, render

Progress = Callable[[int], None]


def _batches(order: Sequence[int], size: int) -> list[list[int]]:
    return [list(order[i : i + size]) for i in range(0, len(order), size)]


def encode(tokenizer: Any, text: str) -> list[int]:
    """The token ids the model sees for `text` (`tasks preview` shows them): no special tokens
    are added, as the rendered text already holds the ones the prompt options asked for."""
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _left_padded(seqs: Sequence[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ids, attention mask and position ids for left-padded rows (every row ends at the last column)."""
    width = max(len(q) for q in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for b, q in enumerate(seqs):
        ids[b, width - len(q):] = torch.tensor(q)
        mask[b, width - len(q):] = 1
    return ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)


def routed(names: Sequence[str | None]) -> dict[str, Any]:
    """PEFT's mixed-batch argument for rows routed to named adapters; nothing when rows are not routed."""
    return {} if not names or names[0] is None else {"adapter_names": list(names)}


@torch.inference_mode()
def loglikelihood(model: Any, tokenizer: Any, pairs: Sequence[tuple[str, str]], batch_size: int = 32,
                  progress: Progress | None = None, adapters: Sequence[str] | None = None) -> list[float]:
    """Sum of log-probabilities of each continuation given its context.

    Requests are grouped by context so a context is run once: one-token continuations
    (True/False, A/B/C/D) are read off the context's last position; longer ones
    (multiple-choice option texts) continue from the context's cached keys and values.
    A context with a single long continuation is one left-padded row, of which only the
    last `continuation + 1` positions get vocabulary logits.

    `adapters` (one PEFT adapter name per pair, `"__base__"` for none) routes each request
    through its own adapter of a PEFT model holding several (mixed-adapter batches); a context
    is then shared only by requests for the same adapter.
    """
    by_context: dict[tuple[str | None, str], list[tuple[int, list[int]]]] = {}
    context_ids: dict[str, list[int]] = {}
    for i, (context, continuation) in enumerate(pairs):
        cont = encode(tokenizer, continuation)
        if not cont:
            raise ValueError(f"empty continuation for context ending {context[-40:]!r}")
        if context not in context_ids:
            context_ids[context] = encode(tokenizer, context)
        by_context.setdefault((adapters[i] if adapters else None, context), []).append((i, cont))
    results = [0.0] * len(pairs)
    single, shared = [], []
    for (adapter, context), requests in by_context.items():
        (single if len(requests) == 1 and len(requests[0][1]) > 1 else shared).append(
            (context_ids[context], requests, adapter))
    _score_full_rows(model, tokenizer, single, batch_size, results, progress)
    _score_from_shared_context(model, tokenizer, shared, max(1, batch_size // 4), results, progress)
    return results


def _score_full_rows(model: Any, tokenizer: Any, groups: list, batch_size: int, results: list[float],
                     progress: Progress | None) -> None:
    device = next(model.parameters()).device
    rows = [ctx + requests[0][1] for ctx, requests, _ in groups]
    order = sorted(range(len(rows)), key=lambda r: -len(rows[r]))
    for batch in _batches(order, batch_size):
        ids, mask, positions = _left_padded([rows[r] for r in batch], tokenizer.pad_token_id)
        keep = max(len(groups[r][1][0][1]) for r in batch) + 1
        out = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                    logits_to_keep=keep, **routed([groups[r][2] for r in batch]))
        logprobs = torch.log_softmax(out.logits.float(), dim=-1).cpu()
        for b, r in enumerate(batch):
            i, cont = groups[r][1][0]
            n = len(cont)  # kept index j predicts the token after it: the continuation sits before the last
            picked = logprobs[b, keep - n - 1 : keep - 1].gather(-1, torch.tensor(cont)[:, None])
            results[i] = float(picked.sum())
        if progress:
            progress(len(batch))


def _score_from_shared_context(model: Any, tokenizer: Any, groups: list, batch_size: int, results: list[float],
                               progress: Progress | None) -> None:
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id
    order = sorted(range(len(groups)), key=lambda g: -len(groups[g][0]))
    for batch in _batches(order, batch_size):
        ids, mask, positions = _left_padded([groups[g][0] for g in batch], pad)
        out = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                    use_cache=True, logits_to_keep=1, **routed([groups[g][2] for g in batch]))
        scored = score_continuations(model, out, mask, positions, [groups[g][2] for g in batch],
                                     [groups[g][1] for g in batch], pad, results)
        if progress:
            progress(scored)


def score_continuations(model: Any, out: Any, mask: torch.Tensor, positions: torch.Tensor, routes: list,
                        row_requests: list[list[tuple[int, list[int]]]], pad: int, results: list[float]) -> int:
    """Score every request of each row of a batch of contexts, given `out`, the forward over those
    contexts (with its cache and last-position logits): a continuation's first token is read off
    those logits, its other tokens by feeding them after the cached context. Writes
    `results[i]` per request `(i, tokens)`; returns how many requests it scored."""
    device = next(model.parameters()).device
    first = torch.log_softmax(out.logits[:, -1].float(), dim=-1).cpu()  # predicts every first token
    owner = [b for b, requests in enumerate(row_requests) for _ in requests]
    requests = [req for row in row_requests for req in row]
    longest = max(len(cont) for _, cont in requests)
    rest = torch.zeros((len(requests), 0, 1))
    if longest > 1:  # feed tokens 0..n-2 of each continuation to predict tokens 1..n-1
        cache = out.past_key_values
        cache.batch_select_indices(torch.tensor(owner, device=device))
        feed = torch.full((len(requests), longest - 1), pad, dtype=torch.long)
        feed_mask = torch.zeros_like(feed)
        for r, (_, cont) in enumerate(requests):
            feed[r, : len(cont) - 1] = torch.tensor(cont[:-1])
            feed_mask[r, : len(cont) - 1] = 1
        feed_positions = positions[owner, -1:] + 1 + torch.arange(longest - 1)
        out = model(input_ids=feed.to(device), attention_mask=torch.cat([mask[owner], feed_mask], dim=1).to(device),
                    position_ids=feed_positions.to(device), past_key_values=cache, use_cache=True,
                    **routed([routes[b] for b in owner]))
        rest = torch.log_softmax(out.logits.float(), dim=-1).cpu()
    for r, (i, cont) in enumerate(requests):
        total = first[owner[r], cont[0]]
        if len(cont) > 1:
            total = total + rest[r, : len(cont) - 1].gather(-1, torch.tensor(cont[1:])[:, None]).sum()
        results[i] = float(total)
    return len(requests)


def _budgeted_batches(order: Sequence[int], lengths: Sequence[int], size: int, extra: int,
                      budget: int | None) -> list[list[int]]:
    """Consecutive rows of `order` (longest first), at most `size` a batch and, with a `budget`, only
    as many as fit rows x (the batch's widest row + `extra`) <= budget: one row at least. A KV cache
    holds every row at that width, so the budget bounds its memory however long the prompts are."""
    if budget is None:
        return _batches(order, size)
    out: list[list[int]] = []
    for i in order:
        if out and len(out[-1]) < size and (len(out[-1]) + 1) * (lengths[out[-1][0]] + extra) <= budget:
            out[-1].append(i)
        else:
            out.append([i])
    return out


def _cache_options(model: Any, device: torch.device) -> dict[str, Any]:
    """A static KV cache on CUDA, the dynamic one elsewhere.

    A static cache is allocated once at its full length and has fixed shapes, so Hugging Face
    `generate` compiles the decoding step (torch.compile, CUDA graphs) on CUDA; on the CPU it
    compiles nothing and preallocation buys nothing, so the CPU keeps the dynamic cache and its
    outputs stay what they were. Checked with PEFT mixed-adapter batches and stop strings: a
    static cache gives the same tokens as the dynamic one (fp32, tests/test_gpu_engine.py). The
    compiled step guards on the routing list PEFT hands each LoRA layer (`adapter_names`), so
    every distinct routing of a batch compiles once (batches of the same rows and routing reuse
    it); past torch._dynamo's recompile limit a new routing runs eagerly, as without the cache.
    A model class that declares no static-cache support (`_can_compile_fullgraph`, earlier
    `_supports_static_cache`) keeps the dynamic cache: its `generate` would refuse a static one.
    """
    if device.type != "cuda":
        return {}
    backbone = model.get_base_model() if hasattr(model, "get_base_model") else model
    if getattr(backbone, "_can_compile_fullgraph", False) or getattr(backbone, "_supports_static_cache", False):
        return {"cache_implementation": "static"}
    return {}


@torch.inference_mode()
def generate(model: Any, tokenizer: Any, contexts: Sequence[str], max_new_tokens: int = 256,
             stop: Sequence[str] = (), batch_size: int = 16, progress: Progress | None = None,
             adapters: Sequence[str] | None = None, batch_tokens: int | None = None) -> list[str]:
    """Greedy completions, cut at the first stop sequence (the end-of-turn token always stops).

    `adapters` (one PEFT adapter name per context) routes each row through its own adapter.
    `batch_tokens` caps a batch at rows x (prompt width + max_new_tokens) tokens, its KV cache's
    size (`batch_size` still caps the rows); None batches by `batch_size` alone.
    """
    device = next(model.parameters()).device
    encoded = [encode(tokenizer, c) for c in contexts]
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    outputs = [""] * len(encoded)
    pad = tokenizer.pad_token_id
    cache = _cache_options(model, device)
    for batch in _budgeted_batches(order, [len(e) for e in encoded], batch_size, max_new_tokens, batch_tokens):
        width = max(len(encoded[i]) for i in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            ids[row, width - len(encoded[i]):] = torch.tensor(encoded[i])
            mask[row, width - len(encoded[i]):] = 1
        kwargs: dict[str, Any] = routed([adapters[i] for i in batch] if adapters else [])
        if stop:
            kwargs.update(stop_strings=list(stop), tokenizer=tokenizer)
        generated = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), do_sample=False,
                                   max_new_tokens=max_new_tokens, pad_token_id=pad,
                                   eos_token_id=tokenizer.eos_token_id, temperature=None, top_p=None, top_k=None,
                                   **cache, **kwargs)
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
    """Per-example records of one model (and adapter) on one task split: what it was asked,
    what it answered, the reference and the scores, so two runs can be compared prediction
    by prediction (`transferlab results samples` exports them)."""

    task: str
    split: str
    uids: list[str]
    scores: dict[str, list[float]]
    outputs: list[str] = field(default_factory=list)  # generation: the generated text
    weights: dict[str, list[float]] = field(default_factory=dict)  # only metrics whose examples weigh unequally
    # Multiple choice only: the log-likelihood of every choice and the index of the one chosen
    # (the most likely).
    choice_logprobs: list[list[float]] = field(default_factory=list)
    predictions: list[int] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)  # each example's reference completion
    answers: list[int] = field(default_factory=list)  # multiple choice: the index of the correct choice
    # The exact text the model saw: each context and, for multiple choice, each scored continuation
    # (the separator, then the choice); and the prompt options that were not auto.
    contexts: list[str] = field(default_factory=list)
    continuations: list[list[str]] = field(default_factory=list)
    prompt: dict[str, str] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.uids)

    def weights_of(self, metric: str) -> list[float] | None:
        return self.weights.get(metric)

    def mean(self, metric: str) -> float:
        values = self.scores[metric]
        weights = self.weights.get(metric) or [1.0] * len(values)
        return sum(v * w for v, w in zip(values, weights)) / sum(weights) if values else float("nan")

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {"task": self.task, "split": self.split, "uids": self.uids, "scores": self.scores,
                                  "outputs": self.outputs, "weights": self.weights}
        if self.predictions:
            record.update(predictions=self.predictions, choice_logprobs=self.choice_logprobs)
        for name in ("targets", "answers", "contexts", "continuations", "prompt"):  # left out when empty
            if getattr(self, name):
                record[name] = getattr(self, name)
        return record


def request_count(task: Task, examples: Sequence[Example]) -> int:
    """How many model requests `evaluate_task` makes: the unit of its progress callback."""
    if task.output_type == "multiple_choice":
        return sum(len(e.choices) for e in examples)
    return len(examples)


def evaluate_task(model: Any, tokenizer: Any, task: Task, examples: Sequence[Example], *, split: str = "test",
                  batch_size: int = 16, max_new_tokens: int | None = None,
                  progress: Progress | None = None, template: str = "default",
                  prompt: PromptOptions | None = None, batch_tokens: int | None = None) -> TaskEvaluation:
    """Score a model on examples of a task: log-likelihood of choices, or generate and score.

    `template` names the prompt template that frames each question (`tasks.prompts.TEMPLATES`);
    `prompt` holds the run's prompt options (chat template, start token, separator), which win
    over the task's own. `batch_tokens` caps a generation batch's KV cache (`generate`). The
    record keeps the exact contexts and continuations.
    """
    rendered = [render(task, e, tokenizer, template, prompt) for e in examples]
    if task.output_type == "multiple_choice":
        continuations = [r.continuations(e.choices) for r, e in zip(rendered, examples)]
        pairs = [(r.context, c) for r, conts in zip(rendered, continuations) for c in conts]
        per_choice = loglikelihood(model, tokenizer, pairs, batch_size=batch_size * 2, progress=progress)
        result = scored(task, examples, split, per_choice=per_choice)
        result.contexts, result.continuations = [r.context for r in rendered], continuations
    else:
        contexts = [r.generation_context for r in rendered]
        outputs = generate(model, tokenizer, contexts, max_new_tokens=task.generation_length(max_new_tokens),
                           stop=task.stop, batch_size=batch_size, progress=progress, batch_tokens=batch_tokens)
        result = scored(task, examples, split, outputs=outputs)
        result.contexts = contexts
    result.prompt = effective_options(task, prompt).to_json()
    return result


def scored(task: Task, examples: Sequence[Example], split: str, *, per_choice: Sequence[float] = (),
           outputs: Sequence[str] = ()) -> TaskEvaluation:
    """The evaluation of a task from the model's raw answers: every choice's log-likelihood, flat
    in example order (multiple choice), or one completion per example (generation)."""
    scores: dict[str, list[float]] = {m: [] for m in task.metrics}
    choice_logprobs: list[list[float]] = []
    if task.output_type == "multiple_choice":
        at = 0
        for e in examples:
            choice_logprobs.append(list(per_choice[at : at + len(e.choices)]))
            at += len(e.choices)
            row = score_choices(e, choice_logprobs[-1])
            for m in task.metrics:
                scores[m].append(row[m])
    else:
        outputs = list(outputs)
        many = getattr(task, "score_many", None)
        rows = many(list(examples), outputs) if many else [task.score(e, o) for e, o in zip(examples, outputs)]
        for row in rows:
            for m in task.metrics:
                scores[m].append(float(row[m]))
    weights = {m: [task.example_weight(e, m) for e in examples] for m in task.metrics}
    weights = {m: w for m, w in weights.items() if any(x != 1.0 for x in w)}
    predictions = [max(range(len(lps)), key=lps.__getitem__) for lps in choice_logprobs]
    answers = [e.answer for e in examples] if task.output_type == "multiple_choice" else []
    return TaskEvaluation(task.name, split, [e.uid for e in examples], scores, list(outputs), weights,
                          choice_logprobs, predictions, [e.target for e in examples], answers)  # type: ignore[arg-type]
