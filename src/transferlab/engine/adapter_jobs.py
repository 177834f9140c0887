"""The two job kinds every adapter study shares: train a learner on a source, evaluate a model
(with or without an adapter) on a target.

Both write one artifact each (a PEFT adapter directory; the per-example evaluation), and an
evaluation also commits its score rows with bootstrap CIs to the results table.
"""

from __future__ import annotations

import json
import time
from typing import Any

from transferlab.engine.jobs import Job, Runtime, Tick
from transferlab.engine.store import NONE, ResultRow
from transferlab.errors import TransferlabError
from transferlab.stats import bootstrap_mean
from transferlab.tasks import stable_hash


def train_key(identity: str, task_fingerprint: str, train_config: dict[str, Any], train_examples: int) -> str:
    """The store key of an adapter trained on one task: every study that trains one uses this,
    so studies sharing `artifacts:` never train the same adapter twice."""
    return stable_hash("train", identity, task_fingerprint, train_config, train_examples)


def evaluate_key(identity: str, adapter: str | None, task_fingerprint: str, split: str, eval_examples: int,
                 max_new_tokens: int, template: str = "default") -> str:
    """The store key of an evaluation (base model when `adapter` is None), shared by every study.

    A prompt template other than `default` is part of the key; the default adds nothing, so
    evaluations stored before templates existed keep their keys.
    """
    extra = () if template == "default" else (("template", template),)
    return stable_hash("evaluate", identity, adapter, task_fingerprint, split, eval_examples, max_new_tokens, *extra)


def run_train(job: Job, rt: Runtime, tick: Tick) -> dict[str, Any]:
    from transferlab.tasks import get_task

    p = job.params
    loaded = rt.model(p["model"])
    task = get_task(p["task"])
    limit = p["train_examples"] or None
    examples = task.examples("train")[:limit]
    also = [(get_task(name), get_task(name).examples("train")[:limit]) for name in p.get("joint_with", [])]
    settings = dict(p["train"])
    method = settings.pop("method", "lora")
    init = rt.adapter_dir(p.get("init_adapter"))
    with rt.store.writing("adapter", job.key, meta=p) as out:
        if method == "lora":
            from transferlab.learn.sft import TrainConfig, train_lora

            config = TrainConfig(**settings)
            total = config.steps or None
            result = train_lora(loaded, task, examples, config, out, init_adapter=init, also=also,
                                progress=lambda step, loss: tick(step, total or step, f"loss {loss:.3f}"))
        elif method == "grpo":
            from transferlab.learn.grpo import GRPOConfig, signal_warning, train_grpo

            config = GRPOConfig(**settings)
            result = train_grpo(loaded, task, examples, config, out, init_adapter=init, also=also,
                                progress=lambda step, reward: tick(step, config.steps, f"reward {reward:.3f}"))
        else:
            raise TransferlabError(f"unknown training method {method!r} in job {job.key}")
        count = len(examples) + sum(len(ex) for _, ex in also)
        (out / "training.json").write_text(json.dumps({**result.to_json(), "examples": count}))
    summary = {"steps": result.steps, "tokens_per_second": round(result.tokens_per_second, 1),
               "final_loss": result.losses[-1] if result.losses else None}
    if result.rewards:
        summary["final_reward"] = round(result.rewards[-1], 4)
        summary["zero_variance_share"] = result.zero_variance_share
        if warning := signal_warning(result):
            summary["warning"] = warning
    if points := result.curve.get("points"):  # the learning curve (eval_every > 0): first and last dev score
        summary[f"dev_{result.curve['metric']}"] = f"{points[0]['dev_score']:.3f} -> {points[-1]['dev_score']:.3f}"
    elif note := result.curve.get("note"):
        summary["warning"] = "; ".join(filter(None, (summary.get("warning"), note)))
    return summary


def run_evaluate(job: Job, rt: Runtime, tick: Tick) -> dict[str, Any]:
    from transferlab import adapters
    from transferlab.evaluate import evaluate_task, request_count
    from transferlab.tasks import get_task

    p = job.params
    loaded = rt.model(p["model"])
    task = get_task(p["task"])
    examples = task.examples(p["split"])
    if p["eval_examples"]:
        examples = examples[: p["eval_examples"]]
    total = request_count(task, examples)
    done = [0.0]

    def progress(k: float) -> None:
        done[0] += k
        tick(done[0], total, "")

    start = time.perf_counter()
    template = p.get("template", "default")
    with adapters.applied(loaded.model, rt.adapter_dir(p.get("adapter"))) as model:
        result = evaluate_task(model, loaded.tokenizer, task, examples, split=p["split"],
                               batch_size=p.get("batch_size", 16), max_new_tokens=p.get("max_new_tokens") or None,
                               progress=progress, template=template)
    with rt.store.writing("evaluation", job.key, meta=p) as out:
        record = {**result.to_json(), "seconds": time.perf_counter() - start}
        if template != "default":
            record["template"] = template
        (out / "evaluation.json").write_text(json.dumps(record))
    commit_evaluation(job, rt)
    return {task.primary_metric: round(result.mean(task.primary_metric), 4), "n": result.n}


def commit_evaluation(job: Job, rt: Runtime) -> int:
    """Commit an evaluation's score rows (bootstrap CIs) from its stored per-example scores: the
    same path when the job ends and when `results rebuild` recreates a lost table."""
    from transferlab.tasks import get_task

    p = job.params
    task = get_task(p["task"])
    record = rt.store.read_json("evaluation", job.key, "evaluation.json")
    template = record.get("template", "default")  # a non-default template's rows are `template:<name>:<metric>`
    prefix = "" if template == "default" else f"template:{template}:"
    rows = []
    for metric in task.metrics:
        weights = (record.get("weights") or {}).get(metric)
        est = bootstrap_mean(record["scores"][metric], rt.bootstrap, seed=0, weights=weights)
        rows.append(ResultRow(model=p["model"], learner=p.get("learner") or NONE, trained_on=p.get("trained_on") or NONE,
                              evaluated_on=task.name, condition=p["condition"], seed=p["seed"], metric=prefix + metric,
                              value=est.value, n=est.n, ci_low=est.ci_low, ci_high=est.ci_high))
    return rt.store.add_results(rows)
