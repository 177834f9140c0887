"""Turn a spec into jobs: train once per source, evaluate every adapter and the base on every target.

N sources and M targets cost N trainings and (N + 1) x M evaluations per model, seed
and learner (an `external` learner's K adapters, made elsewhere, cost K imports into the
store and K x M evaluations, at the first seed only: they are not trained per seed), times the number of prompt templates (`prompt_templates`: each extra template
scores every (base or adapter, target) again, framed that way; training always uses the
default). Tasks whose data fails to load are written to an audit file and left out.
The evaluations of one target share passes over its data (`engine.evaluate_groups`; the
`eval_adapters_per_pass` budget, 1 = one at a time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from transferlab import models
from transferlab.errors import TransferlabError
from transferlab.engine.audit import audit_tasks
from transferlab.engine.adapter_jobs import evaluate_key, train_key
from transferlab.engine.evaluate_groups import group_evaluations
from transferlab.engine.external_adapters import check_fits, content_key, import_job
from transferlab.engine.jobs import Job
from transferlab.engine.workload import split_count
from transferlab.learn.defaults import default_learning_rate
from transferlab.transfer.spec import Learner, Spec
from transferlab.tasks import get_task, stable_hash


@dataclass(frozen=True)
class Cell:
    """One (model, learner, trained_on, evaluated_on, condition, seed) cell and the evaluations behind it."""

    model: str
    learner: str | None
    trained_on: str | None
    evaluated_on: str
    condition: str
    seed: int
    evaluation: str  # key of the evaluation artifact of this cell
    baseline: str  # key of the baseline evaluation of the same target
    template: str = "default"  # the prompt template both evaluations framed their questions with


@dataclass
class Plan:
    jobs: list[Job]
    audit: dict[str, str] = field(default_factory=dict)  # task -> why it was left out
    tasks: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    cells: list[Cell] = field(default_factory=list)
    variants: list[Cell] = field(default_factory=list)  # every cell again under each non-default template
    labels: dict[str, str] = field(default_factory=dict)  # trained_on -> nominal label, for the drift analysis

    def count(self, kind: str) -> int:
        return sum(j.kind == kind for j in self.jobs)

    def describe(self) -> str:
        paired = sum(j.kind == "train" and ("init_adapter" in j.params or "joint_with" in j.params) for j in self.jobs)
        extra = f", of which {paired} for sequential/joint pairs" if paired else ""
        templates = len({c.template for c in self.variants}) + 1
        framed = f" x {templates} prompt templates" if self.variants else ""
        imported = f", {self.count('import_adapter')} adapters made elsewhere" if self.count("import_adapter") else ""
        return (f"{self.count('train')} trainings{extra}{imported} and {self.count('evaluate')} evaluations "
                f"({len(self.sources)} sources x {len(self.tasks)} targets{framed})")


def _check_trainable(learner: Learner, source: str, joint: bool = False) -> None:
    if joint and learner.type == "grpo" and learner.backend == "tinker":
        raise TransferlabError(f"learner {learner.name!r} (grpo on Tinker) cannot train the joint condition: "
                               "Tinker's GRPO loop takes one task; train that learner locally or drop `joint`")
    if learner.type == "grpo" and get_task(source).output_type != "generate":
        raise TransferlabError(f"learner {learner.name!r} (grpo) cannot train on {source!r}: it is multiple-choice, "
                               "and GRPO needs a generation task with a scorer as reward (gsm8k, ifeval, humaneval, "
                               "...); use a lora learner for it or remove it from sources")


def plan_transfer(spec: Spec, load: bool = True) -> Plan:
    """The spec's jobs. With `load` false (a dry run) hub tasks are not loaded: their jobs' keys
    are provisional and their published split sizes stand in for their data."""
    names = list(dict.fromkeys([*spec.tasks, *spec.sources, *(t for pair in spec.pairs for t in pair)]))
    fingerprints, audit = audit_tasks(names, spec.eval_split, targets=set(spec.tasks), load=load)
    targets = [t for t in spec.tasks if t in fingerprints]
    trainers = [l for l in spec.learners if l.trains]
    sources = [s for s in spec.sources if s in fingerprints] if trainers else []
    if any(l.backend == "tinker" for l in trainers):
        from transferlab.learn.tinker_weights import check_ready

        check_ready()  # the SDK, the weights helpers and TINKER_API_KEY, before any work
    imports = _imports(spec)  # content keys of the adapters made elsewhere, read once
    for s in sources:
        if not split_count(s, "train", load):
            audit[s] = "no train examples"
    sources = [s for s in sources if s not in audit]
    b = spec.budgets

    def label_of(source: str) -> str:
        return spec.labels.get(source) or get_task(source).domain

    trainings: list[Job] = []
    evaluations: dict[str, Job] = {}
    cells: list[Cell] = []
    framed: dict[str, dict[str, str]] = {}  # default evaluation key -> {template: its key under that template}

    def evaluation(model: str, identity: str, target: str, seed: int, adapter: str | None, learner: str | None,
                   condition: str, source: str | None, who: str = "") -> str:
        params = {"model": model, "task": target, "split": spec.eval_split, "eval_examples": b.eval_examples,
                  "max_new_tokens": b.max_new_tokens, "batch_size": b.eval_batch_size, "seed": seed,
                  "adapter": adapter, "learner": learner, "trained_on": source, "condition": condition}
        if b.eval_batch_tokens:  # how it batches, not what it scores: in params, never in the key
            params["batch_tokens"] = b.eval_batch_tokens
        prompt = spec.prompt.to_json()  # the run's prompt options: in params and key only when not auto
        if prompt:
            params["prompt"] = prompt
        # The baseline is greedy and untrained, so one evaluation serves every seed.
        key = evaluate_key(identity, adapter, fingerprints[target], spec.eval_split, b.eval_examples,
                           b.max_new_tokens, prompt=prompt)
        who = who or (f"{learner} trained on {source}" if adapter else "base model")
        label = f"eval {who} on {target}" + (f" (seed {seed})" if adapter else "")
        evaluations.setdefault(key, Job("evaluate", key, params, deps=(adapter,) if adapter else (), label=label))
        for template in spec.prompt_templates[1:]:  # the same evaluation, each question framed by `template`
            other = evaluate_key(identity, adapter, fingerprints[target], spec.eval_split, b.eval_examples,
                                 b.max_new_tokens, template, prompt=prompt)
            framed.setdefault(key, {})[template] = other
            evaluations.setdefault(other, Job("evaluate", other, {**params, "template": template},
                                              deps=(adapter,) if adapter else (), label=f"{label}, template {template}"))
        return key

    for model_name in spec.models:
        ref = models.resolve(model_name)
        identity = models.model_identity(ref)
        model_type, hidden_size = models.model_shape(ref)
        for seed in spec.seeds:
            baselines = {t: evaluation(model_name, identity, t, seed, None, None, "baseline", None) for t in targets}
            if "baseline" in spec.conditions:
                cells += [Cell(model_name, None, None, t, "baseline", seed, k, k) for t, k in baselines.items()]
            for learner in spec.learners:
                if not learner.trains:
                    if seed == spec.seeds[0]:  # evaluations are greedy: one seed says all
                        cells += _external_cells(learner, model_name, targets, spec.conditions, imports, seed,
                                                 baselines, lambda *a: evaluation(model_name, identity, *a))
                    continue
                train_config = {**learner.train.to_dict(), "seed": seed, "method": learner.type}
                if learner.backend == "tinker":  # only then in the key: local adapters keep theirs
                    train_config.update(backend="tinker", tinker_model=learner.tinker_model or _hub_id(model_name))
                if learner.auto_learning_rate:
                    method = "grpo" if learner.type == "grpo" else "sft"
                    train_config["learning_rate"] = default_learning_rate(model_type, method, hidden_size)
                for source in sources:
                    _check_trainable(learner, source)
                    wanted = {t: ("direct" if t == source else "transfer") for t in targets}
                    wanted = {t: c for t, c in wanted.items() if c in spec.conditions}
                    if not wanted:
                        continue
                    source_key = train_key(identity, fingerprints[source], train_config, b.train_examples)
                    trainings.append(Job("train", source_key, {
                        "model": model_name, "task": source, "train": train_config, "learner": learner.name,
                        "train_examples": b.train_examples, "label": label_of(source)}, label=f"train {learner.name} on {source} (seed {seed})"))
                    for target, condition in wanted.items():
                        key = evaluation(model_name, identity, target, seed, source_key, learner.name, condition, source)
                        cells.append(Cell(model_name, learner.name, source, target, condition, seed, key,
                                          baselines[target]))
                for first, second in spec.pairs:
                    if second not in baselines or first not in fingerprints:
                        continue  # a task of the pair was left out (see the audit)
                    base_params = {"model": model_name, "train": train_config, "learner": learner.name,
                                   "train_examples": b.train_examples}
                    first_key = train_key(identity, fingerprints[first], train_config, b.train_examples)
                    if "sequential" in spec.conditions:
                        trainings.append(Job("train", first_key, {**base_params, "task": first},
                                             label=f"train {learner.name} on {first} (seed {seed})"))
                        seq_key = stable_hash("train", identity, fingerprints[second], train_config, b.train_examples,
                                              "after", first_key)
                        trainings.append(Job("train", seq_key, {**base_params, "task": second, "init_adapter": first_key},
                                             deps=(first_key,),
                                             label=f"train {learner.name} on {first} then {second} (seed {seed})"))
                        label = f"{first}>{second}"
                        key = evaluation(model_name, identity, second, seed, seq_key, learner.name, "sequential", label)
                        cells.append(Cell(model_name, learner.name, label, second, "sequential", seed, key,
                                          baselines[second]))
                    if "joint" in spec.conditions:
                        _check_trainable(learner, second, joint=True)
                        joint_key = stable_hash("train", identity, fingerprints[second], fingerprints[first],
                                                train_config, b.train_examples, "joint")
                        trainings.append(Job("train", joint_key, {**base_params, "task": second, "joint_with": [first]},
                                             label=f"train {learner.name} on {first}+{second} (seed {seed})"))
                        label = f"{first}+{second}"
                        key = evaluation(model_name, identity, second, seed, joint_key, learner.name, "joint", label)
                        cells.append(Cell(model_name, learner.name, label, second, "joint", seed, key,
                                          baselines[second]))
    unique_trainings = list({j.key: j for j in trainings}.values())  # the same adapter is trained once
    variants = [replace(c, template=t, evaluation=framed[c.evaluation][t], baseline=framed[c.baseline][t])
                for c in cells for t in spec.prompt_templates[1:]]
    labels = {s: label_of(s) for s in sources}
    for learner in spec.learners:
        labels.update({a.label: _nominal(a.label) for a in learner.adapters})
    # the base and the adapters on one target (one template, one budget) share a pass over its data
    scored = group_evaluations(list(evaluations.values()), b.eval_adapters_per_pass)
    jobs = [j for _, j in imports.values()] + unique_trainings + scored
    return Plan(list({j.key: j for j in jobs}.values()), audit, targets, sources, cells, variants, labels)


def _imports(spec: Spec) -> dict[str, tuple[str, Job]]:
    """adapter directory -> (store key, import job) for every external adapter, each checked
    against every model of the spec (its recorded base model and its shapes) before any work."""
    out: dict[str, tuple[str, Job]] = {}
    for learner in spec.learners:
        for adapter in learner.adapters:
            for model in spec.models:
                check_fits(Path(adapter.path), model, f"{adapter.source} (learner {learner.name})")
            job = import_job(adapter, content_key(Path(adapter.path)), learner.name)
            out[adapter.path] = (job.key, job)
    return out


def _external_cells(learner: Learner, model: str, targets: list[str], conditions: tuple[str, ...],
                    imports: dict[str, tuple[str, Job]], seed: int, baselines: dict[str, str],
                    evaluation: Callable[..., str]) -> list[Cell]:
    """The cells of adapters made elsewhere: trained_on is the label, `direct` on the target it names."""
    cells = []
    for adapter in learner.adapters:
        key = imports[adapter.path][0]
        for target in targets:
            condition = "direct" if target == adapter.label else "transfer"
            if condition not in conditions:
                continue
            who = f"{learner.name} {adapter.source} ({adapter.label})"
            evaluated = evaluation(target, seed, key, learner.name, condition, adapter.label, who)
            cells.append(Cell(model, learner.name, adapter.label, target, condition, seed, evaluated,
                              baselines[target]))
    return cells


def _nominal(label: str) -> str:
    """What a label says the adapter is for, as the drift analysis reads it: a task's domain, or the label."""
    try:
        return get_task(label).domain
    except TransferlabError:
        return label


def _hub_id(model: str) -> str:
    """The hub id the Tinker service knows a spec model by (a bundled model's, or the id itself)."""
    from transferlab.engine.external_adapters import BUILTIN_HUB_IDS

    ref = models.resolve(model)
    if ref.kind == "hub":
        return ref.location
    if ref.name in BUILTIN_HUB_IDS:
        return BUILTIN_HUB_IDS[ref.name][0]
    raise TransferlabError(f"cannot tell the Tinker service's name for model {model!r}: set tinker_model on the "
                           "learner (e.g. tinker_model: meta-llama/Llama-3.2-1B)")
