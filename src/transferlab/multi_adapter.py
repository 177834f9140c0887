"""Many adapters in one pass: the base model and N LoRA adapters scored on one task together.

Every adapter is loaded onto the base model once, under its own name, and every request row
is repeated once per adapter, each copy routed through its adapter (PEFT's mixed-adapter
batches, `adapter_names=[...]` per row; `"__base__"` is the base model). One pass over the
task's data then scores all of them: prompts are rendered and tokenised once, each batch
holds the same examples for every adapter, and the token prefix every context shares (a
task description, a system prompt) runs once per adapter (`prefix_scoring`). The results
equal one adapter at a time (`evaluate.evaluate_task` under `adapters.applied`) up to float
rounding.

    from transferlab.multi_adapter import evaluate_many
    base, a, b = evaluate_many(model, tokenizer, task, examples, [None, dir_a, dir_b])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transferlab.adapters import applied_together
from transferlab.evaluate import Progress, TaskEvaluation, generate, request_count, scored
from transferlab.prefix_scoring import loglikelihood_after_prefix
from transferlab.tasks.base import Example, Task
from transferlab.tasks.prompts import PromptOptions, effective_options, render


def many_request_count(task: Task, examples: Sequence[Example], adapters: Sequence[Path | None]) -> int:
    """How many model requests `evaluate_many` makes: the unit of its progress callback."""
    return request_count(task, examples) * len(adapters)


def evaluate_many(model: Any, tokenizer: Any, task: Task, examples: Sequence[Example],
                  adapters: Sequence[Path | None], *, split: str = "test", batch_size: int = 16,
                  max_new_tokens: int | None = None, progress: Progress | None = None,
                  template: str = "default", prompt: PromptOptions | None = None,
                  batch_tokens: int | None = None) -> list[TaskEvaluation]:
    """Score the base model (None) and every adapter directory on examples of a task, in one pass.

    Parameters
    ----------
    model, tokenizer : the base model (left as it was on return) and its tokenizer.
    task, examples : what to score, as for `evaluate.evaluate_task`.
    adapters : sequence of Path or None
        PEFT LoRA adapter directories for this base model; None stands for the base model.
    batch_size : int, default=16
        Examples per batch, as in `evaluate_task`; a batch holds each of them once per adapter,
        so a forward pass sees up to `batch_size * len(adapters)` rows.
    max_new_tokens, progress, template, prompt, batch_tokens : as for `evaluate_task` (progress
        counts every adapter's requests: `many_request_count`).

    Returns
    -------
    list of TaskEvaluation, one per entry of `adapters`, in order: each the record `evaluate_task`
    makes for that adapter alone (scores, answers, the exact contexts and continuations).

    Raises
    ------
    TransferlabError
        When an adapter does not fit the base model (named in the message), or is not plain LoRA.
    """
    if not adapters:
        return []
    rendered = [render(task, e, tokenizer, template, prompt) for e in examples]  # once, for every adapter
    with applied_together(model, adapters) as (peft_model, names):
        k = len(names)
        routed = any(a is not None for a in adapters)  # the bare base model takes no adapter names
        if task.output_type == "multiple_choice":
            continuations = [r.continuations(e.choices) for r, e in zip(rendered, examples)]
            pairs = [(r.context, c) for r, conts in zip(rendered, continuations) for _ in names for c in conts]
            routes = [name for conts in continuations for name in names for _ in conts]
            flat = loglikelihood_after_prefix(peft_model, tokenizer, pairs, routes if routed else None,
                                              batch_size=batch_size * 2 * k, progress=progress)
            per_adapter: list[list[float]] = [[] for _ in names]
            at = 0
            for conts in continuations:
                for a in range(k):
                    per_adapter[a].extend(flat[at : at + len(conts)])
                    at += len(conts)
            results = [scored(task, examples, split, per_choice=values) for values in per_adapter]
            for result in results:
                result.contexts, result.continuations = [r.context for r in rendered], continuations
        else:
            contexts = [r.generation_context for r in rendered]
            outputs = generate(peft_model, tokenizer, [c for c in contexts for _ in names],
                               max_new_tokens=task.generation_length(max_new_tokens), stop=task.stop,
                               batch_size=batch_size * k, progress=progress, batch_tokens=batch_tokens,
                               adapters=names * len(contexts) if routed else None)
            results = [scored(task, examples, split, outputs=outputs[a::k]) for a in range(k)]
            for result in results:
                result.contexts = contexts
    options = effective_options(task, prompt).to_json()
    for result in results:
        result.prompt = dict(options)
    return results
