"""`transferlab run` for `study: translation` specs: anchors, translations, evaluations, report.

    transferlab run experiments/translation.yaml            # runs (or resumes) and writes the report
    transferlab run experiments/translation.yaml --dry-run  # the plan and a cost estimate, nothing runs

Four phases, each resumable because every output is keyed by what determines it:
1. train the anchor adapters on both models, evaluate base_Y and the oracles (executor jobs);
2. translate: fit each method on its anchors, predict, write a PEFT adapter for Y (inline:
   seconds per translation);
3. evaluate the translated adapters with model Y (executor jobs);
4. summarise into the tidy results table and the experiment tables, then draw the report.
A killed run redoes only the job in flight.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from transferlab import models
from transferlab.errors import TransferlabError
from transferlab.engine.execute import LocalExecutor
from transferlab.engine.jobs import Job, Runtime
from transferlab.engine.audit import audit_tasks, write_audit
from transferlab.engine.store import Store, check_writable
from transferlab.tasks import get_task, stable_hash
from transferlab.translation.anchors import Anchor, anchor_set, load_anchors
from transferlab.translation.experiments import Translation, plan_translations
from transferlab.translation.features import (
    AdapterStack,
    LoraAdapter,
    base_weights,
    update_cosines,
)
from transferlab.translation.protocol import translate
from transferlab.translation.spec import TranslationSpec, load_translation_spec

VERSION = 1  # bump when a translator's output changes for the same inputs: it is part of every key
# Rough CPU cost, measured on the shared 2-core machine (fp32, one thread): seconds per parameter
# for one training example-step, and per parameter and character of an evaluated example
# (its prompt plus four times its choices: continuations cost more than context). Only the
# dry run's estimate uses them.
TRAIN_S_PER_PARAM = 4e-9
EVAL_S_PER_PARAM_CHAR = 8e-12


@dataclass
class StudyPlan:
    """Everything the study will do, with the store key of each output."""

    spec: TranslationSpec
    tasks: list[str]
    fingerprints: dict[str, str]
    audit: dict[str, str]
    identity: dict[str, str]  # "x"/"y" -> model identity
    anchors: dict[str, dict[str, Anchor]]  # "x"/"y" -> task -> anchor
    translations: list[Translation] = field(default_factory=list)
    keys: dict[Translation, str] = field(default_factory=dict)

    def model(self, side: str) -> str:
        return self.spec.model_x if side == "x" else self.spec.model_y

    def eval_key(self, side: str, task: str, adapter: str | None) -> str:
        """The same key the transfer study uses for an evaluation, so stores can be shared."""
        b = self.spec.budgets
        return stable_hash("evaluate", self.identity[side], adapter, self.fingerprints[task], self.spec.eval_split,
                           b.eval_examples, b.max_new_tokens)

    def eval_job(self, side: str, task: str, adapter: str | None, learner: str, condition: str, label: str) -> Job:
        b = self.spec.budgets
        params = {"model": self.model(side), "task": task, "split": self.spec.eval_split,
                  "eval_examples": b.eval_examples, "max_new_tokens": b.max_new_tokens,
                  "batch_size": b.eval_batch_size, "seed": self.spec.seed, "adapter": adapter, "learner": learner,
                  "trained_on": task if adapter else None, "condition": condition}
        return Job("evaluate", self.eval_key(side, task, adapter), params, deps=(adapter,) if adapter else (),
                   label=label)

    def matrix_tasks(self) -> list[str]:
        m = self.spec.matrix
        return [t for t in (m.tasks or self.tasks) if t in self.tasks] if m else []

    def first_jobs(self) -> list[Job]:
        """Per task: both anchor trainings, base_Y and the oracle (so oracle gains show early);
        then model X's evaluations for the matrix."""
        jobs = []
        for t in self.tasks:
            jobs += [self.anchors["x"][t].job, self.anchors["y"][t].job]
            jobs.append(self.eval_job("y", t, None, "-", "baseline", f"eval base {self.spec.model_y} on {t}"))
            jobs.append(self.eval_job("y", t, self.anchors["y"][t].key, "oracle", "oracle",
                                      f"eval oracle {self.spec.model_y} adapter on {t}"))
        for t in self.matrix_tasks():
            jobs.append(self.eval_job("x", t, None, "-", "baseline", f"eval base {self.spec.model_x} on {t}"))
            jobs.append(self.eval_job("x", t, self.anchors["x"][t].key, "oracle", "oracle",
                                      f"eval {self.spec.model_x} adapter on {t}"))
        return list({j.key: j for j in jobs}.values())

    def translated_jobs(self, failed: dict[str, str]) -> list[Job]:
        jobs = []
        for tr in self.translations:
            key = self.keys[tr]
            if tr.evaluate and key not in failed:
                jobs.append(self.eval_job(tr.target, tr.held_out, key, tr.label, "translated",
                                          f"eval {tr.label} on {tr.held_out} ({self.model(tr.target)})"))
        return list({j.key: j for j in jobs}.values())


