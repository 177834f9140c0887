"""The probe study from start to finish: datasets -> activations -> probes -> table -> report.

    transferlab probes run --model smollm2-135m --datasets cities,neg_cities,mmlu --out runs/probes
    transferlab run experiments/probes.yaml          # the same from a spec (study: probes)

Every expensive step is an artifact in the run's store, keyed by what determines it:
activations by (model identity, dataset rows, layers, position), fitted probes by those
plus the algorithm and its hyper-parameters. Re-running the same command reuses them, so a
killed run resumes; the evaluation (a few matrix products) is recomputed and its rows
replace the previous ones in one transaction.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from transferlab.errors import TransferlabError
from transferlab.probes.algorithms import ALGORITHMS, STUDY_ALGORITHMS
from transferlab.tasks.base import stable_hash

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
        from transferlab.probes.datasets import family_of

        for name in self.datasets:
            family_of(name)  # raises with a suggestion on an unknown name
        for a in self.algorithms:
            if a not in ALGORITHMS:
                from transferlab.errors import unknown_name

                raise unknown_name("probe algorithm", a, ALGORITHMS)
        if len(set(self.datasets)) != len(self.datasets):
            raise TransferlabError("a dataset is listed twice")
        if not self.datasets or not self.algorithms:
            raise TransferlabError("a probe study needs at least one dataset and one algorithm")
        return self


def _say(console: Any, message: str) -> None:
    if console is not None:
        console.print(message, highlight=False)


def load_datasets(config: ProbeStudyConfig, console: Any = None) -> tuple[list[Any], list[dict[str, str]]]:
    """Build every dataset; one that fails is listed in the audit and the study goes on without it."""
    from transferlab.probes.datasets import load_dataset

    loaded, audit = [], []
    for name in config.datasets:
        try:
            limit = config.limits.get(name, config.limit)
            loaded.append(load_dataset(name, limit or None, config.sources.get(name), config.max_chars or None))
        except TransferlabError as err:
            audit.append({"dataset": name, "error": str(err)})
            _say(console, f"[yellow]skipping dataset {name}:[/] {err}")
    return loaded, audit


def extract_all(store: Any, loaded: Any, datasets: list[Any], layers: str, position: str, batch_size: int,
                console: Any = None) -> tuple[list[Any], list[int], dict[str, float]]:
    """Activations for every dataset (cached in the store) as protocol.Data."""
    from transferlab.probes.activations import cached_activations
    from transferlab.probes.protocol import Data

    data, seconds = [], {}
    chosen: list[int] = []
    for ds in datasets:
        start = time.perf_counter()
        acts, chosen, cached = cached_activations(store, loaded, ds, layers, position, batch_size)
        seconds[ds.name] = round(time.perf_counter() - start, 2)
        _say(console, f"activations {loaded.name} / {ds.name}: {acts.shape[1]} rows x {acts.shape[0]} layers "
                      f"{'(cached)' if cached else f'in {seconds[ds.name]:.1f} s'}")
        data.append(Data.of(ds, acts))
    return data, chosen, seconds


def fit_and_evaluate(store: Any, identity: str, data: list[Any], algorithms: dict[str, dict[str, Any]],
                     layers: list[int], resamples: int, activation_keys: dict[str, str],
                     console: Any = None) -> tuple[Any, list[Any], list[Any]]:
    """Fit every probe (reusing stored fits) and evaluate them all; returns (bank, evaluations, skips)."""
    from transferlab.probes.protocol import Skip, evaluate, fit_bank

    skips: list[Skip] = []

    def key(dataset: str, algorithm: str) -> str:
        # version 2: deterministic sign tie-break and the dual Newton LR (fits of version 1 are not reused)
        return stable_hash("probe", 2, identity, activation_keys[dataset], algorithm, algorithms[algorithm], layers)

    def fitted(dataset: str, algorithm: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        k = key(dataset, algorithm)
        if not store.has("probes", k):
            return None
        with np.load(store.path("probes", k) / "probe.npz") as f:
            saved = json.loads((store.path("probes", k) / "skips.json").read_text())
            skips.extend(Skip(**s) for s in saved)
            return f["coef"], f["intercept"], f["valid"]

    def on_fit(dataset: str, algorithm: str, coef: np.ndarray, intercept: np.ndarray, valid: np.ndarray,
               new_skips: list[Skip]) -> None:
        with store.writing("probes", key(dataset, algorithm), {"dataset": dataset, "algorithm": algorithm}) as tmp:
            np.savez(tmp / "probe.npz", coef=coef, intercept=intercept, valid=valid)
            (tmp / "skips.json").write_text(json.dumps([dataclasses.asdict(s) for s in new_skips]))
        skips.extend(new_skips)

    start = time.perf_counter()
    bank = fit_bank(data, algorithms, layers, fitted=fitted, on_fit=on_fit)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    evaluations = evaluate(bank, data, resamples=resamples)
    _say(console, f"probes: {len(bank)} (dataset, algorithm) fits x {len(layers)} layers in {fit_seconds:.1f} s; "
                  f"scored on {len(data)} datasets in {time.perf_counter() - start:.1f} s")
    return bank, evaluations, skips


def result_rows(model: str, source_model: str, bank: Any, evaluations: list[Any], layers: list[int]) -> list[tuple]:
    """Tidy rows (see results.COLUMNS); NaN cells (skipped layers) are left out, their skip says why."""
    rows = []
    for ev in evaluations:
        n = ev.units
        for p in range(len(bank)):
            for li, layer in enumerate(layers):
                acc = float(ev.acc[p, li])
                if acc != acc:
                    continue
                base = (model, source_model, bank.algorithm[p], layer, bank.trained_on[p], ev.dataset)
                rows.append((*base, "validation", "acc", acc, n, float(ev.acc_ci[0][p, li]),
                             float(ev.acc_ci[1][p, li])))
                h = float(ev.hparams_acc[p, li])
                if h == h:
                    rows.append((*base, "hparams", "acc", h, None, None, None))
                auroc = float(ev.auroc[p, li])
                if auroc == auroc:
                    rows.append((*base, "validation", "auroc", auroc, n, None, None))
                if ev.recovered is not None:
                    assert ev.recovered_ci is not None
                    rows.append((*base, "validation", "recovered", float(ev.recovered[p, li]), n,
                                 float(ev.recovered_ci[0][p, li]), float(ev.recovered_ci[1][p, li])))
    return rows


def run_probe_study(config: ProbeStudyConfig, console: Any = None, command: str = "", loaded: Any = None) -> Path:
    """Run (or resume) a probe study and write its report; returns the output directory.

    `loaded` is an already loaded model (anything with model, tokenizer, name, identity, device).
    """
    from transferlab.models import load
    from transferlab.probes.activations import activation_key, num_layers, resolve_layers
    from transferlab.probes.results import ProbeResults
    from transferlab.engine.store import Store, check_writable

    config = config.checked()
    started = time.perf_counter()
    root = Path(config.output)
    check_writable(root)
    store, results = Store(root), ProbeResults(root)
    datasets, audit = load_datasets(config, console)
    (root / "audit.json").write_text(json.dumps(audit, indent=1))
    if not datasets:
        raise TransferlabError("no probe dataset could be loaded: see audit.json")
    loaded = loaded or load(config.model, device=config.device, dtype=config.dtype)
    layers = resolve_layers(config.layers, num_layers(loaded.model), loaded.name)
    data, layers, extract_seconds = extract_all(store, loaded, datasets, config.layers, config.position,
                                                config.batch_size, console)
    keys = {ds.name: activation_key(loaded.identity, ds.fingerprint(), layers, config.position) for ds in datasets}
    algorithms = {a: dict(config.params.get(a, {})) for a in config.algorithms}
    bank, evaluations, skips = fit_and_evaluate(store, loaded.identity, data, algorithms, layers, config.resamples,
                                                keys, console)
    for ev in evaluations:
        if ev.note:
            skips.append(_skip(ev.dataset, "*", None, f"no recovered accuracy on {ev.dataset}: {ev.note}"))
    rows = result_rows(loaded.name, loaded.name, bank, evaluations, layers)
    results.replace(loaded.name, loaded.name, rows,
                    [(s.trained_on, s.algorithm, s.layer if s.layer is None else layers[s.layer], s.reason)
                     for s in skips])
    best = {ev.dataset: {"algorithm": bank.algorithm[ev.best[0]], "layer": layers[ev.best[1]]}
            for ev in evaluations if ev.best is not None}
    results.update_run(
        name=config.name, model=loaded.name, model_identity=loaded.identity, layers=layers,
        num_layers=num_layers(loaded.model), position=config.position, limit=config.limit, limits=config.limits,
        max_chars=config.max_chars,
        algorithms=list(config.algorithms), params=algorithms, command=command,
        datasets={ds.name: {"family": ds.family, "grouped": ds.grouped(), **ds.counts()} for ds in datasets},
        audit=audit, best_probe_for=best, extract_seconds=extract_seconds,
        wall_seconds=round(time.perf_counter() - started, 1), config=_jsonable(config))
    _say(console, f"{len(rows)} probe results written to {root / 'results.sqlite'} (table probe_results)")
    if config.cross_model and config.cross_model.models:
        from transferlab.probes.cross_model import run_cross_model

        run_cross_model(config, store, results, console=console, primary=loaded)
    if config.report:
        from transferlab.probes.report import write_report

        write_report(root, console=console)
    results.update_run(wall_seconds=round(time.perf_counter() - started, 1))
    return root


def _skip(dataset: str, algorithm: str, layer: int | None, reason: str) -> Any:
    from transferlab.probes.protocol import Skip

    return Skip(dataset, algorithm, layer, reason)


def _jsonable(config: ProbeStudyConfig) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


# ---- specs ---------------------------------------------------------------------------------------
TOP_FIELDS = {f.name for f in dataclasses.fields(ProbeStudyConfig)} | {"study", "models"}
CROSS_FIELDS = {f.name for f in dataclasses.fields(CrossModelConfig)}


def parse_probe_spec(text: str, filename: str = "<spec>") -> ProbeStudyConfig:
    """A probes spec (study: probes) -> config; errors name the file, line and field."""
    import yaml

    from transferlab.engine.spec import check_keys, Located

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
    for key in ("name", "model", "layers", "position", "output", "device", "dtype"):
        if key in data:
            values[key] = str(data[key])
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


def run_spec(path: Path, output: Path | None, dry_run: bool, console: Any) -> Path | None:
    """`transferlab run SPEC` for `study: probes` (the same as `transferlab probes run`, resumable)."""
    if not path.exists():
        raise TransferlabError(f"spec file {path} does not exist")
    config = parse_probe_spec(path.read_text(), str(path))
    if output is not None:
        config = dataclasses.replace(config, output=str(output))
    if dry_run:
        _say(console, f"probe study {config.name!r}: model {config.model}; datasets {', '.join(config.datasets)}; "
                      f"algorithms {', '.join(config.algorithms)}; layers {config.layers}; limit {config.limit}; "
                      f"output {config.output}"
                      + (f"; cross-model {', '.join(config.cross_model.models)}" if config.cross_model else ""))
        return None
    return run_probe_study(config, console, command=f"transferlab run {path}")
