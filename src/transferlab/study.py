"""Run a transfer study end to end: plan, execute, summarise into the results table, report.

Summarising reads the stored per-example evaluations and writes, for every cell, the
score with its bootstrap CI, the gain over the baseline with a paired CI, and for
transfer-like cells the efficiency and relative transfer against the direct cell.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from rich.console import Console

from transferlab.analysis import Estimate, align, bootstrap_mean, paired_difference, paired_ratio
from transferlab.estimate import plan_estimate
from transferlab.execute import Executor, LocalExecutor, RunReport
from transferlab.jobs import Runtime
from transferlab.plan import Cell, Plan, plan_transfer, write_audit
from transferlab.spec import Spec
from transferlab.store import NONE, ResultRow, Store, check_writable
from transferlab.tasks import get_task


Loader = Callable[[str], "dict | None"]


def _evaluation_loader(store: Store) -> Loader:
    """Each evaluation verified and parsed once, however many cells share it (baselines do)."""
    loaded: dict[str, dict | None] = {}

    def load(key: str) -> dict | None:
        if key not in loaded:
            loaded[key] = store.read_json("evaluation", key, "evaluation.json") if store.has("evaluation", key) else None
        return loaded[key]

    return load


NA = float("nan")


def summarise(plan: Plan, store: Store, resamples: int = 1000) -> int:
    """Write score and gain rows for every cell whose evaluations exist, and for transfer
    cells the normalised metrics (efficiency, relative transfer); returns the row count."""
    rows: list[ResultRow] = []
    load = _evaluation_loader(store)
    direct = {(c.model, c.learner, c.seed, c.evaluated_on): c for c in plan.cells if c.condition == "direct"}
    for cell in plan.cells:
        if cell.condition in ("transfer", "sequential", "joint"):
            partner = direct.get((cell.model, cell.learner, cell.seed, cell.evaluated_on))
            if partner is not None:
                rows += _normalised(cell, partner, load, resamples)
        result = load(cell.evaluation)
        if result is None:
            continue
        base = load(cell.baseline)
        task = get_task(cell.evaluated_on)
        for metric in task.metrics:
            scores = result["scores"][metric]
            weights = result.get("weights", {}).get(metric)
            rows.append(_row(cell, metric, bootstrap_mean(scores, resamples, seed=cell.seed, weights=weights)))
            if cell.condition != "baseline" and base is not None:
                shared, treated, control = align(result["uids"], scores, base["uids"], base["scores"][metric])
                paired_weights = [weights[i] for i in shared] if weights else None
                rows.append(_row(cell, f"gain:{metric}", paired_difference(treated, control, resamples, cell.seed,
                                                                          weights=paired_weights)))
    return store.add_results(rows)


def _normalised(cell: Cell, direct: Cell, load: Loader, resamples: int) -> list[ResultRow]:
    """Transfer efficiency = transfer / direct, and relative transfer (gap recovered) =
    (transfer - base) / (direct - base), paired over the examples all three share.

    Each is NA when its denominator is within noise of zero: efficiency when the direct
    score's CI includes zero, relative transfer when the direct gain's does (the oracle
    itself gained nothing measurable). A ratio over noise would be meaningless.
    """
    evaluations = [load(k) for k in (cell.evaluation, direct.evaluation, cell.baseline)]
    if any(e is None for e in evaluations):
        return []
    transfer, oracle, base = evaluations
    rows = []
    for metric in get_task(cell.evaluated_on).metrics:
        index = [{u: i for i, u in enumerate(e["uids"])} for e in (oracle, base)]
        shared = [i for i, u in enumerate(transfer["uids"]) if all(u in ix for ix in index)]
        pick = lambda e, ix: [e["scores"][metric][ix[transfer["uids"][i]]] for i in shared]  # noqa: E731
        t = [transfer["scores"][metric][i] for i in shared]
        d, b = pick(oracle, index[0]), pick(base, index[1])
        weights = transfer.get("weights", {}).get(metric)
        w = [weights[i] for i in shared] if weights else None
        direct_score = bootstrap_mean(d, resamples, cell.seed, weights=w)
        efficiency = (paired_ratio(t, d, resamples, cell.seed, weights=w) if direct_score.ci_low > 0
                      else Estimate(NA, len(shared), NA, NA))
        rows.append(_row(cell, f"efficiency:{metric}", efficiency))
        direct_gain = paired_difference(d, b, resamples, cell.seed, weights=w)
        if direct_gain.significant:
            gap = paired_ratio([x - y for x, y in zip(t, b)], [x - y for x, y in zip(d, b)], resamples, cell.seed,
                               weights=w)
        else:
            gap = Estimate(NA, len(shared), NA, NA)
        rows.append(_row(cell, f"relative:{metric}", gap))
    return rows


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
    store = Store(output, artifacts=spec.artifacts)
    plan = plan_transfer(spec)
    if plan.audit:
        audit_path = write_audit(output, plan.audit)
        for task, why in plan.audit.items():
            console.print(f"[yellow]left out[/] task {task}: {why} (see {audit_path})")
    else:
        write_audit(output, {})
    (output / "spec.json").write_text(json.dumps(asdict(spec), indent=1, default=str))
    console.print(f"plan: {plan.describe()}; {plan_estimate(plan.jobs, output, spec.device).describe()}")
    start = time.perf_counter()
    runtime = Runtime(store, device=spec.device, dtype=spec.dtype, bootstrap=spec.bootstrap)
    report = (executor or LocalExecutor(console, quiet=quiet)).run(plan.jobs, runtime)
    summarise(plan, store, spec.bootstrap)
    record_annotations(spec, plan, store, console)
    console.print(f"ran {len(report.done)} jobs, reused {len(report.reused)}, failed {len(report.failed)}, "
                  f"skipped {len(report.skipped)} in {time.perf_counter() - start:.0f} s")
    return plan, report, output


LEARNER_METHODS = {"lora": "sl", "grpo": "rl"}  # learner type -> the method the hypotheses compare


def record_annotations(spec: Spec, plan: Plan, store: Store, console: Console) -> None:
    """Store what the analyses need besides scores: nominal labels, learner methods, task similarity.

    Similarity is computed once per run (a bag of words and a small sentence encoder over
    each task's texts, seconds on a CPU) and only for pairs the table does not hold yet.
    """
    store.set_labels({s: spec.labels.get(s) or get_task(s).domain for s in plan.sources})
    store.set_learner_methods({l.name: LEARNER_METHODS.get(l.type, l.type) for l in spec.learners})
    if not spec.similarity:
        return
    from transferlab.similarity import similarity_matrix

    tasks = sorted(set(plan.tasks) | set(plan.sources))
    have = store.similarity()
    known = set(zip(have["task_a"], have["task_b"], have["kind"]))
    wanted = [k for k in spec.similarity if any((a, b, k) not in known for a in tasks for b in tasks if a != b)]
    if wanted and len(tasks) > 1:
        console.print(f"computing task similarity ({', '.join(wanted)}) over {len(tasks)} tasks")
        store.add_similarity(similarity_matrix(tasks, wanted))


def run_spec(path: Path, output: Path | None = None, dry_run: bool = False, console: Console | None = None,
             report: bool = True) -> Path | None:
    """`transferlab run` for a transfer spec: plan (and stop, if `dry_run`), run, summarise, report."""
    import dataclasses

    from transferlab.spec import load_spec

    console = console or Console(stderr=True)
    spec = load_spec(path)
    if output:
        spec = dataclasses.replace(spec, output=str(output))
    if dry_run:
        plan = plan_transfer(spec)
        console.print(f"plan: {plan.describe()}; {plan_estimate(plan.jobs, spec.output, spec.device).describe()}")
        for job in plan.jobs:
            console.print(f"  {job.kind:8s} {job.key}  {job.label}")
        return None
    _, outcome, where = run_study(spec, console=console)
    if report:
        write_run_report(where, spec.name, console)
    if outcome.failed:
        console.print(f"[yellow]{len(outcome.failed)} jobs failed; see `transferlab results jobs {where}`[/]")
    return where


def write_run_report(run_dir: Path, title: str, console: Console) -> list[Path]:
    """Draw the report of a transfer run from its results table alone."""
    from transferlab.report import write_report

    store = Store(run_dir)
    written = write_report(store.results(), run_dir / "report", title=title, labels=store.labels(),
                           methods=store.learner_methods(), similarity=store.similarity())
    console.print(f"report: {written[0]}")
    for p in written[1:]:
        console.print(f"figure: {p}")
    return written
