"""The `study: translation` spec: models X and Y, anchor tasks by domain, the anchor recipe,
methods and the experiments to run. Errors name the file, line and field.

    study: translation
    model_x: smollm2-135m
    model_y: gemma3-270m
    domains: {truth: [cities, larger_than, ...], stem: [mmlu-math, ...], ...}
    anchor: {rank: 8, alpha: 16, target_modules: [q_proj, v_proj], steps: 12}
    methods: [mean, global_ridge, pertensor_ridge, topk_global_ridge, ...]
    min_effect: 0.05   # smallest oracle − base_Y gain gap_recovered divides by (`gaps`)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transferlab import safe_yaml
from transferlab.errors import TransferlabError, closest
from transferlab.models import resolve
from transferlab.constraints import Interval, Many, Text
from transferlab.engine.spec import (
    COMMON_FIELDS,
    Budgets,
    check_keys,
    check_tasks,
    checked,
    config_from,
    Located,
    name_list,
    parse_budgets,
    register_task_files,
)
from transferlab.engine.tracking import parse_tracking
from transferlab.learn.sft import TrainConfig
from transferlab.translation.gaps import MIN_EFFECT, check_min_effect
from transferlab.translation.translators import TRANSLATORS

DEFAULT_METHODS = ("mean", "global_ridge", "pertensor_ridge", "topk_global_ridge", "topk_pertensor_ridge",
                   "pertensor_mlp", "subspace_projection")


@dataclass(frozen=True)
class Scaling:
    """Experiment 2: how translation improves with the number of anchors and with k."""

    anchor_counts: tuple[int, ...] = (3, 6)  # random anchor pools of these sizes (plus all anchors, from exp. 1)
    top_k: tuple[int, ...] = (2, 4)  # k values for the top-k method (plus the main k)
    method: str = "global_ridge"
    topk_method: str = "topk_global_ridge"
    repeats: int = 1  # random pools per anchor count
    tasks: tuple[str, ...] = ()  # held-out tasks to run (empty = every anchor task)
    evaluate: bool | tuple[str, ...] = True  # evaluate with model Y: all, none, or these held-out tasks
    # (cells not evaluated still get the update-space agreement with the oracle)


@dataclass(frozen=True)
class CrossDomain:
    """Experiment 3: anchor pools restricted to one domain."""

    methods: tuple[str, ...] = ("global_ridge",)
    tasks: tuple[str, ...] = ()
    evaluate: bool | tuple[str, ...] = True


@dataclass(frozen=True)
class Matrix:
    """The cross-model matrix (seed 001): adapters trained on each model applied to each model."""

    tasks: tuple[str, ...] = ()
    method: str = "global_ridge"


@dataclass(frozen=True)
class TranslationSpec:
    name: str
    model_x: str
    model_y: str
    domains: dict[str, tuple[str, ...]]
    anchor: TrainConfig
    methods: tuple[str, ...] = DEFAULT_METHODS
    top_k: int = 8
    mlp: dict[str, Any] = field(default_factory=dict)
    budgets: Budgets = field(default_factory=Budgets)
    scaling: Scaling | None = None  # experiments.scaling (absent = not run)
    cross_domain: CrossDomain | None = None
    matrix: Matrix | None = None
    eval_split: str = "test"
    bootstrap: int = 1000
    min_effect: float = MIN_EFFECT  # oracle − base_Y below this: gap_recovered NA; below twice this: unstable
    seed: int = 0
    threads: int = 0  # torch threads for training/evaluation (0 = torch's default)
    output: str = "runs/translation"
    # a directory of adapters and evaluations shared with other runs (default: in output): an anchor
    # trained with a transfer study's recipe, or a base or oracle evaluation it made, is reused
    artifacts: str | None = None
    task_files: tuple[str, ...] = ()
    device: str = "auto"
    dtype: str = "auto"
    tracking: Any = None  # engine.tracking.Tracking: MLflow / W&B logging, only when the spec asks
    source_file: str = "<spec>"

    @property
    def tasks(self) -> list[str]:
        return [t for ts in self.domains.values() for t in ts]

    def domain_of(self, task: str) -> str:
        return next(d for d, ts in self.domains.items() if task in ts)


TOP = {f.name for f in dataclasses.fields(TranslationSpec)} - {"source_file", "scaling", "cross_domain", "matrix"} | {
    "study", "experiments"}
SUB = {"scaling": Scaling, "cross_domain": CrossDomain, "matrix": Matrix}
# The declared types and bounds of the fields (`transferlab.constraints`); name, output, device... are COMMON_FIELDS.
FIELDS: dict[str, Any] = {"model_x": Text(empty=False), "model_y": Text(empty=False), "top_k": Interval(int, 3, 1000),
                          "seed": Interval(int, 0), "threads": Interval(int, 0, 1024)}
MLP_FIELDS: dict[str, Any] = {"hidden": Interval(int, 1, 65536), "steps": Interval(int, 1, 1_000_000),
                              "learning_rate": Interval(float, 0, None, closed="neither"),
                              "weight_decays": Many(Interval(float, 0)), "seed": Interval(int, 0)}


def load_translation_spec(path: str | Path) -> TranslationSpec:
    return parse_translation_spec(safe_yaml.read_text(path, "spec file"), str(path))


def parse_translation_spec(text: str, filename: str = "<spec>") -> TranslationSpec:
    at = Located(filename, text)
    data = at.data or {}
    if not isinstance(data, dict):
        raise at.error((), "a spec is a mapping of fields (study, model_x, model_y, domains, ...)")
    check_keys(data, TOP, (), at)
    data = checked(data, {**COMMON_FIELDS, **FIELDS}, at)
    if data.get("study") != "translation":
        raise at.error(("study",), f"this parser reads `study: translation` specs, got {data.get('study')!r}")
    for required in ("model_x", "model_y", "domains"):
        if required not in data:
            raise at.error((), f"missing required field {required!r}")
    base = Path(filename).parent
    files = data.get("task_files") or []
    task_files = tuple(f if Path(f).is_absolute() else str((base / f).resolve())
                       for f in (name_list(files, ("task_files",), at) if files else ()))
    register_task_files(task_files, at)
    models = (data["model_x"], data["model_y"])
    for key, name in zip(("model_x", "model_y"), models):
        try:
            resolve(name)
        except TransferlabError as err:
            raise at.error((key,), str(err)) from None
    if models[0] == models[1]:
        raise at.error(("model_y",), "model_y must differ from model_x: translation maps between two models")
    domains = _domains(data["domains"], at)
    anchor = _anchor(data.get("anchor", {}) or {}, at)
    methods = name_list(data.get("methods", list(DEFAULT_METHODS)), ("methods",), at)
    for i, m in enumerate(methods):
        _check_method(m, ("methods", i), at)
    top_k = data.get("top_k", 8)
    n_tasks = sum(len(v) for v in domains.values())
    if top_k > n_tasks - 1 and any(m.startswith("topk") for m in methods):
        raise at.error(("top_k",), f"top_k={top_k} needs at least {top_k + 1} anchor tasks (one is held out), "
                                   f"the domains list {n_tasks}")
    mlp = data.get("mlp", {}) or {}
    if not isinstance(mlp, dict):
        raise at.error(("mlp",), "expected a mapping such as {hidden: 16, steps: 300}")
    check_keys(mlp, set(MLP_FIELDS), ("mlp",), at)
    mlp = checked(mlp, MLP_FIELDS, at, ("mlp",))
    budgets = parse_budgets(data.get("budgets"), at)
    experiments = data.get("experiments", {}) or {}
    if not isinstance(experiments, dict):
        raise at.error(("experiments",), "expected a mapping with scaling, cross_domain and/or matrix")
    check_keys(experiments, set(SUB), ("experiments",), at)
    subs = {name: _sub(name, experiments[name], domains, at) if name in experiments else None for name in SUB}
    split = data.get("eval_split", "test")
    if split not in ("dev", "test"):
        raise at.error(("eval_split",), f"eval_split must be 'dev' or 'test', got {split!r}")
    try:
        min_effect = check_min_effect(data.get("min_effect", MIN_EFFECT))
    except TransferlabError as err:
        raise at.error(("min_effect",), str(err)) from None
    return TranslationSpec(
        name=data.get("name", Path(filename).stem), model_x=models[0], model_y=models[1], domains=domains,
        anchor=anchor, methods=methods, top_k=top_k, mlp=dict(mlp), budgets=budgets,
        scaling=subs["scaling"], cross_domain=subs["cross_domain"], matrix=subs["matrix"], eval_split=split,
        bootstrap=data.get("bootstrap", 1000), min_effect=min_effect, seed=data.get("seed", 0),
        threads=data.get("threads", 0), output=data.get("output", f"runs/{Path(filename).stem}"), task_files=task_files,
        artifacts=str(data["artifacts"]) if data.get("artifacts") else None,
        device=data.get("device", "auto"), dtype=data.get("dtype", "auto"),
        tracking=parse_tracking(data.get("tracking"), at), source_file=filename)


def _check_method(name: Any, path: tuple[Any, ...], at: Located) -> None:
    if name not in TRANSLATORS:
        near = closest(str(name), TRANSLATORS)
        hint = f"did you mean {near[0]!r}?" if near else f"valid: {', '.join(TRANSLATORS)}"
        raise at.error(path, f"unknown translation method {name!r}: {hint}")


def _domains(value: Any, at: Located) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict) or not value:
        raise at.error(("domains",), "expected a mapping of domain -> list of anchor tasks, "
                                     "e.g. {truth: [cities, larger_than], stem: [mmlu-math]}")
    out, seen = {}, {}
    for domain, tasks in value.items():
        names = name_list(tasks, ("domains", domain), at)
        check_tasks(names, ("domains", domain), at)
        for i, t in enumerate(names):
            if t in seen:
                raise at.error(("domains", domain, i), f"task {t!r} is already in domain {seen[t]!r}: "
                                                        "a task belongs to one domain")
            seen[t] = domain
        out[str(domain)] = names
    if len(seen) < 4:
        raise at.error(("domains",), f"leave-one-task-out with a learned translator needs at least 4 anchor tasks, "
                                     f"got {len(seen)}")
    return out


def _anchor(value: Any, at: Located) -> TrainConfig:
    if not isinstance(value, dict):
        raise at.error(("anchor",), "expected a mapping of LoRA training settings, e.g. {rank: 8, steps: 20}")
    return config_from(TrainConfig, value, ("anchor",), at)


def _sub(name: str, value: Any, domains: dict[str, tuple[str, ...]], at: Located) -> Any:
    cls = SUB[name]
    if value is False or value is None:
        return None
    if value is True:
        value = {}
    if not isinstance(value, dict):
        raise at.error(("experiments", name), "expected a mapping of settings, true, or false")
    check_keys(value, {f.name for f in dataclasses.fields(cls)}, ("experiments", name), at)
    kwargs: dict[str, Any] = {}
    all_tasks = {t for ts in domains.values() for t in ts}
    for key, item in value.items():
        path = ("experiments", name, key)
        if key in ("anchor_counts", "top_k"):
            if not isinstance(item, list) or not all(isinstance(v, int) and v >= 3 for v in item):
                raise at.error(path, "expected a list of integers >= 3 (a ridge chosen by leave-one-out needs 3)")
            kwargs[key] = tuple(item)
        elif key in ("tasks",):
            names = name_list(item, path, at)
            for i, t in enumerate(names):
                if t not in all_tasks:
                    raise at.error((*path, i), f"{t!r} is not one of the anchor tasks listed under domains")
            kwargs[key] = names
        elif key in ("method", "topk_method"):
            _check_method(item, path, at)
            kwargs[key] = item
        elif key == "methods":
            names = name_list(item, path, at)
            for i, m in enumerate(names):
                _check_method(m, (*path, i), at)
            kwargs[key] = names
        elif key == "evaluate":
            if isinstance(item, list):
                names = name_list(item, path, at)
                for i, t in enumerate(names):
                    if t not in all_tasks:
                        raise at.error((*path, i), f"{t!r} is not one of the anchor tasks listed under domains")
                kwargs[key] = names
            elif isinstance(item, bool):
                kwargs[key] = item
            else:
                raise at.error(path, f"expected true, false or a list of held-out tasks, got {item!r}")
        elif key == "repeats":
            if not isinstance(item, int) or item < 1:
                raise at.error(path, f"expected a positive integer, got {item!r}")
            kwargs[key] = item
    return cls(**kwargs)