def make_plan(spec: TranslationSpec, tasks: list[str] | None = None) -> StudyPlan:
    """Audit the tasks, key the anchors and every translation the experiments need."""
    fingerprints, audit = audit_tasks(spec.tasks, spec.eval_split)
    for t in spec.tasks:
        if t in fingerprints and not get_task(t).examples("train"):
            audit[t] = "no train examples: an anchor needs training data"
    chosen = [t for t in (tasks or spec.tasks) if t in fingerprints and t not in audit]
    if len(chosen) < 4:
        raise TransferlabError(f"only {len(chosen)} anchor tasks loaded ({', '.join(chosen) or 'none'}): "
                               "leave-one-task-out needs at least 4; see the audit for the others")
    identity = {side: models.model_identity(models.resolve(name))
                for side, name in (("x", spec.model_x), ("y", spec.model_y))}
    anchors = {side: anchor_set(name, identity[side], chosen, fingerprints, dataclasses.replace(spec.anchor, seed=spec.seed),
                                spec.budgets.train_examples)
               for side, name in (("x", spec.model_x), ("y", spec.model_y))}
    plan = StudyPlan(spec, chosen, fingerprints, audit, identity, anchors)
    plan.translations = plan_translations(spec, chosen)
    for tr in plan.translations:
        src, dst = tr.source, tr.target
        plan.keys[tr] = stable_hash("translate", VERSION, tr.method, tr.params, [anchors[src][t].key for t in tr.anchors],
                                    [anchors[dst][t].key for t in tr.anchors], anchors[src][tr.held_out].key,
                                    identity[dst])
    return plan


def estimate_seconds(plan: StudyPlan) -> dict[str, float]:
    """A rough CPU estimate of each phase, from parameter counts (read from the config, no weights loaded)."""
    spec = plan.spec
    params = {side: _parameter_count(plan.model(side)) for side in ("x", "y")}
    config = spec.anchor
    steps = config.steps or max(1, int(config.epochs * spec.budgets.train_examples / config.batch_size))
    train = sum(len(plan.anchors[s]) * steps * config.batch_size * params[s] * TRAIN_S_PER_PARAM for s in ("x", "y"))
    requests = {}  # characters scored per evaluation of each task
    for t in plan.tasks:
        examples = get_task(t).examples(spec.eval_split)[: spec.budgets.eval_examples or None]
        requests[t] = sum(len(e.prompt) + 4 * sum(len(c) for c in e.choices) for e in examples)
    evals = {"first": 0.0, "translated": 0.0}
    for job in plan.first_jobs():
        if job.kind == "evaluate":
            side = "x" if job.params["model"] == spec.model_x else "y"
            evals["first"] += requests[job.params["task"]] * params[side] * EVAL_S_PER_PARAM_CHAR
    for job in plan.translated_jobs({}):
        side = "x" if job.params["model"] == spec.model_x else "y"
        evals["translated"] += requests[job.params["task"]] * params[side] * EVAL_S_PER_PARAM_CHAR
    return {"train": train, "evaluate": evals["first"] + evals["translated"], "translate": 2.0 * len(plan.keys)}


def _parameter_count(name: str) -> float:
    ref = models.resolve(name)
    where = Path(models.model_dir(ref))
    size = sum(f.stat().st_size for f in where.glob("*.safetensors"))
    return size / 4 if size else 1e8  # fp32 checkpoints; a hub id without a local copy gets a guess


def describe(plan: StudyPlan) -> str:
    first = plan.first_jobs()
    trainings = sum(j.kind == "train" for j in first)
    by_experiment: dict[str, int] = {}
    for tr in plan.translations:
        by_experiment[tr.experiment] = by_experiment.get(tr.experiment, 0) + 1
    translated = len(plan.translated_jobs({}))
    return (f"{len(plan.tasks)} anchor tasks over {len(plan.spec.domains)} domains; {trainings} anchor trainings "
            f"({plan.spec.model_x} and {plan.spec.model_y}), {len(first) - trainings} base/oracle evaluations, "
            f"{len(set(plan.keys.values()))} translations ("
            + ", ".join(f"{k} {v}" for k, v in by_experiment.items()) + f"), {translated} translated evaluations")


