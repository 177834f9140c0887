"""Rollouts for GRPO: sampled completions of the current policy, rewarded by the task's own scorer.

`prompt_schedule` picks each step's prompts. For each prompt, `sample_groups` draws a group
of `group_size` completions (batched, with a KV cache, seeded temperature / top-p sampling,
stopped at end-of-turn or a stop sequence), or `sample_choice_groups` draws them from the
example's answer choices; `score_groups` sets each completion's reward from `task.score` (or
`task.score_many`); `set_advantages` makes the rewards group-relative; `merge_duplicates`
folds identical rollouts for the update. Kept apart from
the loss and update loop in `learn/grpo.py`, which consumes these `Rollout`s, and shared
with the Tinker backend (`learn/tinker.py`), which samples on the service but scores and
centres its groups here. Imports nothing from `grpo`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from transferlab.evaluate import _left_padded, cut_at_stop
from transferlab.tasks.base import Example, Task
from transferlab.learn.sft import DivergedError


@dataclass
class Rollout:
    """One sampled completion: its tokens (through the stopping token), its text and reward."""

    prompt_ids: list[int]
    completion_ids: list[int]
    text: str  # decoded and cut at the first stop sequence: what the scorer sees
    reward: float = 0.0
    advantage: float = 0.0


# --- which prompts ----------------------------------------------------------------------

def prompt_schedule(n: int, steps: int, per_step: int, seed: int,
                    answers: Sequence[str] | None = None) -> list[list[int]]:
    """`steps` lists of `per_step` example indices: seeded shuffles, cycling over epochs.

    With `answers` (each example's reference answer), the answers take turns, so every step
    holds them in equal shares (exactly, when `per_step` is a multiple of their number); each
    answer's examples go in their own seeded order, cycling when used up.
    """
    generator = torch.Generator().manual_seed(seed)
    order: list[int] = []
    if answers is None:
        while len(order) < steps * per_step:
            order += torch.randperm(n, generator=generator).tolist()
    else:
        groups = [[i for i in range(n) if answers[i] == a] for a in sorted(set(answers))]
        queues: list[list[int]] = [[] for _ in groups]
        while len(order) < steps * per_step:
            g = len(order) % len(groups)
            if not queues[g]:
                queues[g] = [groups[g][j] for j in torch.randperm(len(groups[g]), generator=generator).tolist()]
            order.append(queues[g].pop(0))
    return [order[s * per_step : (s + 1) * per_step] for s in range(steps)]


# --- sampling ---------------------------------------------------------------------------

def _stop_token_ids(model: Any, tokenizer: Any) -> set[int]:
    """End-of-turn ids: the tokenizer's eos and any the model's generation config adds."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    extra = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if extra is not None:
        ids |= set(extra) if isinstance(extra, (list, tuple)) else {extra}
    return ids


def _next_tokens(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator) -> torch.Tensor:
    """Draw one token per row from softmax(logits / temperature), restricted to the top-p nucleus."""
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        outside = sorted_probs.cumsum(-1) - sorted_probs > top_p  # keeps at least the most likely token
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs.masked_fill(outside, 0.0))
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


