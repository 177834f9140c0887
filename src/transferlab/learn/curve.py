"""Learning curves: score the source task's dev split while an adapter trains.

Off by default (`eval_every = 0`). With `eval_every = k`, the training loop records a point
at step 0 (before any update), after every k-th update and after the last one. A point holds

    step          updates done so far
    tokens_seen   completion tokens trained on so far (GRPO: completion tokens sampled)
    train_loss    mean training loss of the updates since the previous point (None at step 0)
    train_reward  GRPO only: mean sampled reward of those updates
    dev_loss      SFT only: mean completion NLL per token on the dev examples (None when they
                  have no reference answers)
    dev_score     the task's primary metric on the first `eval_examples` dev examples, with a
                  95% bootstrap CI (dev_ci_low, dev_ci_high)
    dev_change    dev_score minus the step-0 score on the same examples, with a paired 95%
                  bootstrap CI (dev_change_low, dev_change_high): did training move the dev score?

Each evaluation runs with gradients off, in eval mode (the previous mode is restored) and
inside `torch.random.fork_rng`, so it never touches the training's random state: an adapter
trained with the curve on has the same weights as one trained with it off.

    from transferlab.learn import sft
    result = sft.train_lora(m, task, task.examples("train"), sft.TrainConfig(steps=50, eval_every=10), "out/a")
    result.curve["points"][-1]["dev_score"]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from transferlab.errors import TransferlabError
from transferlab.stats import bootstrap_mean, paired_difference
from transferlab.tasks.base import Example, Task

# Config fields that shape the curve, not the weights. A config with `eval_every = 0` leaves
# them out of its cache key, so adapters trained before curves existed keep their keys.
CURVE_FIELDS = ("eval_every", "eval_examples")
RESAMPLES = 1000  # bootstrap resamples of each point's CIs (dev sets are small: this is cheap)


def check_curve_settings(eval_every: Any, eval_examples: Any) -> None:
    """One-line errors for the curve fields of a training config."""
    if isinstance(eval_every, bool) or not isinstance(eval_every, int) or eval_every < 0:
        raise TransferlabError(f"eval_every must be a non-negative integer (0 = no learning curve), "
                               f"got {eval_every!r}")
    if isinstance(eval_examples, bool) or not isinstance(eval_examples, int) or eval_examples < 1:
        raise TransferlabError(f"eval_examples must be a positive integer (dev examples scored per curve point), "
                               f"got {eval_examples!r}")


def curve_steps(total: int, every: int) -> list[int]:
    """The steps a curve records: 0, every `every`-th and the last one."""
    return sorted({0, total, *range(every, total, every)}) if every > 0 else []


class LearningCurve:
    """The points of one training run's learning curve (see the module docstring).

    `loss_of(model)`, when given, is the dev loss; the loops pass their own (SFT's mean
    completion NLL), so this module needs nothing of theirs.
    """

    def __init__(self, tokenizer: Any, task: Task, examples: Sequence[Example], total: int, every: int,
                 batch_size: int, loss_of: Callable[[Any], float] | None = None):
        self.tokenizer, self.task, self.examples = tokenizer, task, list(examples)
        self.metric = task.primary_metric
        self.steps = set(curve_steps(total, every))
        self.every, self.batch_size, self.loss_of = every, batch_size, loss_of
        self.points: list[dict[str, Any]] = []
        self.seconds = 0.0  # time spent evaluating, which the run's training time leaves out
        self._first: list[float] = []  # per-example dev scores at step 0, for the paired change
        self._losses: list[float] = []  # training losses since the previous point
        self._rewards: list[float] = []

    @classmethod
    def start(cls, loaded: Any, task: Task, config: Any, total: int) -> LearningCurve | None:
        """The curve of a run of `total` steps with `config.eval_every > 0` on the task's first
        `config.eval_examples` dev examples, else None."""
        if not config.eval_every:
            return None
        examples = task.examples("dev")[: config.eval_examples]
        batch = getattr(config, "batch_size", 0) or getattr(config, "train_batch_size", 8)
        return cls(loaded.tokenizer, task, examples, total, config.eval_every, batch)

    def step(self, model: Any, done: int, loss: float | None = None, tokens: int = 0,
             reward: float | None = None) -> None:
        """Note an update's loss (and reward); record a point when `done` updates is a curve step."""
        if done > 0:
            if loss is not None:
                self._losses.append(loss)
            if reward is not None:
                self._rewards.append(reward)
        if done in self.steps and self.examples:
            self._record(model, done, tokens)

    def _record(self, model: Any, step: int, tokens: int) -> None:
        import time

        from transferlab.evaluate import evaluate_task

        started = time.perf_counter()
        params = next(model.parameters())
        devices = [params.device.index or 0] if params.device.type == "cuda" else []
        was_training = model.training
        model.eval()
        try:
            with torch.random.fork_rng(devices=devices), torch.no_grad():
                result = evaluate_task(model, self.tokenizer, self.task, self.examples, split="dev",
                                       batch_size=self.batch_size)
                dev_loss = self.loss_of(model) if self.loss_of else None
        finally:
            model.train(was_training)
        scores, weights = result.scores[self.metric], result.weights_of(self.metric)
        if not self._first:
            self._first = list(scores)
        score = bootstrap_mean(scores, RESAMPLES, seed=0, weights=weights)
        change = paired_difference(scores, self._first, RESAMPLES, seed=0, weights=weights)
        self.points.append({
            "step": step, "tokens_seen": tokens,
            "train_loss": sum(self._losses) / len(self._losses) if self._losses else None,
            "train_reward": sum(self._rewards) / len(self._rewards) if self._rewards else None,
            "dev_loss": dev_loss, "dev_score": score.value, "dev_ci_low": score.ci_low, "dev_ci_high": score.ci_high,
            "dev_change": change.value, "dev_change_low": change.ci_low, "dev_change_high": change.ci_high,
            "n": score.n})
        self._losses, self._rewards = [], []
        self.seconds += time.perf_counter() - started

    def records(self) -> dict[str, Any]:
        """What a training checkpoint keeps of the curve (learn/resume.py)."""
        return {"points": self.points, "first": self._first, "losses": self._losses, "rewards": self._rewards,
                "seconds": self.seconds}

    def restore(self, saved: dict[str, Any]) -> None:
        """Go on from a checkpoint's `records()`."""
        self.points, self._first, self.seconds = saved["points"], saved["first"], saved["seconds"]
        self._losses, self._rewards = saved["losses"], saved["rewards"]

    def to_json(self) -> dict[str, Any]:
        """What training.json keeps of the curve; `note` says why it is empty, if it is."""
        out: dict[str, Any] = {"metric": self.metric, "split": "dev", "every": self.every,
                               "examples": len(self.examples), "seconds": self.seconds, "points": self.points}
        if not self.examples:
            out["note"] = f"task {self.task.name!r} has no dev examples: no learning curve"
        return out