class TranslationBuilder:
    """Phase 2: builds each planned translation once, into the store, with its diagnostics."""

    def __init__(self, plan: StudyPlan, store: Store, runtime: Runtime, console: Console):
        self.plan, self.store, self.runtime, self.console = plan, store, runtime, console
        self.adapters: dict[str, dict[str, LoraAdapter]] = {}
        self.weights: dict[str, Any] = {}
        self.built = 0

    def side(self, side: str) -> dict[str, LoraAdapter]:
        if side not in self.adapters:
            anchors = [self.plan.anchors[side][t] for t in self.plan.tasks]
            loaded = load_anchors(self.store, anchors, self.plan.model(side))
            self.adapters[side] = {a.name: a for a in loaded}
        return self.adapters[side]

    def base_weights(self, side: str) -> Any:
        if side not in self.weights:
            adapters = self.side(side)
            tensors = next(iter(adapters.values())).tensors
            self.weights[side] = base_weights(self.runtime.model(self.plan.model(side)).model, tensors)
        return self.weights[side]

    def run(self) -> dict[str, str]:
        """Build every missing translation; returns {key: why} for those that could not be built."""
        failed: dict[str, str] = {}
        done = set()
        for tr in self.plan.translations:
            key = self.plan.keys[tr]
            if key in done or key in failed:
                continue
            if self.store.has("adapter", key):
                done.add(key)
                continue
            try:
                self.build(tr, key)
                done.add(key)
                self.built += 1
            except TransferlabError as err:  # e.g. a pool with fewer anchors than the method needs
                failed[key] = str(err)
                if self.store.job_status(key) != "failed":
                    self.console.print(f"[yellow]not translated[/] {tr.label} for {tr.held_out}: {err}")
                self.store.record_job(key, "translate", "failed", str(err))
        if failed:
            self.console.print(f"{len(failed)} translations not built (reasons in the report)")
        return failed

    def build(self, tr: Translation, key: str) -> None:
        src, dst = self.side(tr.source), self.side(tr.target)
        params = tr.params
        if tr.method == "subspace_projection":
            params = {"weights_X": self.base_weights(tr.source), "weights_Y": self.base_weights(tr.target)}
        anchors_x = [src[t] for t in tr.anchors]
        anchors_y = [dst[t] for t in tr.anchors]
        prediction, seconds = translate(tr.method, params, anchors_x, anchors_y, src[tr.held_out])
        stack = AdapterStack(anchors_y)
        uniform = torch.full((len(stack),), 1.0 / len(stack), dtype=torch.float64)
        mean = {t: stack.combine(t, uniform) for t in stack.tensors}
        agreement = update_cosines(prediction.factors, dst[tr.held_out], mean)
        meta = {"method": tr.method, "params": tr.params, "anchors": list(tr.anchors), "held_out": tr.held_out,
                "source_model": self.plan.model(tr.source), "target_model": self.plan.model(tr.target),
                "seconds": seconds, **agreement,
                **{k: v for k, v in prediction.meta.items() if k != "weights"}, "weights": prediction.meta.get("weights")}
        with self.store.writing("adapter", key, meta={"kind": "translation", "method": tr.method,
                                                      "held_out": tr.held_out}) as out:
            prediction.write(out)
            (out / "translation.json").write_text(json.dumps(meta, indent=1, default=float))
        self.store.record_job(key, "translate", "done", f"{tr.label} for {tr.held_out}", seconds)
        self.console.print(f"[green]translated[/] {tr.label} for {tr.held_out} ({seconds:.1f} s, "
                           f"update cosine {agreement['cosine']:.2f})")


