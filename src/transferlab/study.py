"""Run a transfer study end to end: plan, execute, summarise into the results table, report.

Summarising reads the stored per-example evaluations and writes, for every cell, the
score with its bootstrap CI and the transfer gain over the baseline with a paired CI.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from rich.console import Console

from transferlab.analysis import align, bootstrap_mean, paired_difference
from transferlab.execute import Executor, LocalExecutor, RunReport
from transferlab.jobs import Runtime
from transferlab.plan import Cell, Plan, plan_transfer, write_audit
from transferlab.spec import Spec
from transferlab.store import NONE, ResultRow, Store, check_writable
from transferlab.tasks import get_task


def _load_evaluation(store: Store, key: str) -> dict | None:
    if not store.has("evaluation", key):
        return None
    return store.read_json("evaluation", key, "evaluation.json")


def summarise(plan: Plan, store: Store, resamples: int = 1000) -> int:
    """Write score and gain rows for every cell whose evaluations exist; returns the row count."""
    rows: list[ResultRow] = []
    for cell in plan.cells:
        result = _load_evaluation(store, cell.evaluation)
        if result is None:
            continue
        base = _load_evaluation(store, cell.baseline)
        task = get_task(cell.evaluated_on)
        for metric in task.metrics:
            scores = result["scores"][metric]
            est = bootstrap_mean(scores, resamples, seed=cell.seed)
            rows.append(_row(cell, metric, est))
            if cell.condition != "baseline" and base is not None:
                treated, control = align(result["uids"], scores, base["uids"], base["scores"][metric])
                rows.append(_row(cell, f"gain:{metric}", paired_difference(treated, control, resamples, cell.seed)))
    return store.add_results(rows)


def _row(cell: Cell, metric: str, est) -> ResultRow:
    return ResultRow(model=cell.model, learner=cell.learner or NONE, trained_on=cell.trained_on or NONE,
                     evaluated_on=cell.evaluated_on, condition=cell.condition, seed=cell.seed, metric=metric,
                     value=est.value, n=est.n, ci_low=est.ci_low, ci_high=est.ci_high)


def run_study(spec: Spec, executor: Executor | None = None, console: Console | None = None,
              quiet: bool = False) -> tuple[Plan, RunReport, Path]:
    """Plan and run `spec`; only missing jobs run. Returns the plan, what happened and the output dir."""
    console = console or Console(stderr=True)
    output = Path(spec.output)
    check_writable(output)
    store = Store(output)
    plan = plan_transfer(spec)
    if plan.audit:
        audit_path = write_audit(output, plan.audit)
        for task, why in plan.audit.items():
            console.print(f"[yellow]left out[/] task {task}: {why} (see {audit_path})")
    else:
        write_audit(output, {})
    (output / "spec.json").write_text(json.dumps(asdict(spec), indent=1, default=str))
    console.print(f"plan: {plan.describe()}")
    start = time.perf_counter()
    runtime = Runtime(store, device=spec.device, dtype=spec.dtype, bootstrap=spec.bootstrap)
    report = (executor or LocalExecutor(console, quiet=quiet)).run(plan.jobs, runtime)
    summarise(plan, store, spec.bootstrap)
    console.print(f"ran {len(report.done)} jobs, reused {len(report.reused)}, failed {len(report.failed)}, "
                  f"skipped {len(report.skipped)} in {time.perf_counter() - start:.0f} s")
    return plan, report, output