@torch.no_grad()
def sample_groups(model: Any, tokenizer: Any, prompts: Sequence[list[int]], group_size: int, max_new_tokens: int,
                  temperature: float, top_p: float, stop: Sequence[str], generator: torch.Generator,
                  task_name: str = "") -> list[list[Rollout]]:
    """`group_size` sampled completions for each prompt, one batch, with a KV cache.

    Each prompt is encoded once; its keys and values are then repeated for the group.
    A row stops at an end-of-turn token or when its text contains a stop sequence (the
    stopping token is kept: the policy learns to stop there).
    """
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id
    ids, mask, positions = _left_padded(list(prompts), pad)
    out = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                use_cache=True, logits_to_keep=1)
    cache = out.past_key_values
    cache.batch_repeat_interleave(group_size)
    logits = out.logits[:, -1].repeat_interleave(group_size, dim=0)
    mask = mask.to(device).repeat_interleave(group_size, dim=0)
    next_position = positions[:, -1:].to(device).repeat_interleave(group_size, dim=0) + 1
    rows = logits.shape[0]
    tokens = torch.full((rows, max_new_tokens), pad, dtype=torch.long)
    lengths = [0] * rows
    done = [False] * rows
    eos = _stop_token_ids(model, tokenizer)
    window = max((len(s) for s in stop), default=0) + 2  # tokens enough to hold a stop sequence that just ended
    for t in range(max_new_tokens):
        if not torch.isfinite(logits).all():
            raise DivergedError(f"task {task_name!r}: the policy's logits became NaN/inf while sampling: "
                                "lower the learning rate")
        chosen = _next_tokens(logits, temperature, top_p, generator).cpu()
        for r in range(rows):
            if done[r]:
                continue
            tokens[r, t] = chosen[r]
            lengths[r] = t + 1
            if int(chosen[r]) in eos:
                done[r] = True
            elif stop:
                tail = tokenizer.decode(tokens[r, max(0, t + 1 - window) : t + 1], skip_special_tokens=True)
                done[r] = any(s in tail for s in stop)
        if all(done) or t + 1 == max_new_tokens:
            break
        feed = torch.where(torch.tensor(done), torch.tensor(pad), tokens[:, t]).to(device)
        mask = torch.cat([mask, torch.ones((rows, 1), dtype=mask.dtype, device=device)], dim=1)
        out = model(input_ids=feed[:, None], attention_mask=mask, position_ids=next_position,
                    past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        next_position = next_position + 1
        logits = out.logits[:, -1]
    groups: list[list[Rollout]] = []
    for p, prompt in enumerate(prompts):
        group = []
        for r in range(p * group_size, (p + 1) * group_size):
            completion = tokens[r, : lengths[r]].tolist()
            text = cut_at_stop(tokenizer.decode(completion, skip_special_tokens=True), stop)
            group.append(Rollout(list(prompt), completion, text))
        groups.append(group)
    return groups


@torch.no_grad()
def sample_choice_groups(model: Any, tokenizer: Any, prompts: Sequence[list[int]],
                         choices: Sequence[Sequence[tuple[str, list[int]]]], group_size: int, temperature: float,
                         generator: torch.Generator) -> list[list[Rollout]]:
    """`group_size` completions per prompt, each one of that prompt's answer choices, drawn with
    probability proportional to pi(choice | prompt) ** (1 / temperature).

    `choices[p]` holds (text, token ids) of prompt p's choices, each scored whole (its ids end with
    the end-of-turn marker SFT trains on). Why: a small model may almost never write a rewarded
    answer freely (SmolLM2-135M starts its reply with "True" 6 % of the time, on every true/false
    statement alike), so a true statement's group rarely holds a reward to learn from and GRPO
    collapses to the answer the model favours. Drawn from the choices, a group holds both answers
    far more often. The update is still the choice-restricted policy's: a group's advantages sum
    to zero, so log pi(choice) and log pi(choice) - log sum(pi(choices)) have the same gradient.
    """
    device = next(model.parameters()).device
    rows = [list(prompt) + ids for prompt, options in zip(prompts, choices) for _, ids in options]
    lengths = [len(ids) for options in choices for _, ids in options]
    keep = max(lengths) + 1  # every row ends at the last column: its choice is in the last `keep` logits
    ids, mask, positions = _left_padded(rows, tokenizer.pad_token_id)
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                   logits_to_keep=keep).logits[:, :-1].float()
    next_ids = ids[:, -(keep - 1):].to(device)
    token_logprobs = torch.log_softmax(logits, dim=-1).gather(-1, next_ids[..., None]).squeeze(-1)
    totals = torch.stack([token_logprobs[r, -n:].sum() for r, n in enumerate(lengths)])
    groups: list[list[Rollout]] = []
    start = 0
    for prompt, options in zip(prompts, choices):
        scores = totals[start : start + len(options)] / temperature
        start += len(options)
        probs = torch.softmax(scores, dim=0).to(generator.device)
        drawn = torch.multinomial(probs, group_size, replacement=True, generator=generator).tolist()
        groups.append([Rollout(list(prompt), list(options[k][1]), options[k][0]) for k in drawn])
    return groups


# --- rewards and advantages -------------------------------------------------------------

def score_groups(task: Task, examples: Sequence[Example], groups: list[list[Rollout]], metric: str) -> None:
    """Set each rollout's reward from the task's scorer (batched when the task can batch)."""
    flat = [(e, r) for e, group in zip(examples, groups) for r in group]
    many = getattr(task, "score_many", None)
    rows = (many([e for e, _ in flat], [r.text for _, r in flat]) if many
            else [task.score(e, r.text) for e, r in flat])
    for (_, rollout), row in zip(flat, rows):
        rollout.reward = float(row[metric])


def merge_duplicates(rollouts: Sequence[Rollout]) -> list[tuple[Rollout, int]]:
    """Each distinct rollout (prompt, completion and advantage) once, with how many times it occurs.

    Why: a group drawn from two answer choices, or of short free answers, repeats one completion
    many times, and each copy has the same log-probabilities, ratio and advantage: one forward
    pass weighted by the count gives the same loss and gradient at a fraction of the cost.
    """
    merged: dict[tuple, list] = {}
    for r in rollouts:
        key = (tuple(r.prompt_ids), tuple(r.completion_ids), r.advantage)
        merged.setdefault(key, [r, 0])[1] += 1
    return [(r, n) for r, n in merged.values()]


def set_advantages(groups: list[list[Rollout]], normalize: bool, eps: float = 1e-6) -> int:
    """Advantage = reward - group mean (/ group std); returns how many groups had all-equal rewards."""
    flat = 0
    for group in groups:
        rewards = torch.tensor([r.reward for r in group], dtype=torch.float64)
        centred = rewards - rewards.mean()
        if bool((rewards == rewards[0]).all()):
            flat += 1
            centred = torch.zeros_like(rewards)
        elif normalize:
            centred = centred / (rewards.std(unbiased=False) + eps)
        for rollout, a in zip(group, centred.tolist()):
            rollout.advantage = a
    return flat
