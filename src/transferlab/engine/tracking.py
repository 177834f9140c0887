"""Optional experiment tracking: a run's training curves, job outcomes and results table sent
to MLflow or Weights & Biases. Nothing is logged unless the spec asks:

    tracking:
      mlflow: {uri: sqlite:///runs/mlflow.db, experiment: transferlab}   # a local SQLite store
      wandb: {mode: offline, project: transferlab, dir: runs/wandb}     # W&B's offline files

    pip install 'transferlab[tracking]'    # mlflow-skinny + sqlalchemy + alembic, wandb

`parse_tracking` reads the field (errors at file:line, unknown keys refused); `log_run`
logs what the store holds after the run: every learning curve point (`curve/<model>/
<learner>/<trained_on>/seed<k>/<value>` against its step), each job's outcome (counts as
metrics, the list as `jobs.json`), and the tidy results table (`results.csv`, one
`results/<cell>/<metric>` metric per row). Both libraries are imported only here and only
when asked. MLflow's artifacts go next to a SQLite store (`<db>-artifacts/`) unless
`artifacts:` says where; W&B writes `dir/wandb/offline-run-*/` for `wandb sync`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transferlab.engine.spec import Located, check_keys
from transferlab.engine.store import Store
from transferlab.errors import missing_package

INSTALL = "pip install 'transferlab[tracking]'"
MLFLOW_FIELDS = {"uri", "experiment", "artifacts"}
WANDB_FIELDS = {"mode", "project", "dir", "entity"}
WANDB_MODES = ("offline", "online")
CURVE_VALUES = ("train_loss", "train_reward", "dev_loss", "dev_score", "tokens_seen")
NAME = re.compile(r"[^\w./\- ]")  # characters MLflow refuses in a metric name


@dataclass(frozen=True)
class MlflowTarget:
    uri: str  # e.g. sqlite:///runs/mlflow.db, or an http(s) tracking server
    experiment: str = "transferlab"
    artifacts: str | None = None  # where the experiment keeps artifacts (default: beside a SQLite file)


@dataclass(frozen=True)
class WandbTarget:
    mode: str = "offline"  # offline: files only, `wandb sync` uploads them later
    project: str = "transferlab"
    dir: str | None = None
    entity: str | None = None


@dataclass(frozen=True)
class Tracking:
    mlflow: MlflowTarget | None = None
    wandb: WandbTarget | None = None


def parse_tracking(value: Any, at: Located, path: tuple[Any, ...] = ("tracking",)) -> Tracking | None:
    """The spec's `tracking:` field; None (nothing logged) when it is absent or empty."""
    if value is None or value == {}:
        return None
    if not isinstance(value, dict):
        raise at.error(path, "expected a mapping: tracking: {mlflow: {uri: sqlite:///...}} or {wandb: {mode: offline}}")
    check_keys(value, {"mlflow", "wandb"}, path, at)
    return Tracking(mlflow=_target(value, "mlflow", MLFLOW_FIELDS, path, at),
                    wandb=_target(value, "wandb", WANDB_FIELDS, path, at))


def _target(value: dict[str, Any], kind: str, fields: set[str], path: tuple[Any, ...], at: Located) -> Any:
    if kind not in value:
        return None
    item = value[kind] if value[kind] is not None else {}
    where = (*path, kind)
    if not isinstance(item, dict):
        raise at.error(where, f"expected a mapping of {', '.join(sorted(fields))}")
    check_keys(item, fields, where, at)
    import importlib.util

    if importlib.util.find_spec(kind) is None:  # checked now, so a run never ends unable to log
        raise at.error(where, f"the {kind} package is not installed: {INSTALL}")
    for key, text in item.items():
        if not isinstance(text, str) or not text.strip():
            raise at.error((*where, key), "expected a non-empty string")
    if kind == "mlflow":
        if "uri" not in item:
            raise at.error(where, "needs uri: e.g. sqlite:///runs/mlflow.db (a local SQLite tracking store)")
        return MlflowTarget(**item)
    if item.get("mode", "offline") not in WANDB_MODES:
        raise at.error((*where, "mode"), f"unknown mode {item['mode']!r}: valid: {', '.join(WANDB_MODES)}")
    return WandbTarget(**item)


def log_run(store: Store, tracking: Tracking | None, name: str, params: dict[str, Any] | None = None) -> list[str]:
    """Log the run in `store` to each configured tracker; returns where each went."""
    if tracking is None or (tracking.mlflow is None and tracking.wandb is None):
        return []
    from transferlab.engine.curves import read_curves

    logged = Logged(name, params or {}, _curves(read_curves(store)), store.jobs(), store.results())
    where = []
    if tracking.mlflow is not None:
        where.append(_to_mlflow(logged, tracking.mlflow, store.root))
    if tracking.wandb is not None:
        where.append(_to_wandb(logged, tracking.wandb, store.root))
    return where


