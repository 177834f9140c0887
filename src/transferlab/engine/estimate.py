"""How long a plan will take, said before it starts.

The estimate counts each job's work in tokens (trained, scored or generated), divides by
a rate per 135M parameters on a CPU, and scales by the model's size. Rates measured on
the 2-core CPU this project is developed on; when the run's store already holds finished
jobs, their real times replace the default rates (one correction factor per job kind).
It is a rough figure for deciding whether to start, not a promise.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from transferlab.engine.jobs import Job
from transferlab.engine.store import Store
from transferlab.tasks import get_task

REFERENCE_PARAMETERS = 135e6  # SmolLM2-135M, on which the default rates were measured
TRAIN_TOKENS_PER_S = 300.0  # forward + backward, completion-only logits, batch 8
SCORE_TOKENS_PER_S = 1500.0  # batched log-likelihood forward passes
DECODE_STEPS_PER_S = 8.0  # greedy decoding steps of one batch (up to ~20 sequences)
GPU_SPEEDUP = 30.0  # a rough factor for CUDA bf16 against the reference CPU
CHARS_PER_TOKEN = 4.0
ESTIMATED = ("train", "evaluate")  # the job kinds these rates describe
KNOWN_PARAMETERS = {"smollm2-135m": 135e6, "gemma3-270m": 270e6}


@dataclass(frozen=True)
class Estimate:
    seconds: float
    source: str  # where the rates came from

    def describe(self) -> str:
        minutes = self.seconds / 60
        when = f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"
        return f"about {when} ({self.source}; rough)"


def model_parameters(name: str) -> float:
    """Parameter count of a model from its config (no weights loaded); 135M when unknown."""
    if name in KNOWN_PARAMETERS:
        return KNOWN_PARAMETERS[name]
    config_path = Path(name).expanduser() / "config.json"
    if not config_path.exists():
        return REFERENCE_PARAMETERS
    c = json.loads(config_path.read_text())
    c = c.get("text_config", c)
    hidden, layers = c.get("hidden_size", 0), c.get("num_hidden_layers", 0)
    inter, vocab = c.get("intermediate_size", 4 * hidden), c.get("vocab_size", 0)
    heads, kv = c.get("num_attention_heads", 1), c.get("num_key_value_heads", c.get("num_attention_heads", 1))
    attention = hidden * hidden * (2 + 2 * kv / heads)
    return float(vocab * hidden + layers * (attention + 3 * hidden * inter)) or REFERENCE_PARAMETERS


def _mean_tokens(task_name: str, split: str, with_target: bool) -> float:
    examples = get_task(task_name).examples(split)[:50]
    if not examples:
        return 0.0
    chars = [len(e.prompt) + (len(e.target) if with_target else sum(len(c) for c in e.choices)) for e in examples]
    return statistics.fmean(chars) / CHARS_PER_TOKEN + 20  # + the chat template


def job_work(job: Job) -> float:
    """Seconds the job takes at the default rates on the reference model and CPU (train and
    evaluate jobs; other kinds are not estimated yet and count as 0)."""
    p = job.params
    if job.kind not in ESTIMATED:
        return 0.0
    if job.kind == "train" and p["train"].get("method") == "grpo":
        # Per step: sample a group per prompt (decoding dominates), then one update over them.
        train = p["train"]
        task = get_task(p["task"])
        sequences = train.get("prompts_per_step", 8) * train.get("group_size", 8)
        new_tokens = train.get("max_new_tokens") or task.max_new_tokens
        decode = -(-sequences // 20) * new_tokens / DECODE_STEPS_PER_S
        update = sequences * (_mean_tokens(p["task"], "train", False) + new_tokens) / TRAIN_TOKENS_PER_S
        return train.get("steps", 50) * (decode + update)
    if job.kind == "train":
        train = p["train"]
        steps = train.get("steps") or max(1, p.get("train_examples", 256) // train.get("batch_size", 8))
        tokens = steps * train.get("batch_size", 8) * min(_mean_tokens(p["task"], "train", True),
                                                             train.get("max_seq_len", 512))
        for other in p.get("joint_with", []):
            tokens += steps * train.get("batch_size", 8) * _mean_tokens(other, "train", True)
        return tokens / TRAIN_TOKENS_PER_S
    task = get_task(p["task"])
    count = len(task.examples(p["split"]))
    if p.get("eval_examples"):
        count = min(count, p["eval_examples"])
    prompt_tokens = count * _mean_tokens(p["task"], p["split"], False)
    if task.output_type == "multiple_choice":
        return prompt_tokens / SCORE_TOKENS_PER_S
    batches = -(-count // max(1, min(p.get("batch_size", 16), 20)))
    new_tokens = p.get("max_new_tokens") or task.max_new_tokens
    return prompt_tokens / SCORE_TOKENS_PER_S + batches * new_tokens / DECODE_STEPS_PER_S


def estimate_plan(jobs: list[Job], store: Store | None = None, device: str = "cpu") -> Estimate:
    """Seconds for the jobs not finished yet; calibrated by the store's finished jobs if any."""
    pending = [j for j in jobs if store is None or store.job_status(j.key) != "done"]
    correction, source = _calibration(jobs, store)
    seconds = 0.0
    for job in pending:
        if job.kind not in ESTIMATED:
            continue
        scale = model_parameters(job.params["model"]) / REFERENCE_PARAMETERS
        seconds += job_work(job) * scale * correction.get(job.kind, 1.0)
    if device == "cuda":
        seconds /= GPU_SPEEDUP
    return Estimate(seconds, source)


def _calibration(jobs: list[Job], store: Store | None) -> tuple[dict[str, float], str]:
    if store is None:
        return {}, "default CPU rates"
    done = {j["key"]: j["seconds"] for j in store.jobs() if j["status"] == "done" and j["seconds"]}
    ratios: dict[str, list[float]] = {}
    for job in jobs:
        if job.key in done and job.kind in ESTIMATED:
            predicted = job_work(job) * model_parameters(job.params["model"]) / REFERENCE_PARAMETERS
            if predicted > 0:
                ratios.setdefault(job.kind, []).append(done[job.key] / predicted)
    if not ratios:
        return {}, "default CPU rates"
    count = sum(len(v) for v in ratios.values())
    return {k: statistics.median(v) for k, v in ratios.items()}, f"rates from {count} finished jobs of this run"


def plan_estimate(plan_jobs: list[Job], output: str | Path, device: str = "auto") -> Estimate:
    """The estimate `transferlab run` prints: the run directory's store calibrates it if it exists."""
    import torch

    where = Path(output)
    store = Store(where) if (where / "results.sqlite").exists() else None
    use = "cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu"
    return estimate_plan(plan_jobs, store, use)

