"""The translations each experiment needs, as plain data.

1. main: every method on every held-out task, fitted on all other anchors;
2. scaling: random anchor pools of a few sizes, and the top-k method at a few k;
3. cross_domain: anchor pools restricted to one domain;
and the cross-model matrix: the reverse direction (Y's adapter translated to X).

A translation is identified by what determines it, so two experiments asking for the
same one (the scaling curve's "all anchors" point is experiment 1's cell) share it.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from transferlab.tasks import stable_hash
from transferlab.translation.protocol import others
from transferlab.translation.spec import TranslationSpec


@dataclass(frozen=True)
class Translation:
    """Fit `method` on the `anchors` tasks and translate `held_out`'s adapter from `source` ('x' or 'y')."""

    experiment: str
    held_out: str
    method: str
    params_json: str
    anchors: tuple[str, ...]
    label: str  # the learner name in the results table
    source: str = "x"
    evaluate: bool = True

    @property
    def params(self) -> dict[str, Any]:
        return json.loads(self.params_json)

    @property
    def target(self) -> str:
        return "y" if self.source == "x" else "x"


def method_params(spec: TranslationSpec, method: str, k: int | None = None) -> dict[str, Any]:
    """The JSON-able hyper-parameters of a method under this spec (base weights are added at run time)."""
    if method.startswith("topk"):
        return {"k": k or spec.top_k}
    if method == "pertensor_mlp":
        return {key: (list(v) if isinstance(v, (list, tuple)) else v) for key, v in spec.mlp.items()}
    return {}


def _evaluated(setting: bool | tuple[str, ...], held: str) -> bool:
    return held in setting if isinstance(setting, tuple) else bool(setting)


def _make(experiment: str, held: str, method: str, params: dict[str, Any], anchors: list[str], label: str,
          source: str = "x", evaluate: bool = True) -> Translation:
    return Translation(experiment, held, method, json.dumps(params, sort_keys=True), tuple(anchors), label, source,
                       evaluate)


def plan_translations(spec: TranslationSpec, tasks: list[str]) -> list[Translation]:
    """Every translation the spec's experiments need, over the tasks that loaded."""
    out: list[Translation] = []
    for held in tasks:
        pool = others(tasks, held)
        for method in spec.methods:
            out.append(_make("main", held, method, method_params(spec, method), pool, method))
    if spec.scaling:
        s = spec.scaling
        for held in [t for t in (s.tasks or tasks) if t in tasks]:
            pool = others(tasks, held)
            for n in s.anchor_counts:
                if n >= len(pool):
                    continue  # the all-anchor point is experiment 1's cell
                for rep in range(s.repeats):
                    chosen = sorted(random.Random(stable_hash("pool", spec.seed, held, n, rep)).sample(pool, n))
                    out.append(_make("scaling", held, s.method, method_params(spec, s.method), chosen,
                                     f"{s.method}@n={n}#{rep}", evaluate=_evaluated(s.evaluate, held)))
            for k in s.top_k:
                if k < len(pool) and k != spec.top_k:
                    out.append(_make("scaling", held, s.topk_method, method_params(spec, s.topk_method, k), pool,
                                     f"{s.topk_method}@k={k}", evaluate=_evaluated(s.evaluate, held)))
    if spec.cross_domain:
        c = spec.cross_domain
        for held in [t for t in (c.tasks or tasks) if t in tasks]:
            for domain, members in spec.domains.items():
                pool = [t for t in members if t in tasks and t != held]
                for method in c.methods:
                    out.append(_make("cross_domain", held, method, method_params(spec, method), pool,
                                     f"{method}@pool={domain}", evaluate=_evaluated(c.evaluate, held)))
    if spec.matrix:
        m = spec.matrix
        for held in [t for t in (m.tasks or tasks) if t in tasks]:
            pool = others(tasks, held)
            out.append(_make("matrix", held, m.method, method_params(spec, m.method), pool, m.method))
            out.append(_make("matrix", held, m.method, method_params(spec, m.method), pool, f"{m.method}(Y->X)",
                             source="y"))
    return out
