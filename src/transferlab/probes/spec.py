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

from transferlab.constraints import Flag, Interval, Matches, Names, Options, Text, validate
from transferlab.engine.spec import Located, check_keys, checked
from transferlab.errors import TransferlabError, unknown_name
from transferlab.models import DEVICE, DTYPE
from transferlab.probes import conventions
from transferlab.probes.activations import POSITIONS
from transferlab.probes.algorithms import ALGORITHMS, STUDY_ALGORITHMS, make
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

    def checked(self, models: bool = True) -> ProbeStudyConfig:
        """Every field against its declared type and bounds (`FIELDS`), then the names (the model names too,
        unless `models` is false: loaded models are passed in): one line per problem, before any directory
        or job is made (a spec and `probes run`'s flags go through here alike)."""
        from transferlab.models import resolve

        validate({f.name: getattr(self, f.name) for f in dataclasses.fields(self)}, FIELDS)
        conventions.check(self.protocol)
        for name in self.datasets:
            family_of(name)  # raises with a suggestion on an unknown name
        for a in self.algorithms:
            if a not in ALGORITHMS:
                raise unknown_name("probe algorithm", a, ALGORITHMS)
        if len(set(self.datasets)) != len(self.datasets):
            twice = sorted({d for d in self.datasets if self.datasets.count(d) > 1})
            raise TransferlabError(f"datasets: {', '.join(twice)} listed twice")
        if not self.datasets or not self.algorithms:
            raise TransferlabError("a probe study needs at least one dataset and one algorithm")
        _check_mapping("params", self.params, lambda v: isinstance(v, dict), "a mapping of hyper-parameters")
        for algorithm, params in self.params.items():
            if algorithm not in ALGORITHMS:
                raise TransferlabError(f"params: {unknown_name('probe algorithm', str(algorithm), ALGORITHMS)}")
            if algorithm not in self.algorithms:
                raise TransferlabError(f"params: {algorithm!r} is not one of the study's algorithms "
                                       f"({', '.join(self.algorithms)})")
            make(algorithm, **params)  # an unknown hyper-parameter names the valid ones
        _check_mapping("limits", self.limits, LIMIT.accepts, LIMIT.describe())
        _check_mapping("sources", self.sources, lambda v: isinstance(v, str) and bool(v), "a file or directory")
        if models:
            resolve(self.model)
            for model in self.cross_model.models if self.cross_model else ():
                try:
                    resolve(model)
                except TransferlabError as err:
                    raise TransferlabError(f"cross_model: {err}") from None
        if self.cross_model:
            validate(dataclasses.asdict(self.cross_model), CROSS_PARAMS)
            for a in self.cross_model.algorithms:
                if a not in ALGORITHMS:
                    raise unknown_name("probe algorithm", a, ALGORITHMS)
            for name in self.cross_model.datasets:
                family_of(name)
        return self


LAYERS = Matches(r"all|every:[1-9][0-9]*|(-?[0-9]+)( *, *-?[0-9]+)*",
                 "all, every:K (K >= 1) or comma-separated layer indices (negative from the end)")
LIMIT = Interval(int, 0)
# The declared type and bounds of each field (`transferlab.constraints`).
FIELDS: dict[str, Any] = {
    "name": Text(empty=False), "model": Text(empty=False), "datasets": Names(), "algorithms": Names(),
    "protocol": Text(empty=False), "layers": LAYERS, "position": Options(POSITIONS), "limit": LIMIT,
    "max_chars": Interval(int, 0), "batch_size": Interval(int, 1), "resamples": Interval(int, 0, 100_000),
    "output": Text(empty=False), "device": DEVICE, "dtype": DTYPE, "report": Flag()}
CROSS_PARAMS: dict[str, Any] = {"models": Names(), "datasets": Names(empty=True), "algorithms": Names(), "neutral_texts": Interval(int, 1, 1_000_000),
                                "layers": LAYERS}
TOP_FIELDS = {f.name for f in dataclasses.fields(ProbeStudyConfig)} | {"study", "models"}
CROSS_FIELDS = {f.name for f in dataclasses.fields(CrossModelConfig)}


def _check_mapping(field: str, value: Any, good: Any, what: str) -> None:
    if not isinstance(value, dict):
        raise TransferlabError(f"{field} must be a mapping, got {value!r}")
    for key, item in value.items():
        if not isinstance(key, str) or not good(item):
            raise TransferlabError(f"{field} must map names to {what}, got {key!r}: {item!r}")


def parse_probe_spec(text: str, filename: str = "<spec>") -> ProbeStudyConfig:
    """A probes spec (study: probes) -> config; errors name the file, line and field."""
    at = Located(filename, text)
    data = at.data or {}
    if not isinstance(data, dict):
        raise at.error((), "a spec is a mapping of fields (study, model, datasets, ...)")
    check_keys(data, TOP_FIELDS, (), at)
    if data.get("study") != "probes":
        raise at.error(("study",), "a probes spec says `study: probes`")
    data = checked(data, {**FIELDS, "models": Names()}, at)
    values = {key: data[key] for key in FIELDS if key in data}
    if "models" in data:  # accepted for symmetry with transfer specs: the first model is the study's
        values["model"] = data["models"][0]
    if "cross_model" in data:
        cross = data["cross_model"]
        if not isinstance(cross, dict):
            raise at.error(("cross_model",), "expected a mapping with models: [...]")
        check_keys(cross, CROSS_FIELDS, ("cross_model",), at)
        cross = checked(cross, CROSS_PARAMS, at, ("cross_model",))
        values["cross_model"] = CrossModelConfig(**cross)
    for key in ("params", "sources", "limits"):
        if key in data:
            values[key] = data[key]
    try:
        return ProbeStudyConfig(**values).checked()
    except TransferlabError as err:
        message = str(err)
        field = next((k for k in TOP_FIELDS if message.startswith((f"{k} ", f"{k}:"))), None)
        if field and message.startswith(f"{field}: "):
            message = message[len(field) + 2:]  # the location says which field
        field = field or next((f for word, f in MENTIONS if word in message), None)
        raise at.error((field,) if field else (), message) from None


# Which field an error that names none is about, by the first of these words it mentions.
MENTIONS = (("protocol", "protocol"), ("dataset", "datasets"), ("algorithm", "algorithms"), ("model", "model"))
