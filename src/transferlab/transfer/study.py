"""Run a transfer study end to end: plan, execute, summarise into the results table, report.

    transferlab run experiments/cross_domain.yaml            # runs (or resumes) and writes the report
    transferlab run experiments/cross_domain.yaml --dry-run  # the plan and an estimate, nothing runs
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from rich.console import Console

from transferlab.engine.estimate import plan_estimate
from transferlab.errors import JobsFailed
from transferlab.engine.execute import Executor, LocalExecutor, RunReport
from transferlab.engine.jobs import Runtime
from transferlab.engine.audit import write_audit
from transferlab.engine.curves import read_curves, record_curves
from transferlab.engine.tracking import log_run
from transferlab.transfer.plan import Plan, plan_transfer
from transferlab.transfer.spec import Spec
from transferlab.transfer.summarise import summarise
from transferlab.engine.store import Store, check_writable


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
    record_curves(store, plan.jobs)  # learning curves of every adapter the plan uses, reused ones included
    record_annotations(spec, plan, store, console)
    for where in log_run(store, spec.tracking, spec.name, {"spec": spec.source_file}):
        console.print(f"tracked: {where}")
    console.print(f"ran {len(report.done)} jobs, reused {len(report.reused)}, failed {len(report.failed)}, "
                  f"skipped {len(report.skipped)} in {time.perf_counter() - start:.0f} s")
    return plan, report, output


LEARNER_METHODS = {"lora": "sl", "grpo": "rl"}  # learner type -> the method the hypotheses compare


def record_annotations(spec: Spec, plan: Plan, store: Store, console: Console) -> None:
    """Store what the analyses need besides scores: nominal labels, learner methods, task similarity.

    Similarity is computed once per run (a bag of words and a small sentence encoder over
    each task's texts, seconds on a CPU) and only for pairs the table does not hold yet.
    """
    store.set_labels(plan.labels)  # sources: the spec's label or the domain; adapters made elsewhere: theirs
    store.set_learner_methods({l.name: LEARNER_METHODS.get(l.type, l.type) for l in spec.learners})
    if not spec.similarity:
        return
    from transferlab.transfer.similarity import similarity_matrix

    tasks = sorted(set(plan.tasks) | set(plan.sources))
    have = store.similarity()
    known = set(zip(have["task_a"], have["task_b"], have["kind"]))
    wanted = [k for k in spec.similarity if any((a, b, k) not in known for a in tasks for b in tasks if a != b)]
    if wanted and len(tasks) > 1:
        console.print(f"computing task similarity ({', '.join(wanted)}) over {len(tasks)} tasks")
        store.add_similarity(similarity_matrix(tasks, wanted))


def run_spec(path: Path, output: Path | None = None, dry_run: bool = False, console: Console | None = None,
             report: bool = True, executor: Executor | None = None) -> Path | None:
    """`transferlab run` for a transfer spec: plan (and stop, if `dry_run`), run, summarise, report."""
    import dataclasses

    from transferlab.transfer.spec import load_spec

    console = console or Console(stderr=True)
    spec = load_spec(path)
    if output:
        spec = dataclasses.replace(spec, output=str(output))
    if dry_run:  # nothing is downloaded or loaded for hub tasks and hub models (engine.dry_run)
        from transferlab.engine.dry_run import print_dry_run

        plan = plan_transfer(spec, load=False)
        print_dry_run(console, plan.describe(), plan.jobs, spec.models,
                      [*spec.tasks, *spec.sources, *(t for pair in spec.pairs for t in pair)], spec.output, spec.device)
        return None
    _, outcome, where = run_study(spec, executor=executor, console=console)
    if report:
        write_run_report(where, spec.name, console)
    if outcome.failed:
        total = len(outcome.done) + len(outcome.reused) + len(outcome.failed) + len(outcome.skipped)
        raise JobsFailed(f"{len(outcome.failed)} of {total} jobs failed ({len(outcome.skipped)} that need them were "
                         f"skipped; the finished ones are kept): see `transferlab results jobs {where}`, fix it and "
                         "run the same command again", run_dir=where)
    return where


def write_run_report(run_dir: Path, title: str, console: Console) -> list[Path]:
    """Draw the report of a transfer run from its results table alone."""
    from transferlab.transfer.report import write_report

    store = Store(run_dir)
    written = write_report(store.results(), run_dir / "report", title=title, labels=store.labels(),
                           methods=store.learner_methods(), similarity=store.similarity(),
                           curves=read_curves(store))
    console.print(f"report: {written[0]}")
    for p in written[1:]:
        console.print(f"figure: {p}")
    from transferlab.html.transfer import write_transfer_page
    from transferlab.transfer.report import marked, matrices

    written.append(write_transfer_page(run_dir, store.results(), title=title, matrices=matrices, mark=marked,
                                       curves=read_curves(store), artifacts=store.artifacts))
    console.print(f"page: {written[-1]}")
    return written
