"""Reinforcement learning on verifiable rewards (GRPO-style) for LoRA adapters.

The task's own scorer is the reward: GSM8K's answer check, IFEval's instruction checkers,
HumanEval's unit tests (in the sandbox). Each step, written out top to bottom:

1. take `prompts_per_step` training prompts (a seeded order, cycling over the data; with
   `balance_answers`, each reference answer in equal shares);
2. sample `group_size` completions per prompt from the current policy (the adapter
   model), batched with a KV cache, temperature / top-p sampling from a seeded
   `torch.Generator`, stopped by end-of-turn or one of the task's stop sequences (with
   `sample_choices`, drawn instead from the example's answer choices, each weighted by
   the policy's likelihood of it);
3. reward = `task.score(example, completion)[reward_metric]`;
   advantage = reward - group mean (divided by the group's std when `normalize_advantages`);
   a group whose rewards are all equal has zero advantage and teaches nothing: it is
   counted, and the share of such groups is reported, because a run where most groups
   are flat (a task far too hard or too easy for the model) learns nothing;
4. loss = - token mean of min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A) over the
   completion tokens (PPO clip; ratio = pi / pi_old, 1 on the first inner step)
   + kl_coef * token mean of the k3 estimate of KL(pi || base), where base is the same
   model with the adapter disabled; identical rollouts (a group drawn from two answer
   choices repeats each) go through the model once, weighted by their count;
5. AdamW step with warm-up then cosine decay (the schedule of `learn/sft.py`).

Steps 2-3 (sampling, rewards, advantages) live in `learn/rollouts.py`; this module holds
the config, the loss and the loop. The adapter is saved as a PEFT directory only when
training ends without divergence.

    from transferlab import models
    from transferlab.learn import grpo
    from transferlab.tasks import get_task
    m = models.load("smollm2-135m")
    task = get_task("gsm8k_en")
    result = grpo.train_grpo(m, task, task.examples("train"), grpo.GRPOConfig(steps=20), "out/grpo")
    print(result.rewards, result.zero_variance_share)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from transferlab import adapters
from transferlab.constraints import Flag, Interval, Text, check_params
from transferlab.errors import TransferlabError
from transferlab.tasks.base import Example, Task
from transferlab.tasks.prompts import end_of_turn, render_context
from transferlab.learn.choice_mass import choice_mass_loss
from transferlab.learn.curve import LearningCurve, check_curve_settings
from transferlab.learn.resume import Checkpoints, result_records, resume_loop
from transferlab.learn.rollouts import (Rollout, merge_duplicates, prompt_schedule, sample_choice_groups, sample_groups,
                                        score_groups, set_advantages)
from transferlab.learn.sft import LORA_PARAMS, DivergedError, LoraAdapterSettings, TrainResult, completion_logits, get_lr


@dataclass(frozen=True)
class GRPOConfig(LoraAdapterSettings):
    """Hyper-parameters of one GRPO run; every field is part of the adapter's cache key
    (the curve fields only when `eval_every > 0`: they change the artifact, not the weights)."""

    learning_rate: float = 5e-5  # lower than SFT: see defaults.default_learning_rate(model_type, "grpo")
    steps: int = 50  # sampling + update rounds
    prompts_per_step: int = 8
    group_size: int = 8  # completions sampled per prompt
    max_new_tokens: int = 0  # 0 = the task's own max_new_tokens
    temperature: float = 1.0
    top_p: float = 1.0
    # sample each completion from the example's answer choices (weighted by the policy), not as free
    # text: for a task whose examples list choices, when the model rarely writes a rewarded answer
    sample_choices: bool = False
    # every step's prompts hold each reference answer in equal shares (True / False statements half
    # each): with no content signal yet, the batch's split of answers is what moves the answer bias
    balance_answers: bool = False
    choice_mass_coef: float = 0.0  # with sample_choices: weight of -log sum_c pi(c) (learn/choice_mass.py)
    kl_coef: float = 0.0  # 0 = no KL term; else weight of KL(policy || base model)
    clip_eps: float = 0.2  # PPO ratio clip; acts from the second inner step on
    inner_steps: int = 1  # optimizer updates per sampled batch (1 = on-policy, ratio == 1)
    normalize_advantages: bool = True  # divide by the group's reward std (GRPO); False = mean-centred only
    reward_metric: str = ""  # "" = the task's primary metric
    train_batch_size: int = 16  # completions per forward/backward (gradient accumulation beyond)
    warmup_ratio: float = 0.1  # share of steps with linear warm-up
    min_lr_ratio: float = 0.1  # cosine decay ends at this share of the peak rate
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # 0 = no clipping
    max_prompt_len: int = 512  # longer prompts are cut from the left
    seed: int = 0
    eval_every: int = 0  # learning curve: score the dev split every k steps (0 = no curve); see learn/curve.py
    eval_examples: int = 64  # dev examples scored (greedy, the task's primary metric) at each curve point

    PARAMS: ClassVar[dict[str, Any]] = {
        **LORA_PARAMS, "learning_rate": Interval(float, 0, None, closed="neither"), "steps": Interval(int, 1),
        "prompts_per_step": Interval(int, 1), "group_size": Interval(int, 2), "max_new_tokens": Interval(int, 0),
        "temperature": Interval(float, 0, None, closed="neither"), "top_p": Interval(float, 0, 1, closed="right"),
        "sample_choices": Flag(), "balance_answers": Flag(), "choice_mass_coef": Interval(float, 0),
        "kl_coef": Interval(float, 0), "clip_eps": Interval(float, 0, None, closed="neither"),
        "inner_steps": Interval(int, 1), "normalize_advantages": Flag(), "reward_metric": Text(),
        "train_batch_size": Interval(int, 1), "warmup_ratio": Interval(float, 0, 1, closed="left"),
        "min_lr_ratio": Interval(float, 0, 1), "weight_decay": Interval(float, 0), "grad_clip": Interval(float, 0),
        "max_prompt_len": Interval(int, 8), "seed": Interval(int, 0)}  # eval_every, eval_examples: check_curve_settings

    def __post_init__(self) -> None:
        check_params(self, self.PARAMS)  # group_size >= 2: advantages are relative to the group
        if self.choice_mass_coef and not self.sample_choices:
            raise TransferlabError("choice_mass_coef weighs the answer choices' mass: set sample_choices: true too")
        check_curve_settings(self.eval_every, self.eval_examples)

    def to_dict(self) -> dict[str, Any]:
        """The cache-key fields; `sample_choices`, `balance_answers` and `choice_mass_coef` only when
        on, so runs made before they existed keep their keys."""
        out = super().to_dict()
        for field_name in ("sample_choices", "balance_answers", "choice_mass_coef"):
            if not out.get(field_name):
                out.pop(field_name, None)
        return out


# --- the policy loss --------------------------------------------------------------------

def _collate(rows: Sequence[tuple[Rollout, int]], pad: int) -> tuple[torch.Tensor, ...]:
    """Right-padded prompt + completion rows, labels on the completion, per-token advantages and
    weights (how many identical rollouts each row stands for: `rollouts.merge_duplicates`)."""
    width = max(len(r.prompt_ids) + len(r.completion_ids) for r, _ in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    advantages, weights = [], []
    for row, (r, count) in enumerate(rows):
        seq = r.prompt_ids + r.completion_ids
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
        labels[row, len(r.prompt_ids) : len(seq)] = torch.tensor(r.completion_ids)
        advantages += [r.advantage] * len(r.completion_ids)
        weights += [float(count)] * len(r.completion_ids)
    return ids, mask, labels, torch.tensor(advantages, dtype=torch.float32), torch.tensor(weights)


def token_logprobs(model: Any, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor,
                   temperature: float) -> torch.Tensor:
    """log pi(token) of every completion token, under the sampling temperature, in row order."""
    logits, targets = completion_logits(model, ids, mask, labels)
    logprobs = torch.log_softmax(logits.float() / temperature, dim=-1)
    return logprobs.gather(-1, targets[:, None]).squeeze(-1)


def kl_k3(logprobs: torch.Tensor, base_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(pi || base) on tokens sampled from pi: exp(d) - d - 1, d = log base - log pi.

    Unbiased, never negative, and exactly zero where the two models agree (Schulman, 2020).
    """
    d = base_logprobs - logprobs
    return torch.exp(d) - d - 1


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, clip_eps: float,
                n_tokens: int, weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO-clipped policy-gradient loss summed over these tokens / n_tokens, and how many tokens were
    clipped; `weights` counts each token as that many identical ones (default 1)."""
    weights = torch.ones_like(advantages) if weights is None else weights
    ratio = torch.exp(logprobs - old_logprobs)
    clipped = ratio.clamp(1 - clip_eps, 1 + clip_eps)
    surrogate = torch.minimum(ratio * advantages, clipped * advantages)
    return -(surrogate * weights).sum() / n_tokens, ((ratio != clipped) * weights).sum()


# --- the loop ---------------------------------------------------------------------------

def reward_metric_of(task: Task, config: GRPOConfig, strict: bool = True) -> str:
    """The metric rewarded on a task: `reward_metric`, else the task's primary metric.

    With `strict=False` (the extra tasks of joint training) a `reward_metric` the task
    does not have falls back to its primary metric instead of failing.
    """
    if task.output_type != "generate":
        raise TransferlabError(f"task {task.name!r} is multiple-choice: GRPO needs a generation task with a "
                               "scorer (gsm8k, ifeval, humaneval, ...)")
    metric = config.reward_metric or task.primary_metric
    if metric not in task.metrics:
        if not strict:
            return task.primary_metric
        raise TransferlabError(f"reward_metric {metric!r} is not a metric of task {task.name!r}: "
                               f"use one of {', '.join(task.metrics)}")
    return metric


def answer_choices(pool: Sequence[tuple[Task, Example]], tokenizer: Any) -> list[list[tuple[str, list[int]]]]:
    """(text, token ids) of every example's choices, each followed by the end-of-turn marker, as
    SFT tokenises a target; for `sample_choices`, which needs two or more per example."""
    for t, e in pool:
        if len(e.choices) < 2:
            raise TransferlabError(f"task {t.name!r}: sample_choices needs examples that list their answer choices "
                                   "(e.g. larger_than-answer); set sample_choices: false for this task")
    eot = end_of_turn(tokenizer)
    return [[(c, tokenizer(c + eot, add_special_tokens=False)["input_ids"]) for c in e.choices] for _, e in pool]


def train_grpo(loaded: Any, task: Task, examples: Sequence[Example], config: GRPOConfig, out_dir: str | Path,
               init_adapter: Path | None = None, progress: Callable[[int, float], None] | None = None,
               also: Sequence[tuple[Task, Sequence[Example]]] = (), resume: Checkpoints | None = None) -> TrainResult:
    """Train a LoRA adapter with GRPO on the task's verifiable reward; save it as a PEFT directory.

    With `init_adapter`, training continues from that adapter (sequential training); the
    KL term always measures the distance to the base model without any adapter. `also`
    adds prompts of other tasks, each in its own prompt format, with its own scorer, stop
    sequences and length (joint training).
    `resume` saves checkpoints as it goes and starts from its last one (learn/resume.py).
    `progress(step, mean_reward)` is called after every step. The result's `rewards` holds
    the mean reward per step, `zero_variance_share` the share of groups that gave no
    signal, and `details` per-step logs (kl, clip_fraction, zero_variance_groups,
    completion_tokens, seconds).
    """
    if not examples:
        raise TransferlabError(f"task {task.name!r} has no training examples: check its train split")
    tokenizer = loaded.tokenizer
    metrics = {task.name: reward_metric_of(task, config)}
    pool: list[tuple[Task, Example]] = [(task, e) for e in examples]
    for other, other_examples in also:
        metrics[other.name] = reward_metric_of(other, config, strict=False)
        pool += [(other, e) for e in other_examples]
    prompts = [tokenizer(render_context(t, e, tokenizer), add_special_tokens=False)["input_ids"]
               [-config.max_prompt_len:] for t, e in pool]
    options = answer_choices(pool, tokenizer) if config.sample_choices else []
    schedule = prompt_schedule(len(pool), config.steps, config.prompts_per_step, config.seed,
                               [e.target for _, e in pool] if config.balance_answers else None)
    model, device = loaded.model, loaded.device
    sampler = torch.Generator(device=device).manual_seed(config.seed)

    torch.manual_seed(config.seed)  # LoRA's A matrices are initialised from the global generator
    context = (adapters.applied(model, init_adapter, trainable=True) if init_adapter
               else adapters.fresh(model, config.lora_config()))
    result = TrainResult(steps=config.steps, tokens=0, seconds=0.0)
    curve = LearningCurve.start(loaded, task, config, config.steps)  # None unless eval_every > 0
    logs: dict[str, list[float]] = {k: [] for k in ("clip_fraction", "zero_variance_groups", "completion_tokens",
                                                     "seconds")}
    if config.kl_coef > 0:
        logs["kl"] = []
    flat_groups = 0
    with context as peft_model:
        params = [p for p in peft_model.parameters() if p.requires_grad]
        result.count_parameters(peft_model, params)
        optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
        checkpoints, saved = resume_loop(resume, config.steps, peft_model, optimizer, [sampler], result, curve)
        start = time.perf_counter() - (saved["elapsed"] if saved else 0.0)
        if saved:
            logs, flat_groups = saved["logs"], saved["flat_groups"]
        elif curve:
            curve.step(peft_model, 0)  # the starting point, before any update
        for step, picked in enumerate(schedule):
            if step < checkpoints.resumed_at:
                continue  # done before the checkpoint
            step_start = time.perf_counter()
            for group in optimizer.param_groups:
                group["lr"] = get_lr(step, config.steps, config)
            # 1-3) per task among the picked prompts: sample a group per prompt from the
            # current policy, then reward it with the task's scorer
            peft_model.eval()
            groups: list[list[Rollout]] = []
            for t in dict.fromkeys(pool[i][0] for i in picked):
                mine = [i for i in picked if pool[i][0] is t]
                if options:
                    new = sample_choice_groups(peft_model, tokenizer, [prompts[i] for i in mine],
                                               [options[i] for i in mine], config.group_size, config.temperature,
                                               sampler)
                else:
                    new = sample_groups(peft_model, tokenizer, [prompts[i] for i in mine], config.group_size,
                                        config.max_new_tokens or t.max_new_tokens, config.temperature, config.top_p,
                                        t.stop, sampler, t.name)
                score_groups(t, [pool[i][1] for i in mine], new, metrics[t.name])
                groups += new
            flat = set_advantages(groups, config.normalize_advantages)  # group-relative advantages
            flat_groups += flat
            rollouts = [r for group in groups for r in group]
            n_tokens = sum(len(r.completion_ids) for r in rollouts)
            # 4-5) the update; rows with zero advantage add nothing to the policy term, so
            # without a KL term they are left out of the forward pass (the mean still counts them)
            active = rollouts if config.kl_coef > 0 else [r for r in rollouts if r.advantage != 0]
            # the cost: every inner step runs forward and backward over the active rows; sampling (and the
            # KL reference) run forward only
            sequence = sum(len(r.prompt_ids) + len(r.completion_ids) for r in active)
            result.processed_tokens += config.inner_steps * sequence
            result.forward_tokens += sum(len(r.prompt_ids) + len(r.completion_ids) for r in rollouts) + \
                (sequence if config.kl_coef > 0 else 0)
            mass = ([prompts[i] for i in picked], [options[i] for i in picked]) if config.choice_mass_coef else None
            loss_value, kl_value, clip_value = _update(peft_model, optimizer, params, active, n_tokens, config,
                                                       tokenizer.pad_token_id, device, task.name, step, mass)
            if config.kl_coef > 0:
                logs["kl"].append(kl_value)
            logs["clip_fraction"].append(clip_value)
            record_step(result, logs, rollouts, loss_value, flat, step_start)
            if curve:
                curve.step(peft_model, step + 1, loss_value, result.tokens, reward=result.rewards[-1])
            if progress:
                progress(step + 1, result.rewards[-1])
            checkpoints.save_if_due(step + 1, peft_model, optimizer, [sampler], lambda: {
                "result": result_records(result), "curve": curve.records() if curve else None, "logs": logs,
                "flat_groups": flat_groups, "elapsed": time.perf_counter() - start})
        finish(result, logs, start, flat_groups, config)
        if curve:
            result.seconds -= curve.seconds  # training time only
            result.curve = curve.to_json()
        peft_model.eval()
        adapters.save(peft_model, Path(out_dir), loaded.name)
    return result


def record_step(result: TrainResult, logs: dict[str, list[float]], rollouts: Sequence[Rollout], loss: float,
                flat_groups: int, step_start: float) -> None:
    """Log one GRPO step (loss, mean reward, tokens, flat groups, time), wherever it ran."""
    n_tokens = sum(len(r.completion_ids) for r in rollouts)
    result.losses.append(loss)
    result.rewards.append(sum(r.reward for r in rollouts) / len(rollouts))
    result.tokens += n_tokens
    logs["zero_variance_groups"].append(float(flat_groups))
    logs["completion_tokens"].append(float(n_tokens))
    logs["seconds"].append(time.perf_counter() - step_start)


def finish(result: TrainResult, logs: dict[str, list[float]], start: float, flat_groups: int,
           config: GRPOConfig) -> None:
    """Close a GRPO run's record: total time, share of groups that gave no signal, per-step logs."""
    result.seconds = time.perf_counter() - start
    result.zero_variance_share = flat_groups / (config.steps * config.prompts_per_step)
    result.details = logs


