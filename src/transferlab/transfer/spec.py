"""Transfer specs: a YAML file that says which models, tasks, learners, conditions and budgets to run.

Every error names the file, the line and the field, and suggests the closest valid name
(through the shared helpers of `engine.spec`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transferlab import safe_yaml
from transferlab.engine.spec import (
    Budgets,
    Located,
    SpecError,  # noqa: F401  (re-exported: `from transferlab.transfer.spec import SpecError`)
    check_keys,
    check_models,
    check_tasks,
    COMMON_FIELDS,
    checked,
    name_list,
    parse_budgets,
    register_task_files,
)
from transferlab.constraints import Interval
from transferlab.engine.tracking import parse_tracking
from transferlab.errors import TransferlabError, closest
from transferlab.tasks.prompts import OPTION_FIELDS, PromptOptions
from transferlab.transfer.learners import LEARNER_TYPES, Learner, parse_learners  # noqa: F401  (re-exported)

CONDITIONS = ("baseline", "transfer", "direct", "sequential", "joint")
DEFAULT_CONDITIONS = ("baseline", "transfer", "direct")
PAIRED_CONDITIONS = ("sequential", "joint")  # one extra training per (A, B) pair: opt-in via `pairs`


SEED = Interval(int, 0, 2**32 - 1)


@dataclass(frozen=True)
class Spec:
    name: str
    models: tuple[str, ...]
    tasks: tuple[str, ...]
    sources: tuple[str, ...]
    learners: tuple[Learner, ...]
    conditions: tuple[str, ...] = DEFAULT_CONDITIONS
    pairs: tuple[tuple[str, str], ...] = ()  # (A, B) pairs for sequential (A then B) and joint (A + B) training
    seeds: tuple[int, ...] = (0,)
    budgets: Budgets = field(default_factory=Budgets)
    eval_split: str = "test"
    bootstrap: int = 1000  # bootstrap resamples for confidence intervals
    output: str = "runs/experiment"
    artifacts: str | None = None  # a directory of adapters/evaluations shared with other runs (default: in output)
    labels: dict[str, str] = field(default_factory=dict)  # source -> nominal label (default: the task's domain)
    similarity: tuple[str, ...] = ("vocabulary", "embedding")  # task-similarity measures stored for the analyses
    # prompt templates every target is scored under (tasks.prompts.TEMPLATES); `default` is always
    # first and is what training and the main tables use, the others measure robustness (seed 002)
    prompt_templates: tuple[str, ...] = ("default",)
    # how every evaluation's prompt reaches the model (chat template, start token, separator; over
    # each task's own); only settings other than auto enter the evaluation keys
    prompt: PromptOptions = field(default_factory=PromptOptions)
    task_files: tuple[str, ...] = ()
    device: str = "auto"
    dtype: str = "auto"
    tracking: Any = None  # engine.tracking.Tracking: MLflow / W&B logging, only when the spec asks
    source_file: str = "<spec>"


# study: transfer; adapters: a learner of adapters made elsewhere (transfer.learners)
TOP_FIELDS = {f.name for f in dataclasses.fields(Spec)} - {"source_file"} | {"study", "adapters"}


def load_spec(path: str | Path) -> Spec:
    """Read and validate a spec file (structure and names; nothing is loaded or trained)."""
    return parse_spec(safe_yaml.read_text(path, "spec file"), str(path))


def parse_spec(text: str, filename: str = "<spec>") -> Spec:
    at = Located(filename, text)
    data = at.data or {}
    if not isinstance(data, dict):
        raise at.error((), "a spec is a mapping of fields (name, models, tasks, ...)")
    check_keys(data, TOP_FIELDS, (), at)
    data = checked(data, COMMON_FIELDS, at)
    if data.get("study", "transfer") != "transfer":
        raise at.error(("study",), f"this parser reads transfer specs, got study: {data['study']!r}")
    for required in ("models", "tasks"):
        if required not in data:
            raise at.error((), f"missing required field {required!r}")
    base = Path(filename).parent
    task_files = tuple(str((base / f).resolve()) if not Path(f).is_absolute() else f
                       for f in name_list(data.get("task_files", []) or ["-"], ("task_files",), at) if f != "-")
    register_task_files(task_files, at)
    tasks = name_list(data["tasks"], ("tasks",), at)
    sources = name_list(data.get("sources", list(tasks)), ("sources",), at)
    for key, names in (("tasks", tasks), ("sources", sources)):
        check_tasks(names, (key,), at)
    models = name_list(data["models"], ("models",), at)
    check_models(models, at)
    conditions = name_list(data.get("conditions", list(DEFAULT_CONDITIONS)), ("conditions",), at)
    for i, c in enumerate(conditions):
        if c not in CONDITIONS:
            near = closest(c, CONDITIONS)
            raise at.error(("conditions", i), f"unknown condition {c!r}: " +
                           (f"did you mean {near[0]!r}?" if near else f"valid: {', '.join(CONDITIONS)}"))
    pairs = _pairs(data.get("pairs", []), at)
    if any(c in PAIRED_CONDITIONS for c in conditions) and not pairs:
        raise at.error(("conditions",), "sequential and joint cost one training per (A, B) pair: "
                                        "list the pairs to run under `pairs: [[A, B], ...]`")
    if pairs and not any(c in PAIRED_CONDITIONS for c in conditions):
        raise at.error(("pairs",), "pairs are only used by the sequential and joint conditions: add one to conditions")
    seeds = data.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(SEED.accepts(s) for s in seeds):
        raise at.error(("seeds",), f"expected a non-empty list of seeds, each {SEED.describe()}, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise at.error(("seeds",), f"each seed once, got {seeds}")
    budgets = parse_budgets(data.get("budgets"), at)
    default = [] if "adapters" in data else [{"name": "lora", "type": "lora"}]  # adapters alone: nothing trains
    learners = parse_learners(data.get("learners", default), at, base, data.get("adapters"))
    if not any(l.trains for l in learners):
        for key in ("sources", "pairs"):
            if data.get(key):
                raise at.error((key,), f"{key} name what learners train on, and no learner here trains: "
                                       "remove it, or add a lora or grpo learner")
    labels = _labels(data.get("labels", {}) or {}, sources, at)
    similarity = _similarity_kinds(data.get("similarity", list(Spec.similarity)), at)
    templates = _templates(data.get("prompt_templates", ["default"]), at)
    split = data.get("eval_split", "test")
    if split not in ("dev", "test"):
        raise at.error(("eval_split",), f"eval_split must be 'dev' or 'test', got {split!r}")
    return Spec(
        name=str(data.get("name", Path(filename).stem)), models=models, tasks=tasks, sources=sources,
        learners=learners, conditions=conditions, pairs=pairs, seeds=tuple(seeds), budgets=budgets, eval_split=split,
        bootstrap=data.get("bootstrap", 1000), output=data.get("output", f"runs/{Path(filename).stem}"),
        artifacts=str(data["artifacts"]) if data.get("artifacts") else None, labels=labels, similarity=similarity,
        prompt_templates=templates, task_files=task_files, device=data.get("device", "auto"), dtype=data.get("dtype", "auto"),
        tracking=parse_tracking(data.get("tracking"), at), source_file=filename,
        prompt=_prompt(data.get("prompt"), at),
    )


def _pairs(items: Any, at: Located) -> tuple[tuple[str, str], ...]:
    if not isinstance(items, list):
        raise at.error(("pairs",), "expected a list of [source, target] pairs")
    out = []
    for i, item in enumerate(items):
        if not (isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)):
            raise at.error(("pairs", i), "expected a pair [source, target] of task names")
        if item[0] == item[1]:
            raise at.error(("pairs", i), f"a pair needs two different tasks, got {item[0]!r} twice")
        check_tasks(tuple(item), ("pairs", i), at)
        out.append((item[0], item[1]))
    return tuple(out)


def _labels(data: Any, sources: tuple[str, ...], at: Located) -> dict[str, str]:
    """Nominal labels: what each source's adapter is *said* to be for (seed 004's drift)."""
    if not isinstance(data, dict):
        raise at.error(("labels",), "expected a mapping of source task to label, e.g. {alpaca_gpt4: instruction_following}")
    for task, label in data.items():
        if task not in sources:
            near = closest(str(task), sources)
            hint = f"did you mean {near[0]!r}?" if near else f"sources are: {', '.join(sources)}"
            raise at.error(("labels", task), f"{task!r} is not a source: {hint}")
        if not isinstance(label, str) or not label:
            raise at.error(("labels", task), f"expected a label name, got {label!r}")
    return {str(k): v for k, v in data.items()}


def _similarity_kinds(value: Any, at: Located) -> tuple[str, ...]:
    from transferlab.transfer.similarity import KINDS

    if value in (None, []):
        return ()
    kinds = name_list(value, ("similarity",), at)
    for i, kind in enumerate(kinds):
        if kind not in KINDS:
            near = closest(kind, KINDS)
            raise at.error(("similarity", i), f"unknown similarity {kind!r}: " +
                           (f"did you mean {near[0]!r}?" if near else f"valid: {', '.join(KINDS)}"))
    return kinds


def _templates(value: Any, at: Located) -> tuple[str, ...]:
    """Prompt template names, each a built-in one; `default` is added first when left out."""
    from transferlab.tasks.prompts import DEFAULT_TEMPLATE, TEMPLATES

    names = name_list(value or [DEFAULT_TEMPLATE], ("prompt_templates",), at)
    for i, name in enumerate(names):
        if name not in TEMPLATES:
            raise at.error(("prompt_templates", i), f"unknown prompt template {name!r}: "
                                                    f"known templates are {', '.join(TEMPLATES)}")
    if len(set(names)) != len(names):
        raise at.error(("prompt_templates",), f"each prompt template once, got {list(names)}")
    return (DEFAULT_TEMPLATE, *(n for n in names if n != DEFAULT_TEMPLATE))


def _prompt(value: Any, at: Located) -> PromptOptions:
    """The run's prompt options, e.g. `prompt: {chat_template: off, start_token: off, separator: " "}`."""
    if value is None:
        return PromptOptions()
    if not isinstance(value, dict):
        raise at.error(("prompt",), f"expected a mapping of {', '.join(OPTION_FIELDS)}, e.g. "
                                    "{chat_template: off, separator: ' '}")
    check_keys(value, set(OPTION_FIELDS), ("prompt",), at)
    try:
        return PromptOptions.from_json(value)
    except TransferlabError as err:
        named = next((k for k in value if str(err).startswith(f"{k} ")), None)
        raise at.error(("prompt", named) if named else ("prompt",), str(err)) from None
