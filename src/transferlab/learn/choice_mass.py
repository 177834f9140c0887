"""The choice-mass term of GRPO with `sample_choices`: keep the policy's answers among the choices.

A group drawn from the example's answer choices trains the choice-restricted policy
pi(a) / sum_c pi(c): its advantages sum to zero, so the update moves probability between the
choices and says nothing about how much the choices hold together, which drifts freely. On
larger_than-answer, SmolLM2-135M trained that way came to rank "True" over "False" on 94 % of
its training statements, yet wrote "Ninety-five" rather than "True" when it generated freely
(`experiments/pilots/grpo_choices.yaml`). This term, -mean over prompts of
log sum_c pi(c | prompt), raises the choices' mass as a set. It reads no label: which choice is
right is still learned from the reward alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from transferlab.learn.sft import collate, completion_logits


def choice_mass_loss(model: Any, prompts: Sequence[list[int]], options: Sequence[Sequence[tuple[str, list[int]]]],
                     pad: int, device: str) -> torch.Tensor:
    """-mean over prompts of log sum_c pi(c | prompt), each choice c scored whole (its token ids)."""
    rows = [(list(prompt) + ids, len(prompt)) for prompt, choices in zip(prompts, options) for _, ids in choices]
    ids, mask, labels = collate(rows, pad)  # labels on each choice's tokens
    logits, targets = completion_logits(model, ids.to(device), mask.to(device), labels.to(device))
    logprobs = torch.log_softmax(logits.float(), dim=-1).gather(-1, targets[:, None]).squeeze(-1)
    lengths = [len(seq) - n_prompt for seq, n_prompt in rows]
    per_choice = torch.stack([part.sum() for part in torch.split(logprobs, lengths)])
    per_prompt = torch.split(per_choice, [len(choices) for choices in options])
    return -torch.stack([torch.logsumexp(scores, dim=0) for scores in per_prompt]).mean()
