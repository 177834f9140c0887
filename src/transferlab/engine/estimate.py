"""How long a plan will take, said before it starts.

Each job's work is counted in tokens and passes (trained, scored, decoded; `workload`) on a
model whose shape is known without loading it (`model_shapes`), and priced by the device
(`rates`): rates measured on this project's CPU, or on a GPU when docs/results/gpu/rates.json
exists, scaled by the model's size; else, on a GPU, a roofline model of a reference GPU
(`roofline`: compute-bound training and forward passes, memory-bound decoding). Hub tasks are
never loaded for this: their published split sizes and typical lengths stand in. When the
run's store already holds finished jobs, their real times correct the figures (one factor per
job kind). A rough figure for deciding whether to start, not a promise.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transferlab.engine.jobs import Job
from transferlab.engine.model_shapes import ModelShape, lora_parameters, model_shape
from transferlab.engine.rates import CPU_RATES, Device, Rates, rates_for
from transferlab.engine.store import Store
from transferlab.engine.workload import curve_points, mean_tokens, split_count, train_steps
from transferlab.tasks import get_task

ESTIMATED = ("train", "evaluate")  # the job kinds these rates describe
CURVE_BATCH = 16  # the batch a learning-curve point scores the dev split with
CPU_MARK = "(CPU)"  # a kind of work named "fit (CPU)" runs on the CPU even in a GPU study
REFERENCE_MODEL = "smollm2-135m"  # the model the CPU rates were measured on


@dataclass(frozen=True)
class Estimate:
    seconds: float
    source: str  # where the rates came from
    device: str = "cpu"
    by_kind: tuple[tuple[str, float], ...] = ()  # (job kind, seconds), in plan order
    notes: tuple[str, ...] = ()  # what the figure had to assume

    def describe(self) -> str:
        if self.device == "cuda":  # work a kind marks "(CPU)" runs beside the GPU, not on it
            kinds = ", ".join(f"{kind} {_span(s)}" for kind, s in self.by_kind if s)
            cpu = sum(s for kind, s in self.by_kind if kind.endswith(CPU_MARK)) / 3600
            gpu = self.seconds / 3600 - cpu
            also = f" and {cpu:.1f} CPU-hours" if cpu >= 0.05 else ""
            hours = f"{gpu:.1f}" if gpu >= 0.95 else f"{gpu:.2g}"  # a few GPU-minutes read 0.026, not 0.0
            return f"about {hours} GPU-hours on one GPU{also} ({kinds + '; ' if kinds else ''}{self.source}; rough)"
        minutes = self.seconds / 60
        when = f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"
        return f"about {when} ({self.source}; rough)"


def _span(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def model_parameters(name: str) -> float:
    """Parameter count of a model without loading it (`model_shapes.model_shape`)."""
    return model_shape(name).parameters


def _count(task: str, split: str) -> int:
    return split_count(task, split, load=False)  # a hub task's published size; others are counted


def _shape(model: str | None) -> ModelShape:
    return model_shape(model or REFERENCE_MODEL)


def evaluation_work(task_name: str, split: str, examples: int | None, batch_size: int, max_new_tokens: int | None,
                    rates: Device = CPU_RATES, shape: ModelShape | None = None) -> float:
    """Seconds to score `examples` (0 or None = all) of a split on a model of `shape` (default the
    135M reference): one forward pass over each prompt and its choices, plus greedy decoding in
    batches for a generation task."""
    shape = shape or _shape(None)
    task = get_task(task_name)
    count = _count(task_name, split)
    if examples:
        count = min(count, examples)
    per_prompt = mean_tokens(task_name, split, False)
    passes = math.ceil(count / max(1, batch_size))
    scoring = rates.forward_seconds(count * per_prompt, passes, shape)
    if task.output_type == "multiple_choice":
        return scoring
    new_tokens = task.generation_length(max_new_tokens)
    return scoring + rates.decode_seconds(count, batch_size, new_tokens, per_prompt + new_tokens / 2, shape)


def _curve_batch(train: dict[str, Any], rates: Device) -> int:
    """The batch a learning-curve point decodes with: the learner's, as `learn.curve` takes it
    (measured rates keep the fixed CURVE_BATCH their CPU figures were pinned with)."""
    if isinstance(rates, Rates):
        return CURVE_BATCH
    return int(train.get("batch_size") or train.get("train_batch_size") or 8)


def _curve_work(task: str, steps: int, train: dict[str, Any], rates: Device, shape: ModelShape,
                with_loss: bool) -> float:
    """The learning curve's dev evaluations (and, for SFT, the dev loss pass) of one training."""
    points = curve_points(steps, train.get("eval_every", 0))
    if not points:
        return 0.0
    examples = min(train.get("eval_examples", 64), _count(task, "dev"))
    batch = _curve_batch(train, rates)
    one = evaluation_work(task, "dev", examples, batch, train.get("max_new_tokens"), rates, shape)
    if with_loss:
        one += rates.forward_seconds(examples * mean_tokens(task, "dev", True), math.ceil(examples / batch), shape)
    return points * one


def _adapter(train: dict[str, Any], shape: ModelShape) -> float:
    """The adapter's size (every learner here trains a LoRA adapter)."""
    return lora_parameters(shape, int(train.get("rank", 8)), train.get("target_modules") or ("q_proj", "v_proj"))


