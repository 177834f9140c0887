"""Plan a translation study: audit the tasks, key the anchors, every translation and every
evaluation the experiments need (the dry run's estimate is the engine's, `engine.estimate`).

Phase 1 jobs train the anchor adapters on both models and evaluate base_Y and the oracles;
phase 2 jobs translate (fit a method on its anchors, predict the held-out task's adapter for
model Y) and evaluate the translated adapters. Every key is a hash of what determines it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from transferlab import models
from transferlab.engine.audit import audit_tasks
from transferlab.engine.adapter_jobs import evaluate_key
from transferlab.engine.jobs import Job
from transferlab.engine.workload import split_count
from transferlab.errors import TransferlabError
from transferlab.tasks import stable_hash
from transferlab.translation import jobs as translation_jobs
from transferlab.translation.anchors import Anchor, anchor_set
from transferlab.translation.experiments import Translation, plan_translations
from transferlab.translation.spec import TranslationSpec

VERSION = 1  # bump when a translator's output changes for the same inputs: it is part of every key
TRANSLATE_SECONDS = 2.0  # one translation (fit a method on its anchors, predict, write the adapter), on a CPU


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
        return evaluate_key(self.identity[side], adapter, self.fingerprints[task], self.spec.eval_split,
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

    def translate_jobs(self) -> list[Job]:
        """One `translate` job per distinct translation key."""
        anchor_keys = {side: {t: a.key for t, a in self.anchors[side].items()} for side in ("x", "y")}
        sides = {"x": self.spec.model_x, "y": self.spec.model_y}
        jobs = [translation_jobs.translate_job(self.keys[tr], tr, sides, anchor_keys) for tr in self.translations]
        return list({j.key: j for j in jobs}.values())

    def translated_jobs(self, failed: dict[str, str]) -> list[Job]:
        jobs = []
        for tr in self.translations:
            key = self.keys[tr]
            if tr.evaluate and key not in failed:
                jobs.append(self.eval_job(tr.target, tr.held_out, key, tr.label, "translated",
                                          f"eval {tr.label} on {tr.held_out} ({self.model(tr.target)})"))
        return list({j.key: j for j in jobs}.values())


def make_plan(spec: TranslationSpec, tasks: list[str] | None = None, load: bool = True) -> StudyPlan:
    """Audit the tasks, key the anchors and every translation the experiments need (with `load`
    false, a dry run's plan: hub tasks are not loaded and the keys of their jobs are provisional)."""
    fingerprints, audit = audit_tasks(spec.tasks, spec.eval_split, load=load)
    for t in spec.tasks:
        if t in fingerprints and not split_count(t, "train", load):
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
