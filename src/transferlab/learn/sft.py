"""Supervised LoRA fine-tuning, loss on completion tokens only.

The loop is written out so it reads top to bottom: tokenise, bucket by length, then
for each step compute the hidden states (the prefix every row of the batch shares, such
as a chat template's system prompt, once for the batch), project only the completion
positions onto the vocabulary, and take an AdamW step with warm-up then cosine decay.

    from transferlab import models
    from transferlab.learn import sft
    m = models.load("smollm2-135m")
    result = sft.train_lora(m, task, task.examples("train")[:200], sft.TrainConfig(steps=50), "out/adapter")
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import torch

from transferlab import adapters
from transferlab.constraints import Interval, Names, check_params
from transferlab.errors import TransferlabError
from transferlab.learn.curve import CURVE_FIELDS, LearningCurve, check_curve_settings
from transferlab.learn.resume import Checkpoints, result_records, resume_loop
from transferlab.tasks.base import Example, Task
from transferlab.tasks.prompts import end_of_turn, render_context


# The declared types and bounds of the shared fields (`constraints`); each config adds its own.
LORA_PARAMS: dict[str, Any] = {"rank": Interval(int, 1, 4096), "alpha": Interval(float, 0, None, closed="neither"),
                               "dropout": Interval(float, 0, 1, closed="left"), "target_modules": Names()}


@dataclass(frozen=True)
class LoraAdapterSettings:
    """What every LoRA training config (SFT, GRPO) shares: the adapter's shape, a PEFT
    `LoraConfig` of it and a plain dict for cache keys. These fields come first in each config."""

    rank: int = 8  # LoRA rank r
    alpha: int = 16  # LoRA scaling numerator (scale = alpha / r)
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")

    def to_dict(self) -> dict[str, Any]:
        """Every field, for cache keys; the learning-curve fields only when a curve is on, so a
        run without one keeps the key it had before curves existed."""
        out = asdict(self)
        if not out.get("eval_every"):
            for name in CURVE_FIELDS:
                out.pop(name, None)
        return out

    def lora_config(self) -> Any:
        from peft import LoraConfig

        return LoraConfig(r=self.rank, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=list(self.target_modules), task_type="CAUSAL_LM", bias="none")


@dataclass(frozen=True)
class TrainConfig(LoraAdapterSettings):
    """Hyper-parameters of one LoRA SFT run; every field is part of the adapter's cache key
    (the curve fields only when `eval_every > 0`: they change the artifact, not the weights)."""

    learning_rate: float = 2e-4
    steps: int = 0  # 0 = as many as `epochs` passes over the data take
    epochs: float = 1.0
    batch_size: int = 8
    warmup_ratio: float = 0.1  # share of steps with linear warm-up
    min_lr_ratio: float = 0.1  # cosine decay ends at this share of the peak rate
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # 0 = no clipping
    max_seq_len: int = 512
    seed: int = 0
    eval_every: int = 0  # learning curve: score the dev split every k steps (0 = no curve); see learn/curve.py
    eval_examples: int = 64  # dev examples scored at each curve point

    PARAMS: ClassVar[dict[str, Any]] = {
        **LORA_PARAMS, "learning_rate": Interval(float, 0, None, closed="neither"), "steps": Interval(int, 0),
        "epochs": Interval(float, 0, None, closed="neither"), "batch_size": Interval(int, 1),
        "warmup_ratio": Interval(float, 0, 1, closed="left"), "min_lr_ratio": Interval(float, 0, 1),
        "weight_decay": Interval(float, 0), "grad_clip": Interval(float, 0), "max_seq_len": Interval(int, 8),
        "seed": Interval(int, 0)}  # eval_every, eval_examples: check_curve_settings

    def __post_init__(self) -> None:
        check_params(self, self.PARAMS)
        check_curve_settings(self.eval_every, self.eval_examples)


class DivergedError(TransferlabError):
    """The loss became NaN or infinite: this job stops, the run goes on."""


@dataclass
class TrainResult:
    steps: int
    tokens: int  # completion tokens the loss was computed on
    seconds: float
    losses: list[float] = field(default_factory=list)
    curve: dict[str, Any] = field(default_factory=dict)  # the learning curve (learn/curve.py), when eval_every > 0
    # Reinforcement learning (grpo.train_grpo) only; empty / None for supervised training:
    rewards: list[float] = field(default_factory=list)  # mean reward of the sampled completions, per step
    zero_variance_share: float | None = None  # share of prompt groups whose rewards were all equal (no signal)
    details: dict[str, list[float]] = field(default_factory=dict)  # further per-step logs (kl, clip fraction, ...)
    # The training cost (transfer.efficiency turns it into FLOPs): tokens through the training forward and
    # backward passes (prompt + completion, no padding; a prefix that SFT runs once per batch still counts
    # once per row, so the cost is the data's, whichever engine version trained), tokens through forward
    # passes only (GRPO's sampling and KL reference), and the parameters of the frozen base and of the adapter.
    processed_tokens: int = 0
    forward_tokens: int = 0
    parameters: int = 0
    trainable_parameters: int = 0

    def count_parameters(self, model: Any, trainable: Sequence[Any]) -> None:
        """Record the adapter's parameter count and the frozen base's (everything else in `model`)."""
        self.trainable_parameters = sum(p.numel() for p in trainable)
        self.parameters = sum(p.numel() for p in model.parameters()) - self.trainable_parameters

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        out = {"steps": self.steps, "tokens": self.tokens, "seconds": self.seconds, "losses": self.losses,
               "tokens_per_second": self.tokens_per_second}
        if self.parameters:  # recorded by training here (not by the Tinker backend)
            out.update(processed_tokens=self.processed_tokens, forward_tokens=self.forward_tokens,
                       parameters=self.parameters, trainable_parameters=self.trainable_parameters)
        if self.rewards:
            out.update(rewards=self.rewards, zero_variance_share=self.zero_variance_share, details=self.details)
        if self.curve:
            out["curve"] = self.curve
        return out


def tokenize(task: Task, examples: Sequence[Example], tokenizer: Any, max_seq_len: int) -> list[tuple[list[int], int]]:
    """(token ids, number of prompt tokens) per example; long prompts are cut from the left."""
    rows = []
    for e in examples:
        if not e.target:
            raise TransferlabError(f"task {task.name!r} has no reference answers to train on (example {e.uid}): "
                                   "pick a task with targets as a training source")
        prompt = tokenizer(render_context(task, e, tokenizer), add_special_tokens=False)["input_ids"]
        answer = tokenizer(e.target + end_of_turn(tokenizer), add_special_tokens=False)["input_ids"]
        answer = answer[: max_seq_len - 1]
        prompt = prompt[-(max_seq_len - len(answer)):]
        rows.append((prompt + answer, len(prompt)))
    return rows


def length_bucketed_batches(lengths: Sequence[int], batch_size: int, steps: int, seed: int) -> list[list[int]]:
    """`steps` batches of similar-length rows, in a seeded random order, cycling over epochs."""
    generator = torch.Generator().manual_seed(seed)
    batches: list[list[int]] = []
    while len(batches) < steps:
        order = torch.randperm(len(lengths), generator=generator).tolist()
        window = batch_size * 16
        epoch: list[list[int]] = []
        for start in range(0, len(order), window):
            chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
            epoch += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
        shuffled = torch.randperm(len(epoch), generator=generator).tolist()
        batches += [epoch[i] for i in shuffled]
    return batches[:steps]


def get_lr(step: int, total: int, config: Any) -> float:
    """Learning rate at `step`: (1) linear warm-up, (2) cosine decay to min_lr_ratio of the peak.

    `config` is any config with `learning_rate`, `warmup_ratio` and `min_lr_ratio`
    (TrainConfig, grpo.GRPOConfig).
    """
    warmup = int(config.warmup_ratio * total)
    if step < warmup:  # 1) warm-up
        return config.learning_rate * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)  # 2) cosine decay
    floor = config.min_lr_ratio
    return config.learning_rate * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def completion_logits(model: Any, ids: torch.Tensor, mask: torch.Tensor,
                      labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Vocabulary logits at the completion positions only, and the tokens they predict."""
    backbone = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = backbone.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state
    return _head(backbone, hidden, labels[:, 1:])


