"""`transferlab run` for `study: translation` specs: anchors, translations, evaluations, report.

    transferlab run experiments/translation.yaml            # runs (or resumes) and writes the report
    transferlab run experiments/translation.yaml --dry-run  # the plan and a cost estimate, nothing runs

Four phases, each resumable because every output is keyed by what determines it (`plan`):
1. train the anchor adapters on both models, evaluate base_Y and the oracles (train and
   evaluate jobs);
2. translate: fit each method on its anchors, predict, write a PEFT adapter for Y
   (`translate` jobs, seconds each);
3. evaluate the translated adapters with model Y (evaluate jobs, run with phase 2);
4. summarise into the tidy results table and the experiment tables, then draw the report.
Every phase goes through the engine's executor, so a killed run redoes only the job in
flight, and several workers can share a study through claims.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from transferlab.engine.audit import write_audit
from transferlab.errors import JobsFailed
from transferlab.engine.execute import Executor, LocalExecutor
from transferlab.engine.tracking import log_run
from transferlab.engine.jobs import Runtime
from transferlab.engine.store import Store, check_writable, write_json
from transferlab.translation.anchors import load_anchors
from transferlab.translation.plan import TRANSLATE_SECONDS, StudyPlan, describe, make_plan
from transferlab.translation.spec import TranslationSpec, load_translation_spec


def run_study(spec: TranslationSpec, console: Console | None = None, quiet: bool = False,
              command: str = "", executor: Executor | None = None) -> Path:
    """Run (or resume) every phase of a translation study; returns the output directory."""
    console = console or Console(stderr=True)
    start = time.perf_counter()
    if spec.threads:
        import torch

        torch.set_num_threads(spec.threads)
    output = Path(spec.output)
    check_writable(output)
    store = Store(output, artifacts=spec.artifacts)
    plan = make_plan(spec)
    write_audit(output, plan.audit)
    for task, why in plan.audit.items():
        console.print(f"[yellow]left out[/] task {task}: {why}")
    (output / "spec.json").write_text(json.dumps(dataclasses.asdict(spec), indent=1, default=str))
    console.print(f"plan: {describe(plan)}")
    runtime = Runtime(store, device=spec.device, dtype=spec.dtype, bootstrap=spec.bootstrap)
    executor = executor or LocalExecutor(console, quiet=quiet)
    first = executor.run(plan.first_jobs(), runtime)
    broken = {a.task: f"anchor training on {a.model} failed: {first.failed.get(a.key) or first.skipped.get(a.key)}"
              for side in ("x", "y") for a in plan.anchors[side].values()
              if a.key in first.failed or a.key in first.skipped}
    if broken:  # the run goes on without those tasks, and says so
        plan = make_plan(spec, [t for t in plan.tasks if t not in broken])
        plan.audit.update(broken)
        write_audit(output, plan.audit)
    translations = plan.translate_jobs()
    second = executor.run([*translations, *plan.translated_jobs({})], runtime)
    failed = {job.key: second.failed[job.key] for job in translations if job.key in second.failed}
    translated = {job.key for job in translations}
    built = len(translated & set(second.done))
    evaluated = [k for k in second.done if k not in translated]
    from transferlab.translation.summarise import summarise

    _write_layout(plan, store, output)
    summarise(plan, store, output, failed)
    for where in log_run(store, spec.tracking, spec.name, {"spec": spec.source_file}):
        console.print(f"tracked: {where}")
    wall = time.perf_counter() - start
    _record_run(output, {"command": command, "wall_seconds": round(wall, 1),
                         "jobs_run": len(first.done) + len(evaluated),
                         "jobs_reused": len(first.reused) + len([k for k in second.reused if k not in translated]),
                         "jobs_failed": len(first.failed) + len([k for k in second.failed if k not in translated]),
                         "translations_built": built, "translations_not_built": len(failed)})
    from transferlab.translation.report import write_report

    written = write_report(output)
    console.print(f"report: {written[0]} ({wall:.0f} s)")
    return output


def _write_layout(plan: StudyPlan, store: Store, output: Path) -> None:
    """Depth and the shape of each adapted module on both models (for the report)."""
    layout = {}
    for side in ("x", "y"):
        anchor = next((a for a in plan.anchors[side].values() if store.has("adapter", a.key)), None)
        if anchor is None:
            continue
        adapter = load_anchors(store, [anchor], plan.model(side))[0]
        shapes = {m: list(adapter.B[(0, m)].shape[:1]) + list(adapter.A[(0, m)].shape[1:]) for m in adapter.target_modules}
        layout[plan.model(side)] = {"layers": adapter.n_layers, "rank": adapter.rank, "shapes": shapes}
    (output / "tables").mkdir(exist_ok=True)
    (output / "tables" / "layout.json").write_text(json.dumps(layout, indent=1))


def _record_run(output: Path, record: dict[str, Any]) -> None:
    """Append this invocation to run.json: the report quotes the command and the wall time."""
    path = output / "run.json"
    runs = json.loads(path.read_text()) if path.exists() else []
    runs.append({**record, "finished": time.strftime("%Y-%m-%d %H:%M:%S")})
    write_json(path, runs, indent=1)


def run_spec(path: Path, output: Path | None = None, dry_run: bool = False, console: Any = None,
             executor: Executor | None = None) -> Path | None:
    """`transferlab run SPEC` for `study: translation`: the plan and estimate (dry run), or the study."""
    import sys

    console = console or Console(stderr=True)
    spec = load_translation_spec(path)
    if output:
        spec = dataclasses.replace(spec, output=str(output))
    if dry_run:  # nothing is downloaded or loaded for hub tasks and hub models (engine.dry_run)
        from transferlab.engine.dry_run import print_dry_run

        plan = make_plan(spec, load=False)
        for task, why in plan.audit.items():
            console.print(f"  [yellow]left out[/] {task}: {why}")
        jobs = [*plan.first_jobs(), *plan.translated_jobs({})]
        print_dry_run(console, describe(plan), jobs, [spec.model_x, spec.model_y], spec.tasks,
                      spec.output, spec.device, extra={"translate (CPU)": TRANSLATE_SECONDS * len(set(plan.keys.values()))},
                      list_jobs=False)
        for job in plan.first_jobs():
            console.print(f"  {job.kind:8s} {job.key}  {job.label}")
        for tr in plan.translations:
            console.print(f"  translate {plan.keys[tr]}  {tr.experiment}: {tr.label} for {tr.held_out}"
                          f" ({len(tr.anchors)} anchors{', not evaluated' if not tr.evaluate else ''})")
        return None
    command = " ".join(["transferlab", *sys.argv[1:]]) if sys.argv and "transferlab" in sys.argv[0] else f"transferlab run {path}"
    output = run_study(spec, console, command=command, executor=executor)
    # Training and evaluation jobs that failed make the exit status 1. A translation that cannot be
    # built (a pool with too few anchors for its method) is a cell with its reason in the tables.
    failed = json.loads((output / "run.json").read_text())[-1]["jobs_failed"]
    if failed:
        raise JobsFailed(f"{failed} training or evaluation jobs failed (the finished ones are kept and the report "
                         f"shows what they allow): see `transferlab results jobs {output}`, fix it and run the same "
                         "command again", run_dir=output)
    return output
