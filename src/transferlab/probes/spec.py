"""Probe study specs: what to probe (model, datasets, algorithms, layers, sizes) and where.

    study: probes
    model: smollm2-135m
    datasets: [cities, neg_cities, larger_than, mmlu]
    protocol: heldout          # or repeng: the original study's conventions (see `conventions`)
    cross_model: {models: [gemma3-270m]}

`ProbeStudyConfig` is also what `transferlab probes run` builds from its flags. Spec errors
name the file, the line and the field, through the shared helpers of `engine.spec`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import yaml

from transferlab.engine.spec import Located, check_keys
from transferlab.errors import TransferlabError, unknown_name
from transferlab.probes import conventions
from transferlab.probes.algorithms import ALGORITHMS, STUDY_ALGORITHMS
from transferlab.probes.datasets import family_of

DEFAULT_ALGORITHMS = (*STUDY_ALGORITHMS, "random")


@dataclass(frozen=True)
class CrossModelConfig:
    """Probes carried between models through linear maps fitted on neutral texts (seed 001)."""

    models: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()  # default: the study's datasets
    algorithms: tuple[str, ...] = ("dim", "lr", "lda")
    neutral_texts: int = 1000
    layers: str = "all"


@dataclass(frozen=True)
class ProbeStudyConfig:
    name: str = "probes"
    model: str = "smollm2-135m"
    datasets: tuple[str, ...] = ("cities", "neg_cities", "cities_conj", "cities_disj", "larger_than",
                                 "smaller_than", "mmlu")
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # algorithm -> hyper-parameters
    protocol: str = conventions.DEFAULT  # heldout | repeng (sign, threshold and fit conventions)
    layers: str = "all"  # all | every:k | comma-separated indices (negative from the end)
    position: str = "last"
    limit: int = 150  # groups per train/validation split (half as many for hparams); 0 = all
    limits: dict[str, int] = field(default_factory=dict)  # per-dataset overrides of `limit`
    max_chars: int = 0  # drop groups with a longer text (0 = keep all): long prompts dominate CPU time
    batch_size: int = 16
    resamples: int = 1000
    sources: dict[str, str] = field(default_factory=dict)  # dataset -> local file/dir for hub-format data
    cross_model: CrossModelConfig | None = None
    output: str = "runs/probes"
    device: str = "auto"
    dtype: str = "auto"
    report: bool = True

    def checked(self) -> ProbeStudyConfig:
        conventions.check(self.protocol)
        for name in self.datasets:
            family_of(name)  # raises with a suggestion on an unknown name
        for a in self.algorithms:
            if a not in ALGORITHMS:
                raise unknown_name("probe algorithm", a, ALGORITHMS)
        if len(set(self.datasets)) != len(self.datasets):
            raise TransferlabError("a dataset is listed twice")
        if not self.datasets or not self.algorithms:
            raise TransferlabError("a probe study needs at least one dataset and one algorithm")
        return self


TOP_FIELDS = {f.name for f in dataclasses.fields(ProbeStudyConfig)} | {"study", "models"}
CROSS_FIELDS = {f.name for f in dataclasses.fields(CrossModelConfig)}


def parse_probe_spec(text: str, filename: str = "<spec>") -> ProbeStudyConfig:
    """A probes spec (study: probes) -> config; errors name the file, line and field."""
    at = Located(filename, text)
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise at.error((), "a spec is a mapping of fields (study, model, datasets, ...)")
    check_keys(data, TOP_FIELDS, (), at)
    if data.get("study") != "probes":
        raise at.error(("study",), "a probes spec says `study: probes`")
    values: dict[str, Any] = {}
    if "models" in data:  # accepted for symmetry with transfer specs: the first model is the study's
        models = data["models"] if isinstance(data["models"], list) else [data["models"]]
        if not models:
            raise at.error(("models",), "expected at least one model")
        values["model"] = str(models[0])
    for key in ("name", "model", "layers", "position", "output", "device", "dtype", "protocol"):
        if key in data:
            values[key] = str(data[key])
    if "protocol" in values:
        try:
            conventions.check(values["protocol"])
        except TransferlabError as err:
            raise at.error(("protocol",), str(err)) from None
    for key in ("limit", "batch_size", "resamples", "max_chars"):
        if key in data:
            if not isinstance(data[key], int) or data[key] < 0:
                raise at.error((key,), "expected a non-negative integer")
            values[key] = data[key]
    if "report" in data:
        values["report"] = bool(data["report"])
    for key in ("datasets", "algorithms"):
        if key in data:
            items = data[key] if isinstance(data[key], list) else [data[key]]
            if not items or not all(isinstance(v, str) for v in items):
                raise at.error((key,), "expected a non-empty list of names")
            values[key] = tuple(items)
    for key in ("params", "sources", "limits"):
        if key in data:
            if not isinstance(data[key], dict):
                raise at.error((key,), "expected a mapping")
            values[key] = dict(data[key])
    if "cross_model" in data:
        cross = data["cross_model"]
        if not isinstance(cross, dict):
            raise at.error(("cross_model",), "expected a mapping with models: [...]")
        check_keys(cross, CROSS_FIELDS, ("cross_model",), at)
        values["cross_model"] = CrossModelConfig(
            models=tuple(cross.get("models", ())), datasets=tuple(cross.get("datasets", ())),
            algorithms=tuple(cross.get("algorithms", CrossModelConfig.algorithms)),
            neutral_texts=int(cross.get("neutral_texts", CrossModelConfig.neutral_texts)),
            layers=str(cross.get("layers", "all")))
    try:
        return ProbeStudyConfig(**values).checked()
    except TransferlabError as err:
        raise at.error(("datasets",) if "dataset" in str(err) else (), str(err)) from None
