"""The probe study from start to finish: datasets -> activations -> probes -> table -> report.

    transferlab probes run --model smollm2-135m --datasets cities,neg_cities,mmlu --out runs/probes
    transferlab run experiments/probes.yaml          # the same from a spec (study: probes)
    transferlab run experiments/probes.yaml --dry-run

Every expensive step is a job of the engine (`plan`: extract, fit, score, map, cross), keyed
by what determines it and run by the same executor as the other studies: re-running reuses
every finished job, a killed run loses only the job in flight, and several workers can share
a study through claims. The driver then writes the tables from the artifacts (`summarise`)
and draws the report from the tables alone.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from transferlab import safe_yaml
from transferlab.engine.execute import Executor, LocalExecutor, RunReport
from transferlab.engine.jobs import Runtime
from transferlab.engine.store import MANIFEST, Store, check_writable, write_json
from transferlab.errors import JobsFailed
from transferlab.probes.plan import plan_probes
from transferlab.probes.results import ProbeResults
from transferlab.probes.spec import ProbeStudyConfig, parse_probe_spec
from transferlab.probes.summarise import summarise


def _say(console: Any, message: str) -> None:
    if console is not None:
        console.print(message, highlight=False)


def run_probe_study(config: ProbeStudyConfig, console: Any = None, command: str = "", loaded: Any = None,
                    executor: Executor | None = None, quiet: bool = False) -> Path:
    """Run (or resume) a probe study and write its report; returns the output directory.

    `loaded` is an already loaded model (anything with model, tokenizer, name, identity, device):
    the study's model, whatever `config.model` says. A list of them serves cross-model studies
    too: each is used instead of loading that model by name.
    """
    started = time.perf_counter()
    given = list(loaded) if isinstance(loaded, (list, tuple)) else [loaded] if loaded is not None else []
    config = config.checked(models=not given)  # a bad value, name or protocol fails here, before any directory
    if given and given[0].name != config.model and not isinstance(loaded, (list, tuple)):
        config = dataclasses.replace(config, model=given[0].name)
    preloaded = {m.name: m for m in given}
    root = Path(config.output)
    check_writable(root)
    plan = plan_probes(config, preloaded, say=lambda m: _say(console, m))
    store, results = Store(root), ProbeResults(root)
    write_json(root / "audit.json", plan.audit, indent=1)
    _say(console, f"plan: {plan.describe()}")
    runtime = Runtime(store, device=config.device, dtype=config.dtype, loaded=dict(preloaded))
    silent = Console(stderr=True, quiet=True) if console is None else console
    report = (executor or LocalExecutor(silent, quiet=quiet or console is None)).run(plan.jobs, runtime)
    rows = summarise(plan, store, results)  # whatever finished is written, even if a job failed
    results.update_run(
        name=config.name, model=plan.model.name, model_identity=plan.model.identity, layers=plan.layers,
        num_layers=plan.model.depth, position=config.position, limit=config.limit, limits=config.limits,
        max_chars=config.max_chars, algorithms=list(config.algorithms), params=plan.algorithms, command=command,
        protocol=config.protocol,
        datasets={ds.name: {"family": ds.family, "grouped": ds.grouped(), **ds.counts()} for ds in plan.datasets},
        audit=plan.audit, extract_seconds={ds.name: _seconds(store, plan.activation_keys[ds.name])
                                           for ds in plan.datasets},
        jobs={"ran": len(report.done), "reused": len(report.reused), "failed": len(report.failed)},
        wall_seconds=round(time.perf_counter() - started, 1), config=_jsonable(config))
    _stop_on_failure(report, {job.key: job.label for job in plan.jobs}, root)
    _say(console, f"{rows} probe results written to {root / 'results.sqlite'} (table probe_results); "
                  f"ran {len(report.done)} jobs, reused {len(report.reused)}")
    if config.report:
        from transferlab.probes.report import write_report

        write_report(root, console=console)
    results.update_run(wall_seconds=round(time.perf_counter() - started, 1))
    return root


def _stop_on_failure(report: RunReport, labels: dict[str, str], root: Path) -> None:
    """The tables need every extraction and the scoring: name the job that broke them, in one line
    (exit status 1). Every finished job is kept, so the next run after the fix does only what is missing."""
    if report.failed:
        key, why = next(iter(report.failed.items()))
        others = len(report.failed) - 1
        raise JobsFailed(f"probe job '{labels.get(key, key)}' failed: {why}"
                         + (f" (and {others} more)" if others else "")
                         + f"; {len(report.skipped)} jobs that need it were skipped; see `transferlab results jobs "
                         f"{root}`, fix it and run again (finished jobs are reused)", run_dir=root)


def _seconds(store: Store, key: str) -> float:
    """How long the extraction behind an activation artifact took (whichever run made it; 0 if none)."""
    if not store.has("activations", key):
        return 0.0
    meta = json.loads((store.path("activations", key) / MANIFEST).read_text()).get("meta", {})
    return float(meta.get("seconds", 0.0))


def _jsonable(config: ProbeStudyConfig) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def run_spec(path: Path, output: Path | None, dry_run: bool, console: Any,
             executor: Executor | None = None) -> Path | None:
    """`transferlab run SPEC` for `study: probes` (the same as `transferlab probes run`, resumable)."""
    config = parse_probe_spec(safe_yaml.read_text(path, "spec file"), str(path))
    if output is not None:
        config = dataclasses.replace(config, output=str(output))
    if dry_run:
        _say(console, f"probe study {config.name!r}: model {config.model}; datasets {', '.join(config.datasets)}; "
                      f"algorithms {', '.join(config.algorithms)}; layers {config.layers}; limit {config.limit}; "
                      f"protocol {config.protocol}; "
                      f"output {config.output}"
                      + (f"; cross-model {', '.join(config.cross_model.models)}" if config.cross_model else ""))
        from transferlab.probes.estimate import print_dry_run

        print_dry_run(config, console or Console(stderr=True))  # loads no model and no hub dataset
        return None
    return run_probe_study(config, console, command=f"transferlab run {path}", executor=executor)