def _sft_work(p: dict[str, Any], rates: Device, shape: ModelShape) -> float:
    train = p["train"]
    batch, cap = train.get("batch_size", 8), train.get("max_seq_len", 512)
    available = 0 if train.get("steps") else _count(p["task"], "train")
    steps = train_steps(train, p.get("train_examples", 256), available)
    tokens = steps * batch * min(mean_tokens(p["task"], "train", True), cap)
    for other in p.get("joint_with", []):
        tokens += steps * batch * min(mean_tokens(other, "train", True), cap)
    return (rates.train_seconds(tokens, steps, shape, _adapter(train, shape))
            + _curve_work(p["task"], steps, train, rates, shape, with_loss=True))


def _grpo_work(p: dict[str, Any], rates: Device, shape: ModelShape) -> float:
    """Per step: sample a group per prompt, all of them decoded as one batch (decoding dominates),
    then updates over them in `train_batch_size` chunks (and a reference forward pass when a KL
    term is on)."""
    train = p["train"]
    sequences = train.get("prompts_per_step", 8) * train.get("group_size", 8)
    new_tokens = train.get("max_new_tokens") or get_task(p["task"]).max_new_tokens
    prompt = mean_tokens(p["task"], "train", False)
    decode = rates.decode_seconds(sequences, sequences, new_tokens, prompt + new_tokens / 2, shape)
    tokens = sequences * (prompt + new_tokens)
    inner = train.get("inner_steps", 1)
    chunks = math.ceil(sequences / train.get("train_batch_size", 16))
    update = rates.train_seconds(tokens * inner, chunks * inner, shape, _adapter(train, shape))
    reference = rates.forward_seconds(tokens, chunks, shape) if train.get("kl_coef") else 0.0
    steps = train.get("steps", 50)
    return steps * (decode + update + reference) + _curve_work(p["task"], steps, train, rates, shape, with_loss=False)


def job_work(job: Job, rates: Device = CPU_RATES) -> float:
    """Seconds the job takes on its model (train and evaluate jobs; other kinds are not
    estimated here and count as 0)."""
    p = job.params
    shape = _shape(p.get("model"))
    if job.kind == "train":
        return _grpo_work(p, rates, shape) if p["train"].get("method") == "grpo" else _sft_work(p, rates, shape)
    if job.kind == "evaluate":
        return evaluation_work(p["task"], p["split"], p.get("eval_examples"), p.get("batch_size", 16),
                               p.get("max_new_tokens"), rates, shape)
    return 0.0


def estimate_plan(jobs: list[Job], store: Store | None = None, device: str = "cpu",
                  extra: dict[str, float] | None = None) -> Estimate:
    """Seconds for the jobs not finished yet, at the device's rates (or its roofline), calibrated
    by the store's finished jobs if any; `extra` adds work estimated elsewhere (kind -> seconds)."""
    rates = rates_for(device)
    pending = [j for j in jobs if store is None or store.job_status(j.key) != "done"]
    correction, calibrated = _calibration(jobs, store, rates)
    by_kind: dict[str, float] = {}
    for job in pending:
        if job.kind in ESTIMATED:
            seconds = job_work(job, rates) * correction.get(job.kind, 1.0)
            by_kind[job.kind] = by_kind.get(job.kind, 0.0) + seconds
    for kind, seconds in (extra or {}).items():
        by_kind[kind] = by_kind.get(kind, 0.0) + seconds
    models = sorted({j.params["model"] for j in pending if j.kind in ESTIMATED and "model" in j.params})
    notes = tuple(f"{m}: {model_shape(m).source}" for m in models if model_shape(m).layers is None
                  and model_shape(m).source != "built-in")
    return Estimate(sum(by_kind.values()), calibrated or rates.source, rates.device, tuple(by_kind.items()),
                    notes + rates.notes)


def _calibration(jobs: list[Job], store: Store | None, rates: Device) -> tuple[dict[str, float], str]:
    if store is None:
        return {}, ""
    done = {j["key"]: j["seconds"] for j in store.jobs() if j["status"] == "done" and j["seconds"]}
    ratios: dict[str, list[float]] = {}
    for job in jobs:
        if job.key in done and job.kind in ESTIMATED:
            predicted = job_work(job, rates)
            if predicted > 0:
                ratios.setdefault(job.kind, []).append(done[job.key] / predicted)
    if not ratios:
        return {}, ""
    count = sum(len(v) for v in ratios.values())
    return {k: statistics.median(v) for k, v in ratios.items()}, f"rates from {count} finished jobs of this run"


def resolve_device(device: str) -> str:
    """'cuda' or 'cpu': what the run will use ('auto' is CUDA when this machine has it)."""
    if device.startswith("cuda"):
        return "cuda"
    if device != "auto":
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def plan_estimate(plan_jobs: list[Job], output: str | Path, device: str = "auto",
                  extra: dict[str, float] | None = None) -> Estimate:
    """The estimate `transferlab run` prints: the run directory's store calibrates it if it exists."""
    where = Path(output)
    store = Store(where) if (where / "results.sqlite").exists() else None
    return estimate_plan(plan_jobs, store, resolve_device(device), extra)
