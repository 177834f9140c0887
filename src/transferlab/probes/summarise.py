"""Summarise a probe study: from the score and cross-model artifacts to the tidy probes tables.

Only the driver runs this, after the jobs: it reads artifacts and writes `probe_results`,
`probe_cross_model`, `probe_skips` and `probes_run.json`, each (model, source model)
evaluation swapped in one transaction. The report reads only these.
"""

from __future__ import annotations


from transferlab.engine.store import Store
from transferlab.probes.cross_model import TABLE
from transferlab.probes.plan import ProbePlan
from transferlab.probes.results import ProbeResults


def summarise(plan: ProbePlan, store: Store, results: ProbeResults) -> int:
    """Write the tables from the finished artifacts; returns the number of study rows written."""
    model = plan.model.name
    written = 0
    if store.has("probe-scores", plan.score_key):
        rows = [tuple(r) for r in store.read_json("probe-scores", plan.score_key, "rows.json")]
        skips = [tuple(s) for s in store.read_json("probe-scores", plan.score_key, "skips.json")]
        written = results.replace(model, model, rows, skips)
        results.update_run(best_probe_for=store.read_json("probe-scores", plan.score_key, "best.json"))
        if (store.path("probe-scores", plan.score_key) / "chance.json").exists():  # scores stored since r4
            results.update_run(chance=store.read_json("probe-scores", plan.score_key, "chance.json"))
    if plan.cross is not None:
        for source, target, key in plan.cross.pairs:
            if store.has("probe-cross", key):
                rows = [tuple(r) for r in store.read_json("probe-cross", key, "rows.json")]
                skips = [tuple(s) for s in store.read_json("probe-cross", key, "skips.json")]
                results.replace(target, source, rows, skips, table=TABLE)
        names = [m.name for m in plan.cross.models]
        results.update_run(cross_model={"models": names, "datasets": [d.name for d in plan.cross.datasets],
                                        "algorithms": list(plan.cross.algorithms),
                                        "neutral_texts": len(plan.cross.neutral.texts),
                                        "layers": {n: plan.cross.layers[n] for n in names}})
    return written