def _head(backbone: Any, hidden: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of `hidden[:, :-1]` where `targets` (the next tokens) is not -100, and those targets."""
    selected = targets != -100
    logits = backbone.get_output_embeddings()(hidden[:, :-1][selected])
    cap = getattr(backbone.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits, targets[selected]


def shared_prefix(rows: Sequence[tuple[list[int], int]]) -> int:
    """How many leading tokens every row of a batch shares (a system prompt, an instruction),
    capped one short of the shortest prompt so each row's first predicted token comes after it."""
    first = rows[0][0]
    length = min(n_prompt for _, n_prompt in rows) - 1
    for ids, _ in rows[1:]:
        length = min(length, len(ids))
        length = next((i for i in range(length) if ids[i] != first[i]), length)
    return max(0, length)


def _prefix_cache(backbone: Any) -> tuple[Any, str] | None:
    """An empty KV cache for the prefix and the decoder's name for it, or None where a shared
    prefix is not run apart (no such argument, or sliding-window layers, whose cache drops keys)."""
    import inspect

    from transformers import DynamicCache

    names = inspect.signature(backbone.get_decoder().forward).parameters
    name = "cache" if "cache" in names else "past_key_values" if "past_key_values" in names else None
    checkpointing = getattr(backbone, "is_activation_checkpointing", None)  # (older transformers: the other name)
    if checkpointing is None:
        checkpointing = getattr(backbone, "is_gradient_checkpointing", False)
    if name is None or checkpointing:  # checkpointing turns caches off
        return None
    try:
        cache = DynamicCache(config=backbone.config)
    except TypeError:  # a transformers release whose cache takes no config
        return None
    if any(getattr(layer, "is_sliding", False) for layer in getattr(cache, "layers", [])):
        return None
    return cache, name


def prefix_shared_loss(model: Any, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor,
                       prefix: int) -> tuple[torch.Tensor, int]:
    """`completion_loss`, with the `prefix` tokens every row starts with run once for the batch.

    The prefix's keys and values are computed for one row and repeated for the others, then the
    rest of each row attends to them (causal attention: a prefix never sees what follows it), so
    the loss is the same function of the weights; in backward the rows' gradients for the prefix
    are summed through the repeat. Saves the prefix's share of the compute on all rows but one.
    Falls back to `completion_loss` where there is nothing to share or the model cannot (`_prefix_cache`).
    """
    backbone = model.get_base_model() if hasattr(model, "get_base_model") else model
    found = _prefix_cache(backbone) if prefix > 0 and ids.shape[0] > 1 else None
    if found is None:
        return completion_loss(model, ids, mask, labels)
    cache, name = found
    decoder = backbone.get_decoder()
    decoder(input_ids=ids[:1, :prefix], attention_mask=mask[:1, :prefix], use_cache=True, **{name: cache})
    if cache.get_seq_length() != prefix:  # the model kept no cache after all: whole rows, as before
        return completion_loss(model, ids, mask, labels)
    cache.batch_repeat_interleave(ids.shape[0])
    hidden = decoder(input_ids=ids[:, prefix:], attention_mask=mask, use_cache=True, **{name: cache}).last_hidden_state
    logits, targets = _head(backbone, hidden, labels[:, prefix + 1:])
    n = int(targets.numel())
    return torch.nn.functional.cross_entropy(logits.float(), targets, reduction="sum") / max(1, n), n


def completion_loss(model: Any, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Mean cross-entropy over completion tokens, with vocabulary logits for those positions only."""
    logits, targets = completion_logits(model, ids, mask, labels)
    n = int(targets.numel())
    return torch.nn.functional.cross_entropy(logits.float(), targets, reduction="sum") / max(1, n), n


def mean_completion_loss(model: Any, rows: Sequence[tuple[list[int], int]], pad_id: int, device: str,
                         batch_size: int) -> float:
    """Mean cross-entropy per completion token over `rows`, without gradients (a curve's dev loss)."""
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            ids, mask, labels = (t.to(device) for t in collate(rows[start : start + batch_size], pad_id))
            loss, n = completion_loss(model, ids, mask, labels)
            total, count = total + float(loss) * n, count + n
    return total / count if count else float("nan")


def collate(rows: Sequence[tuple[list[int], int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for r, (seq, n_prompt) in enumerate(rows):
        ids[r, : len(seq)] = torch.tensor(seq)
        mask[r, : len(seq)] = 1
        labels[r, n_prompt : len(seq)] = torch.tensor(seq[n_prompt:])
    return ids, mask, labels


def train_lora(loaded: Any, task: Task, examples: Sequence[Example], config: TrainConfig, out_dir: str | Path,
               init_adapter: Path | None = None, progress: Callable[[int, float], None] | None = None,
               also: Sequence[tuple[Task, Sequence[Example]]] = (), resume: Checkpoints | None = None) -> TrainResult:
    """Train a LoRA adapter on `examples` and save it as a PEFT directory in `out_dir`.

    With `init_adapter`, training continues from that adapter (sequential training);
    `also` adds examples of other tasks, each in its own prompt format (joint training);
    `resume` saves checkpoints as it goes and starts from its last one (learn/resume.py).
    """
    if not examples:
        raise TransferlabError(f"task {task.name!r} has no training examples: check its train split")
    model, tokenizer = loaded.model, loaded.tokenizer
    rows = tokenize(task, examples, tokenizer, config.max_seq_len)
    for other, other_examples in also:
        rows += tokenize(other, other_examples, tokenizer, config.max_seq_len)
    steps = config.steps or max(1, math.ceil(config.epochs * len(rows) / config.batch_size))
    batches = length_bucketed_batches([len(r[0]) for r in rows], config.batch_size, steps, config.seed)

    torch.manual_seed(config.seed)  # LoRA's A matrices are initialised from the global generator
    context = (adapters.applied(model, init_adapter, trainable=True) if init_adapter
               else adapters.fresh(model, config.lora_config()))
    device = loaded.device
    result = TrainResult(steps=steps, tokens=0, seconds=0.0)
    curve = LearningCurve.start(loaded, task, config, steps)  # None unless eval_every > 0
    if curve and curve.examples and all(e.target for e in curve.examples):  # dev loss needs reference answers
        dev_rows = tokenize(task, curve.examples, tokenizer, config.max_seq_len)
        curve.loss_of = lambda m: mean_completion_loss(m, dev_rows, tokenizer.pad_token_id, device, config.batch_size)
    with context as peft_model, torch.enable_grad():
        peft_model.train()
        params = [p for p in peft_model.parameters() if p.requires_grad]
        result.count_parameters(peft_model, params)
        optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
        checkpoints, saved = resume_loop(resume, steps, peft_model, optimizer, (), result, curve)
        start = time.perf_counter() - (saved["elapsed"] if saved else 0.0)
        if curve and not saved:
            curve.step(peft_model, 0)  # the starting point, before any update
        for step, batch in enumerate(batches):
            if step < checkpoints.resumed_at:
                continue  # done before the checkpoint
            for group in optimizer.param_groups:
                group["lr"] = get_lr(step, steps, config)
            chosen = [rows[i] for i in batch]
            ids, mask, labels = (t.to(device) for t in collate(chosen, tokenizer.pad_token_id))
            loss, n_tokens = prefix_shared_loss(peft_model, ids, mask, labels, shared_prefix(chosen))
            if not torch.isfinite(loss):
                raise DivergedError(f"task {task.name!r}: loss became {float(loss.detach())} at step {step}: "
                                    "lower the learning rate")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(params, config.grad_clip or float("inf"))
            if not torch.isfinite(norm):
                raise DivergedError(f"task {task.name!r}: gradient norm became {float(norm)} at step {step}: "
                                    "lower the learning rate")
            optimizer.step()
            result.losses.append(float(loss.detach()))
            result.tokens += n_tokens
            result.processed_tokens += sum(len(rows[i][0]) for i in batch)
            if curve:
                curve.step(peft_model, step + 1, result.losses[-1], result.tokens)
            if progress:
                progress(step + 1, result.losses[-1])
            checkpoints.save_if_due(step + 1, peft_model, optimizer, (), lambda: {
                "result": result_records(result), "curve": curve.records() if curve else None,
                "elapsed": time.perf_counter() - start})
        result.seconds = time.perf_counter() - start - (curve.seconds if curve else 0.0)  # training time only
        result.curve = curve.to_json() if curve else {}
        peft_model.eval()
        adapters.save(peft_model, Path(out_dir), loaded.name)
    return result