def run_study(spec: TranslationSpec, console: Console | None = None, quiet: bool = False,
              command: str = "") -> Path:
    """Run (or resume) every phase of a translation study; returns the output directory."""
    console = console or Console(stderr=True)
    start = time.perf_counter()
    if spec.threads:
        import torch

        torch.set_num_threads(spec.threads)
    output = Path(spec.output)
    check_writable(output)
    store = Store(output)
    plan = make_plan(spec)
    write_audit(output, plan.audit)
    for task, why in plan.audit.items():
        console.print(f"[yellow]left out[/] task {task}: {why}")
    (output / "spec.json").write_text(json.dumps(dataclasses.asdict(spec), indent=1, default=str))
    console.print(f"plan: {describe(plan)}")
    runtime = Runtime(store, device=spec.device, dtype=spec.dtype, bootstrap=spec.bootstrap)
    executor = LocalExecutor(console, quiet=quiet)
    first = executor.run(plan.first_jobs(), runtime)
    broken = {a.task: f"anchor training on {a.model} failed: {first.failed.get(a.key) or first.skipped.get(a.key)}"
              for side in ("x", "y") for a in plan.anchors[side].values()
              if a.key in first.failed or a.key in first.skipped}
    if broken:  # the run goes on without those tasks, and says so
        plan = make_plan(spec, [t for t in plan.tasks if t not in broken])
        plan.audit.update(broken)
        write_audit(output, plan.audit)
    builder = TranslationBuilder(plan, store, runtime, console)
    failed = builder.run()
    second = executor.run(plan.translated_jobs(failed), runtime)
    from transferlab.translation.summary import summarise

    _write_layout(plan, store, output)
    summarise(plan, store, output, failed)
    wall = time.perf_counter() - start
    _record_run(output, {"command": command, "wall_seconds": round(wall, 1),
                         "jobs_run": len(first.done) + len(second.done), "jobs_reused": len(first.reused) + len(second.reused),
                         "jobs_failed": len(first.failed) + len(second.failed), "translations_built": builder.built,
                         "translations_not_built": len(failed)})
    from transferlab.translation.report import write_report

    written = write_report(output)
    console.print(f"report: {written[0]} ({wall:.0f} s)")
    return output


def _write_layout(plan: StudyPlan, store: Store, output: Path) -> None:
    """Depth and the shape of each adapted module on both models (for the report)."""
    layout = {}
    for side in ("x", "y"):
        anchor = next((a for a in plan.anchors[side].values() if store.has("adapter", a.key)), None)
        if anchor is None:
            continue
        adapter = load_anchors(store, [anchor], plan.model(side))[0]
        shapes = {m: list(adapter.B[(0, m)].shape[:1]) + list(adapter.A[(0, m)].shape[1:]) for m in adapter.target_modules}
        layout[plan.model(side)] = {"layers": adapter.n_layers, "rank": adapter.rank, "shapes": shapes}
    (output / "tables").mkdir(exist_ok=True)
    (output / "tables" / "layout.json").write_text(json.dumps(layout, indent=1))


def _record_run(output: Path, record: dict[str, Any]) -> None:
    """Append this invocation to run.json: the report quotes the command and the wall time."""
    path = output / "run.json"
    runs = json.loads(path.read_text()) if path.exists() else []
    runs.append({**record, "finished": time.strftime("%Y-%m-%d %H:%M:%S")})
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(runs, indent=1))
    os.replace(tmp, path)


def run_spec(path: Path, output: Path | None = None, dry_run: bool = False, console: Any = None) -> Path | None:
    """`transferlab run SPEC` for `study: translation`: the plan and estimate (dry run), or the study."""
    import sys

    console = console or Console(stderr=True)
    spec = load_translation_spec(path)
    if output:
        spec = dataclasses.replace(spec, output=str(output))
    if dry_run:
        plan = make_plan(spec)
        console.print(f"plan: {describe(plan)}")
        for task, why in plan.audit.items():
            console.print(f"  [yellow]left out[/] {task}: {why}")
        cost = estimate_seconds(plan)
        console.print("estimate (CPU, fp32; nothing cached counted as done): " +
                      ", ".join(f"{k} ~{v / 60:.0f} min" for k, v in cost.items()) +
                      f", total ~{sum(cost.values()) / 60:.0f} min")
        for job in plan.first_jobs():
            console.print(f"  {job.kind:8s} {job.key}  {job.label}")
        for tr in plan.translations:
            console.print(f"  translate {plan.keys[tr]}  {tr.experiment}: {tr.label} for {tr.held_out}"
                          f" ({len(tr.anchors)} anchors{', not evaluated' if not tr.evaluate else ''})")
        return None
    command = " ".join(["transferlab", *sys.argv[1:]]) if sys.argv and "transferlab" in sys.argv[0] else f"transferlab run {path}"
    return run_study(spec, console, command=command)