def signal_warning(result: TrainResult, threshold: float = 0.8) -> str | None:
    """A one-line warning when most prompt groups gave no learning signal, else None.

    Show it next to the run's result: an adapter from such a run is close to its
    initialisation, and any transfer measured with it says little about RL.
    """
    share = result.zero_variance_share
    if share is None or share < threshold:
        return None
    mean = sum(result.rewards) / len(result.rewards) if result.rewards else float("nan")
    return (f"{share:.0%} of GRPO prompt groups had all-equal rewards (mean reward {mean:.3f}): little or no "
            "learning signal; use an easier task or a graded reward metric, more samples per prompt, or SFT first")


def _update(peft_model: Any, optimizer: torch.optim.Optimizer, params: list[torch.nn.Parameter],
            active: list[Rollout], n_tokens: int, config: GRPOConfig, pad: int, device: str, task_name: str,
            step: int, mass: tuple[list, list] | None = None) -> tuple[float, float, float]:
    """`inner_steps` optimizer updates on one sampled batch; (loss, kl, clip fraction) of the first.

    Old log-probabilities and the base model's are taken on the first inner step, before
    any update, so pi_old is exactly the policy that sampled.
    """
    if not active and not mass:  # every group flat and no KL term: nothing to learn from this batch
        return 0.0, 0.0, 0.0
    rows = merge_duplicates(active)  # the loss and gradient of the full batch, one forward pass per distinct row
    chunks = [rows[i : i + config.train_batch_size] for i in range(0, len(rows), config.train_batch_size)]
    batches = [tuple(t.to(device) for t in _collate(chunk, pad)) for chunk in chunks]
    old: list[torch.Tensor] = []
    base: list[torch.Tensor | None] = []
    first = (0.0, 0.0, 0.0)
    peft_model.train()
    with torch.enable_grad():
        for inner in range(config.inner_steps):
            optimizer.zero_grad(set_to_none=True)
            total_loss = total_kl = clipped = 0.0
            for b, (ids, mask, labels, advantages, weights) in enumerate(batches):
                logprobs = token_logprobs(peft_model, ids, mask, labels, config.temperature)
                if inner == 0:
                    old.append(logprobs.detach())
                    if config.kl_coef > 0:
                        with torch.no_grad(), peft_model.disable_adapter():
                            base.append(token_logprobs(peft_model, ids, mask, labels, config.temperature))
                    else:
                        base.append(None)
                loss, n_clipped = policy_loss(logprobs, old[b], advantages, config.clip_eps, n_tokens, weights)
                if base[b] is not None:
                    kl = (kl_k3(logprobs, base[b]) * weights).sum() / n_tokens
                    loss = loss + config.kl_coef * kl
                    total_kl += float(kl.detach())
                if not torch.isfinite(loss):
                    raise DivergedError(f"task {task_name!r}: GRPO loss became {float(loss.detach())} at step {step}: "
                                        "lower the learning rate")
                loss.backward()
                total_loss += float(loss.detach())
                clipped += float(n_clipped)
            if mass:  # the picked prompts' choices, as a set (learn/choice_mass.py)
                loss = config.choice_mass_coef * choice_mass_loss(peft_model, *mass, pad, device)
                loss.backward()
                total_loss += float(loss.detach())
            norm = torch.nn.utils.clip_grad_norm_(params, config.grad_clip or float("inf"))
            if not torch.isfinite(norm):
                raise DivergedError(f"task {task_name!r}: gradient norm became {float(norm)} at step {step}: "
                                    "lower the learning rate")
            optimizer.step()
            if inner == 0:
                first = (total_loss, total_kl, clipped / n_tokens)
    return first

