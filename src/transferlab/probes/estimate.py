"""The probe study's dry run: its jobs, what it will cost and what must be downloaded first.

Offline datasets (Geometry of Truth, MMLU) are built and counted; hub-format ones (the DLK
and RepE families, TruthfulQA) are never loaded: their published split sizes
(`tasks.hub.probe_sets`) and typical row lengths (`ROW_CHARS`) stand in, with the group
limits the study applies (`rows.cap_rows`: `limit` groups in train and validation, half as
many in hparams). Extraction is one forward pass over every row, in batches of the study's
`batch_size`, priced by the device (`engine.rates`: the measured extraction rate scaled by the
model's size, or the GPU roofline); a row is characters / 4 tokens plus its start token.
Fitting runs on the CPU and is scaled from this project's measurement (57 (dataset,
algorithm) pairs x 30 layers in 149 s at width 576, ~250 train rows) by width squared and
train rows. Scoring and maps take seconds and are not counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from transferlab.engine.dry_run import Missing, missing_models, print_models, print_requirements
from transferlab.engine.estimate import Estimate, resolve_device
from transferlab.engine.model_shapes import ModelShape, model_shape
from transferlab.engine.rates import rates_for
from transferlab.errors import TransferlabError
from transferlab.probes.datasets import family_of, load_dataset
from transferlab.probes.hub import DLK_SOURCES
from transferlab.probes.rows import FRACTIONS
from transferlab.probes.spec import ProbeStudyConfig

# Rows per record: DLK pairs the true label with a false one; RepE has a row per answer choice.
ROWS_PER_RECORD = {"commonsense_qa": 5, "truthful_qa": 5, **{n: 2 for n in DLK_SOURCES}}
# Mean characters of a row: the record's text in the family's template.
ROW_CHARS = {"imdb": 1450, "amazon_polarity": 580, "ag_news": 350, "dbpedia_14": 410, "rte": 400, "copa": 250,
             "boolq": 700, "piqa": 200, "arc_easy": 335, "arc_challenge": 360, "commonsense_qa": 270,
             "openbookqa": 280, "race": 1950, "truthful_qa": 300}
FIT_SECONDS = 149 / (57 * 30)  # one (dataset, algorithm, layer) fit on the reference CPU
FIT_WIDTH, FIT_ROWS = 576, 250
NEUTRAL_CHARS = 300  # a neutral text of the cross-model maps


@dataclass(frozen=True)
class DatasetSize:
    name: str
    rows: int
    train_rows: int
    chars: float  # mean characters per row
    source: str  # "built" or "published sizes"


def dataset_size(config: ProbeStudyConfig, name: str) -> DatasetSize:
    """Rows of a dataset after the study's limits: built when offline, from published sizes when not."""
    limit = config.limits.get(name, config.limit)
    if family_of(name) in ("got", "mmlu"):
        ds = load_dataset(name, limit or None, None, config.max_chars or None)
        return DatasetSize(name, len(ds.rows), ds.counts()["train"], sum(len(t) for t in ds.texts) / len(ds.rows),
                           "built")
    hub = probe_set(name)
    per = ROWS_PER_RECORD.get(hub.base, 4)
    groups = [hub.split_sizes[hub.split] * f for f in FRACTIONS]  # train, hparams, validation
    if limit:
        groups = [min(g, max(1, limit // 2) if i == 1 else limit) for i, g in enumerate(groups)]
    return DatasetSize(name, int(sum(groups) * per), int(groups[0] * per), float(ROW_CHARS.get(hub.base, 400)),
                       "published sizes")


def probe_set(name: str) -> Any:
    """The hub dataset behind a probe dataset name (`imdb` or `hub-imdb`), None for an offline one."""
    from transferlab.tasks.hub.probe_sets import PROBE_SETS

    return PROBE_SETS.get(name) or PROBE_SETS.get(f"hub-{name}")


def missing(config: ProbeStudyConfig) -> list[Missing]:
    """The study's models and hub datasets that are not on this machine (a local `sources` file counts)."""
    models = [config.model, *(config.cross_model.models if config.cross_model else ())]
    names = [*config.datasets, *(config.cross_model.datasets if config.cross_model else ())]
    out = missing_models(models)
    for name in dict.fromkeys(names):
        hub = probe_set(name)
        state = "cached" if hub is None or name in config.sources else hub.availability()
        for command in ([] if state == "cached" else state.removeprefix("download:").strip().split(" && ")):
            out.append(Missing("dataset", name, command))
    return out


def estimate_study(config: ProbeStudyConfig) -> tuple[Estimate, dict[str, int]]:
    """The study's cost and its job counts, without loading a model or a hub dataset."""
    device = resolve_device(config.device)
    rates = rates_for(device)
    jobs: dict[str, int] = {}
    seconds = {"extract": 0.0, "fit (CPU)": 0.0}
    sizes = {name: dataset_size(config, name) for name in config.datasets}
    shape = model_shape(config.model)
    depth = len(_layers(config.layers, shape.layers or 1))

    def extract(tokens: float, rows: float, on: ModelShape = shape) -> float:  # one forward pass a batch of rows
        return rates.extract_seconds(tokens, math.ceil(rows / config.batch_size), on)

    for size in sizes.values():
        seconds["extract"] += extract(size.rows * (size.chars / 4 + 1), size.rows)
        width = (shape.hidden_size or FIT_WIDTH) / FIT_WIDTH
        seconds["fit (CPU)"] += (len(config.algorithms) * depth * FIT_SECONDS * width ** 2
                                 * max(size.train_rows, 1) / FIT_ROWS)
    jobs.update(extract=len(sizes), fit=len(sizes) * len(config.algorithms), score=1)
    if config.cross_model and config.cross_model.models:
        names = list(dict.fromkeys([config.model, *config.cross_model.models]))
        cross = [sizes.get(n) or dataset_size(config, n) for n in (config.cross_model.datasets or config.datasets)]
        neutral = config.cross_model.neutral_texts
        for model in names[1:]:
            other = model_shape(model)
            for s in cross:
                seconds["extract"] += extract(s.rows * s.chars / 4, s.rows, other)
            seconds["extract"] += extract(neutral * NEUTRAL_CHARS / 4, neutral, other)
        seconds["extract"] += extract(neutral * NEUTRAL_CHARS / 4, neutral)
        jobs["extract"] += (len(names) - 1) * (len(cross) + 1) + 1
        jobs.update(map=len(names) * (len(names) - 1), cross=len(names) ** 2)
    notes = () if shape.layers else (f"{config.model}: {shape.source}",)
    return Estimate(sum(seconds.values()), rates.source, rates.device, tuple(seconds.items()),
                    notes + rates.notes), jobs


def _layers(layers: str, total: int) -> list[int]:
    from transferlab.probes.activations import resolve_layers

    try:
        return resolve_layers(layers, total)
    except TransferlabError:
        return list(range(1, total + 1))  # the depth is not known yet: the layer check runs with the study


def print_dry_run(config: ProbeStudyConfig, console: Any) -> None:
    """The dry run after the study's header line: plan with estimate, sizes, downloads and, when
    everything is local, the jobs with their keys (else the keys wait for the data)."""
    from transferlab.probes.plan import plan_probes

    def say(message: str) -> None:
        console.print(message, highlight=False)

    estimate, counts = estimate_study(config)
    absent = missing(config)
    local = not absent and not any(probe_set(n) for n in config.datasets)
    plan = None
    if local:
        try:
            plan = plan_probes(config)
        except TransferlabError as err:  # e.g. a cross-model model that is not installed yet
            say(f"plan: not available until this is fixed: {err}")
            return
    described = plan.describe() if plan else ", ".join(f"{n} {k}" for k, n in counts.items()) + " jobs"
    say(f"plan: {described}; estimate {estimate.describe()}")
    for note in estimate.notes:
        say(f"  assumed: {note}")
    print_models(console, [config.model, *(config.cross_model.models if config.cross_model else ())])
    for name in config.datasets:
        size = dataset_size(config, name)
        if size.source != "built":
            hub = probe_set(name)
            say(f"dataset {name}: {hub.hub_id} {hub.split} {hub.split_sizes[hub.split]:,} records, ~{size.rows:,} rows "
                f"after the limits ({size.source}; not loaded)")
    print_requirements(console, absent)
    if plan is None:
        say("job keys are known once every model and dataset is here: the run plans them")
        return
    for job in plan.jobs:
        say(f"  {job.kind:8s} {job.key}  {job.label}")
