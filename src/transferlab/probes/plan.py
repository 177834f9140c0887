"""Turn a probe study's config into jobs: extract, fit, score, and for cross-model probes map and cross.

Per model and dataset one `extract` job (all layers in one batched pass); per dataset and
algorithm one `fit` job (every layer at once); one `score` job that scores every probe on
every dataset as one matrix product per dataset. With `cross_model`, every model extracts the
cross-model datasets and the neutral texts, each ordered pair of different models gets a
`map` job (ridge maps between their residual streams) and every pair a `cross` job (probes
fitted on the source, carried to the target, scored there). Each job is keyed by everything
that determines its output, so a killed study resumes where it stopped, several workers can
share it through claims, and any executor can run it.

Nothing here loads a model: identities and depths come from the model files (or from a
model the caller already loaded), datasets are built once to fingerprint them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from transferlab import models
from transferlab.engine.jobs import Job
from transferlab.errors import TransferlabError
from transferlab.probes import conventions
from transferlab.probes.activations import num_layers, resolve_layers
from transferlab.probes.cross_model import matched_layers, neutral_texts
from transferlab.probes.datasets import load_dataset
from transferlab.probes.jobs import extract_job
from transferlab.probes.spec import ProbeStudyConfig
from transferlab.tasks.base import stable_hash

FIT_VERSION = 2  # deterministic sign tie-break and the dual Newton LR (fits of version 1 are not reused)
SCORE_VERSION = 2  # 2: baselines are never the best probe (the recovered-accuracy denominator)
CROSS_VERSION = 1


@dataclass(frozen=True)
class ModelInfo:
    """What keys and layer numbers need of a model, known before it is loaded."""

    name: str
    identity: str
    depth: int


@dataclass
class ProbePlan:
    config: ProbeStudyConfig
    model: ModelInfo
    layers: list[int]
    datasets: list[Any]  # ProbeDataset, in config order (those that loaded)
    audit: list[dict[str, str]]
    algorithms: dict[str, dict[str, Any]]
    activation_keys: dict[str, str]  # dataset -> key
    fit_keys: dict[tuple[str, str], str]  # (dataset, algorithm) -> key
    score_key: str
    jobs: list[Job]
    cross: CrossPlan | None = None

    def describe(self) -> str:
        counts: dict[str, int] = {}
        for job in self.jobs:
            counts[job.kind] = counts.get(job.kind, 0) + 1
        return ", ".join(f"{n} {kind}" for kind, n in counts.items()) + " jobs"


@dataclass
class CrossPlan:
    models: list[ModelInfo]
    datasets: list[Any]
    neutral: Any
    layers: dict[str, list[int]]  # model -> layers
    algorithms: dict[str, dict[str, Any]]
    pairs: list[tuple[str, str, str]] = field(default_factory=list)  # (source, target, cross job key)


def model_info(name: str, loaded: dict[str, Any], device: str = "auto", dtype: str = "auto") -> ModelInfo:
    """Identity and depth of a model: from a model the caller loaded, else from its files; when
    the files cannot tell (a hub model not in the local cache), the model is loaded now and
    added to `loaded`, so the jobs use that same model."""
    if name not in loaded:
        ref = models.resolve(name)
        try:
            identity, depth = models.model_identity(ref), models.model_depth(ref)
            if not identity.endswith("@unversioned"):
                return ModelInfo(name, identity, depth)
        except TransferlabError:
            if ref.kind != "hub":
                raise
        loaded[name] = models.load(name, device=device, dtype=dtype)
    return ModelInfo(name, loaded[name].identity, num_layers(loaded[name].model))


def dataset_spec(config: ProbeStudyConfig, name: str) -> dict[str, Any]:
    """How a worker rebuilds a dataset exactly as the plan did (its fingerprint is checked)."""
    return {"name": name, "limit": config.limits.get(name, config.limit) or None,
            "source": config.sources.get(name), "max_chars": config.max_chars or None}


def load_datasets(config: ProbeStudyConfig, names: tuple[str, ...],
                  say: Any = None) -> tuple[list[Any], list[dict[str, str]]]:
    """Build every dataset; one that fails is listed in the audit and the study goes on without it."""
    loaded, audit = [], []
    for name in names:
        spec = dataset_spec(config, name)
        try:
            loaded.append(load_dataset(name, spec["limit"], spec["source"], spec["max_chars"]))
        except TransferlabError as err:
            audit.append({"dataset": name, "error": str(err)})
            if say:
                say(f"[yellow]skipping dataset {name}:[/] {err}")
    return loaded, audit


def plan_probes(config: ProbeStudyConfig, loaded: dict[str, Any] | None = None, say: Any = None) -> ProbePlan:
    """The whole study as jobs; raises on a bad layer or model before any work starts."""
    loaded = loaded or {}
    config = config.checked(models=not loaded)
    datasets, audit = load_datasets(config, config.datasets, say)
    if not datasets:
        raise TransferlabError("no probe dataset could be loaded: " + "; ".join(
            f"{a['dataset']}: {a['error']}" for a in audit))
    model = model_info(config.model, loaded, config.device, config.dtype)
    layers = resolve_layers(config.layers, model.depth, model.name)
    algorithms = {a: conventions.fit_params(config.protocol, a, config.params.get(a)) for a in config.algorithms}
    jobs: list[Job] = []
    activation_keys, fit_keys = {}, {}
    for ds in datasets:
        job = extract_job(model, ds, dataset_spec(config, ds.name), layers, config)
        activation_keys[ds.name] = job.key
        jobs.append(job)
    for ds in datasets:
        for algorithm, params in algorithms.items():
            key = stable_hash("probe", FIT_VERSION, model.identity, activation_keys[ds.name], algorithm, params, layers)
            fit_keys[(ds.name, algorithm)] = key
            jobs.append(Job("fit", key, {
                "model": model.name, "dataset": dataset_spec(config, ds.name), "fingerprint": ds.fingerprint(),
                "activations": activation_keys[ds.name], "algorithm": algorithm, "params": params,
                "layers": layers}, deps=(activation_keys[ds.name],), label=f"fit {algorithm} on {ds.name}"))
    # the protocol changes the scores (sign and threshold on the evaluation data) and, through the
    # params above, the fits; the default adds nothing to either key, so stored runs stay valid
    score_key = stable_hash("probe-scores", SCORE_VERSION, [fit_keys[k] for k in fit_keys],
                            [activation_keys[d.name] for d in datasets], config.resamples,
                            *conventions.key_part(config.protocol))
    jobs.append(Job("score", score_key, {
        "model": model.name, "layers": layers, "resamples": config.resamples, "protocol": config.protocol,
        "datasets": [{"dataset": dataset_spec(config, d.name), "fingerprint": d.fingerprint(),
                      "activations": activation_keys[d.name]} for d in datasets],
        "fits": [[d, a, k] for (d, a), k in fit_keys.items()]},
        deps=(*activation_keys.values(), *fit_keys.values()),
        label=f"score {len(fit_keys)} probes on {len(datasets)} datasets"))
    plan = ProbePlan(config, model, layers, datasets, audit, algorithms, activation_keys, fit_keys, score_key, jobs)
    if config.cross_model and config.cross_model.models:
        plan.cross = _plan_cross(plan, loaded, say)
    plan.jobs = list({job.key: job for job in plan.jobs}.values())  # shared activations are extracted once
    return plan


def _plan_cross(plan: ProbePlan, loaded: dict[str, Any], say: Any) -> CrossPlan:
    config, cross = plan.config, plan.config.cross_model
    assert cross is not None
    names = list(dict.fromkeys([config.model, *cross.models]))
    if len(names) < 2:
        raise TransferlabError("cross-model probes need a second model: cross_model: {models: [gemma3-270m]}")
    datasets, _ = load_datasets(config, cross.datasets or config.datasets, say)
    neutral = neutral_texts(cross.neutral_texts)
    infos = [plan.model if n == config.model else model_info(n, loaded, config.device, config.dtype) for n in names]
    layers = {m.name: resolve_layers(cross.layers, m.depth, m.name) for m in infos}
    algorithms = {a: conventions.fit_params(config.protocol, a, config.params.get(a)) for a in cross.algorithms}
    out = CrossPlan(infos, datasets, neutral, layers, algorithms)
    acts: dict[tuple[str, str], str] = {}
    for m in infos:  # one model's extractions together: it is loaded once, then released
        for ds in datasets:
            job = extract_job(m, ds, dataset_spec(config, ds.name), layers[m.name], config)
            acts[(m.name, ds.name)] = job.key
            plan.jobs.append(job)
        job = extract_job(m, neutral, {"neutral": cross.neutral_texts}, layers[m.name], config)
        acts[(m.name, neutral.name)] = job.key
        plan.jobs.append(job)
    by_name = {m.name: m for m in infos}
    for source in names:
        for target in names:
            src, tgt = by_name[source], by_name[target]
            pairs = matched_layers(layers[target], tgt.depth, src.depth)
            missing = sorted(set(pairs) - set(layers[source]))
            if missing:
                raise TransferlabError(f"cross_model.layers: {target}'s layers match {source}'s layers "
                                       f"{missing}, which are not extracted: use layers: all or a stride both share")
            source_index = [layers[source].index(layer) for layer in pairs]
            map_key = None
            if source != target:
                map_key = stable_hash("probe-map", CROSS_VERSION, acts[(target, neutral.name)],
                                      acts[(source, neutral.name)], source_index)
                plan.jobs.append(Job("map", map_key, {
                    "source_model": source, "target_model": target, "source_neutral": acts[(source, neutral.name)],
                    "target_neutral": acts[(target, neutral.name)], "source_index": source_index},
                    deps=(acts[(target, neutral.name)], acts[(source, neutral.name)]),
                    label=f"map {target} -> {source} on {len(neutral.texts)} neutral texts"))
            entries = [{"dataset": dataset_spec(config, d.name), "fingerprint": d.fingerprint(),
                        "source_activations": acts[(source, d.name)], "target_activations": acts[(target, d.name)]}
                       for d in datasets]
            key = stable_hash("probe-cross", CROSS_VERSION, entries, map_key, source_index, layers[target],
                              algorithms, config.resamples, *conventions.key_part(config.protocol))
            deps = [e[k] for e in entries for k in ("source_activations", "target_activations")]
            plan.jobs.append(Job("cross", key, {
                "source_model": source, "target_model": target, "datasets": entries, "map": map_key,
                "source_index": source_index, "target_layers": layers[target], "algorithms": algorithms,
                "resamples": config.resamples, "protocol": config.protocol}, deps=tuple(dict.fromkeys([*deps, *([map_key] if map_key else [])])),
                label=f"cross-model probes {source} -> {target}"))
            out.pairs.append((source, target, key))
    return out

