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
                 max_new_tokens: int, template: str = "default", prompt: dict[str, str] | None = None) -> str:
    """The store key of an evaluation (base model when `adapter` is None), shared by every study.

    A prompt template other than `default`, and prompt options other than auto
    (`tasks.prompts.PromptOptions.to_json`), are part of the key; the defaults add nothing, so
    evaluations stored before templates and options existed keep their keys.
    """
    extra: tuple = () if template == "default" else (("template", template),)
    if prompt:
        extra += (("prompt", prompt),)
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
    if settings.pop("backend", "local") == "tinker":
        return _train_on_tinker(job, rt, tick, settings, method, loaded, task, examples, also)
    from transferlab.learn.resume import Checkpoints

    resume = Checkpoints(rt.store.resume_dir(job.key))  # a killed run goes on from here
    with rt.store.writing("adapter", job.key, meta=p) as out:
        if method == "lora":
            from transferlab.learn.sft import TrainConfig, train_lora

            config = TrainConfig(**settings)
            total = config.steps or None
            result = train_lora(loaded, task, examples, config, out, init_adapter=init, also=also, resume=resume,
                                progress=lambda step, loss: tick(step, total or step, f"loss {loss:.3f}"))
        elif method == "grpo":
            from transferlab.learn.grpo import GRPOConfig, train_grpo

            config = GRPOConfig(**settings)
            result = train_grpo(loaded, task, examples, config, out, init_adapter=init, also=also, resume=resume,
                                progress=lambda step, reward: tick(step, config.steps, f"reward {reward:.3f}"))
        else:
            raise TransferlabError(f"unknown training method {method!r} in job {job.key}")
        count = len(examples) + sum(len(ex) for _, ex in also)
        resumed = {"resumed_at_step": resume.resumed_at} if resume.resumed_at else {}
        (out / "training.json").write_text(json.dumps({**result.to_json(), "examples": count, **resumed}))
    rt.store.drop_resume(job.key)  # the adapter is stored: done with its checkpoints
    return {**_summary(result), **resumed}


def _summary(result: Any) -> dict[str, Any]:
    """What a finished training reports: steps, speed, the last loss or reward, warnings."""
    from transferlab.learn.grpo import signal_warning

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


def _train_on_tinker(job: Job, rt: Runtime, tick: Tick, settings: dict[str, Any], method: str, loaded: Any,
                     task: Any, examples: list, also: list) -> dict[str, Any]:
    """A `backend: tinker` training: the steps on the service, then its weights downloaded and
    converted to a PEFT adapter for the local model, stored like a local one (`learn.tinker_weights`)."""
    from transferlab.engine.external_adapters import model_directory
    from transferlab.learn.grpo import GRPOConfig
    from transferlab.learn.sft import TrainConfig
    from transferlab.learn.tinker_weights import check_ready, train_to_adapter

    check_ready()
    p = job.params
    tinker_model = settings.pop("tinker_model")
    config = GRPOConfig(**settings) if method == "grpo" else TrainConfig(**settings)
    init_state = None
    if p.get("init_adapter"):  # sequential: continue from the first run's state on the service
        init_state = rt.store.read_json("adapter", p["init_adapter"], "training.json").get("state_path")
        if not init_state:
            raise TransferlabError(f"adapter {p['init_adapter']} was not trained on Tinker: sequential training on "
                                   "Tinker continues from a Tinker run")
    total = config.steps or None
    with rt.store.writing("adapter", job.key, meta=p) as out:
        run = train_to_adapter(loaded, model_directory(p["model"]), task, examples, config, method, tinker_model, out,
                               name=f"transferlab-{job.key}", init_state=init_state, also=also,
                               progress=lambda step, value: tick(step, total or step, f"{value:.3f}"))
        count = len(examples) + sum(len(ex) for _, ex in also)
        (out / "training.json").write_text(json.dumps({**run.to_json(), "examples": count}))
    return {**_summary(run.result), "backend": "tinker", "sampler_path": run.sampler_path}


def run_evaluate(job: Job, rt: Runtime, tick: Tick) -> dict[str, Any]:
    """Score a model (with its adapter, if any) on a target; a job marked with its group
    (`engine.evaluate_groups`) shares one pass with its peers and ends exactly as if alone."""
    from transferlab import adapters
    from transferlab.engine.evaluate_groups import PEERS, grouped_result, own_params
    from transferlab.engine.evaluation_chunks import in_chunks
    from transferlab.evaluate import evaluate_task, request_count
    from transferlab.multi_adapter import evaluate_many, many_request_count
    from transferlab.tasks import get_task
    from transferlab.tasks.prompts import PromptOptions

    p = job.params
    task = get_task(p["task"])
    examples = task.examples(p["split"])
    if p["eval_examples"]:
        examples = examples[: p["eval_examples"]]
    template = p.get("template", "default")
    options = dict(split=p["split"], batch_size=p.get("batch_size", 16), max_new_tokens=p.get("max_new_tokens") or None,
                   template=template, prompt=PromptOptions.from_json(p.get("prompt")),
                   batch_tokens=p.get("batch_tokens") or None)

    def counted(total: int) -> Any:
        done = [0.0]

        def progress(k: float) -> None:
            done[0] += k
            tick(done[0], total, "")
        return progress

    resume = rt.store.resume_dir(job.key)  # the chunks scored so far (engine.evaluation_chunks)
    peer_keys = {rt.adapter_dir(peer.get("adapter")): peer["key"] for peer in p.get(PEERS, ())}

    def together(dirs: list) -> list:
        loaded = rt.model(p["model"])
        progress = counted(many_request_count(task, examples, dirs))
        members = [job.key, *(peer_keys[d] for d in dirs[1:])]  # each keeps its chunks until it is stored
        return in_chunks(examples, [rt.store.resume_dir(key) for key in members],
                         lambda chunk: evaluate_many(loaded.model, loaded.tokenizer, task, chunk, dirs,
                                                     progress=progress, **options),
                         skipped=lambda chunk: progress(many_request_count(task, chunk, dirs)))

    start = time.perf_counter()
    shared = grouped_result(job, rt, together)
    if shared is None:
        loaded = rt.model(p["model"])
        progress = counted(request_count(task, examples))
        with adapters.applied(loaded.model, rt.adapter_dir(p.get("adapter"))) as model:
            (result,) = in_chunks(examples, [resume],
                                  lambda chunk: [evaluate_task(model, loaded.tokenizer, task, chunk,
                                                               progress=progress, **options)],
                                  skipped=lambda chunk: progress(request_count(task, chunk)))
        seconds, size = None, 1
    else:
        result, seconds, size = shared
    with rt.store.writing("evaluation", job.key, meta=own_params(p)) as out:
        record = {**result.to_json(), "seconds": time.perf_counter() - start if seconds is None else seconds}
        if template != "default":
            record["template"] = template
        (out / "evaluation.json").write_text(json.dumps(record))
    rt.store.drop_resume(job.key)
    commit_evaluation(job, rt)
    summary: dict[str, Any] = {task.primary_metric: round(result.mean(task.primary_metric), 4), "n": result.n}
    if size > 1:
        summary["one_pass_with"] = size - 1  # the other evaluations scored in the same pass
    return summary


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