@dataclass
class Logged:
    """What a run sends: curve points, job outcomes and the results table."""

    name: str
    params: dict[str, Any]
    curves: list[tuple[str, int, float]]  # (metric name, step, value)
    jobs: list[dict[str, Any]]
    results: Any  # the tidy results table (a DataFrame)

    def outcomes(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for job in self.jobs:
            counts[job["status"]] = counts.get(job["status"], 0) + 1
        return counts

    def result_metrics(self) -> dict[str, float]:
        """One finite number per results row, named by its cell and metric."""
        out = {}
        for r in self.results.itertuples():
            if r.value is not None and math.isfinite(r.value):
                out[metric_name("results", r.model, r.learner, r.trained_on, r.evaluated_on, r.condition,
                                f"seed{r.seed}", r.metric)] = float(r.value)
        return out


def metric_name(*parts: Any) -> str:
    return "/".join(NAME.sub("_", str(p)) for p in parts)


def _curves(frame: Any) -> list[tuple[str, int, float]]:
    points = []
    for r in frame.to_dict("records") if len(frame) else []:
        for value in CURVE_VALUES:
            v = r.get(value)
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                points.append((metric_name("curve", r["model"], r["learner"], r["trained_on"], f"seed{r['seed']}",
                                           value), int(r["step"]), float(v)))
    return points


def _artifact_root(uri: str, artifacts: str | None) -> str | None:
    if artifacts:
        return Path(artifacts).resolve().as_uri()
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///") + "-artifacts").resolve().as_uri()
    return None  # a tracking server keeps its own


def _to_mlflow(logged: Logged, target: MlflowTarget, run_dir: Path) -> str:
    try:
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise missing_package("mlflow-skinny", "tracking: mlflow", INSTALL) from None
    import time

    client = MlflowClient(tracking_uri=target.uri)
    found = client.get_experiment_by_name(target.experiment)
    experiment = found.experiment_id if found else client.create_experiment(
        target.experiment, artifact_location=_artifact_root(target.uri, target.artifacts))
    run = client.create_run(experiment, run_name=logged.name, tags={"transferlab.run_dir": str(run_dir.resolve())})
    now = int(time.time() * 1000)
    metrics = [Metric(k, v, now, step) for k, step, v in logged.curves]
    metrics += [Metric(f"jobs/{k}", float(v), now, 0) for k, v in logged.outcomes().items()]
    metrics += [Metric(k, v, now, 0) for k, v in logged.result_metrics().items()]
    params = [Param(str(k)[:250], str(v)[:6000]) for k, v in logged.params.items()]
    for i in range(0, max(len(metrics), 1), 1000):  # MLflow takes at most 1000 metrics per batch
        client.log_batch(run.info.run_id, metrics=metrics[i:i + 1000], params=params if i == 0 else [])
    client.log_dict(run.info.run_id, logged.jobs, "jobs.json")
    client.log_text(run.info.run_id, logged.results.to_csv(index=False), "results.csv")
    client.set_terminated(run.info.run_id, "FAILED" if logged.outcomes().get("failed") else "FINISHED")
    return f"mlflow run {run.info.run_id} in {target.uri} (experiment {target.experiment})"


def _to_wandb(logged: Logged, target: WandbTarget, run_dir: Path) -> str:
    try:
        import wandb
    except ImportError:
        raise missing_package("wandb", "tracking: wandb", INSTALL) from None
    folder = Path(target.dir) if target.dir else run_dir
    folder.mkdir(parents=True, exist_ok=True)
    run = wandb.init(project=target.project, entity=target.entity, mode=target.mode, dir=str(folder),
                     name=logged.name, config=logged.params, settings=wandb.Settings(silent=True))
    try:
        curves = sorted({k.rsplit("/", 1)[0] for k, _, _ in logged.curves})
        for prefix in curves:  # each curve against its own step
            run.define_metric(f"{prefix}/step", hidden=True)
            run.define_metric(f"{prefix}/*", step_metric=f"{prefix}/step")
        points: dict[tuple[str, int], dict[str, Any]] = {}  # one history row per curve point
        for key, step, value in logged.curves:
            prefix = key.rsplit("/", 1)[0]
            points.setdefault((prefix, step), {f"{prefix}/step": step})[key] = value
        for row in points.values():
            run.log(row)
        run.log({"jobs": wandb.Table(columns=["key", "kind", "status", "detail", "seconds"],
                                     data=[[j["key"], j["kind"], j["status"], j["detail"], j["seconds"]]
                                           for j in logged.jobs]),
                 "results": wandb.Table(dataframe=logged.results.astype(object).where(logged.results.notna(), None))})
        run.summary.update({**{f"jobs/{k}": v for k, v in logged.outcomes().items()}, **logged.result_metrics()})
        where = run.dir if target.mode == "offline" else run.url
    finally:
        run.finish(exit_code=1 if logged.outcomes().get("failed") else 0)
    return f"wandb run {run.id} ({target.mode}): {where}"


def describe(tracking: Tracking | None) -> str:
    """One line for the plan: where the run will log, or that it logs nothing."""
    if tracking is None:
        return "tracking: off"
    parts = ([f"mlflow {tracking.mlflow.uri}"] if tracking.mlflow else []) + (
        [f"wandb {tracking.wandb.mode}"] if tracking.wandb else [])
    return "tracking: " + ", ".join(parts)
