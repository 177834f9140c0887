"""The translation study's job kind: `translate` fits one method on its anchor pairs and writes
the predicted adapter for model Y as a PEFT directory (artifact kind "adapter", so the
evaluation jobs that follow take it like any trained adapter).

The handler reads the anchors from the store by key; consecutive translations share the
loaded anchors and base weights through the runtime's memo. A method that cannot run on its
inputs (e.g. a pool with fewer anchors than it needs) fails its job with the reason, which
the report shows; the evaluation that needed it is skipped.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from transferlab.engine.jobs import Job, Runtime, Tick, register_job_kind
from transferlab.errors import TransferlabError
from transferlab.translation.features import AdapterStack, LoraAdapter, base_weights, load_adapter, update_cosines
from transferlab.translation.protocol import translate

register_job_kind("translate", "adapter", "transferlab.translation.jobs:run_translate")


def translate_job(key: str, tr: Any, models_by_side: dict[str, str], anchor_keys: dict[str, dict[str, str]]) -> Job:
    """The job of one planned translation; `anchor_keys` maps side -> task -> anchor adapter key."""
    tasks = [*tr.anchors, tr.held_out]
    params = {"method": tr.method, "params": tr.params, "anchors": list(tr.anchors), "held_out": tr.held_out,
              "source_model": models_by_side[tr.source], "target_model": models_by_side[tr.target],
              "source_adapters": {t: anchor_keys[tr.source][t] for t in tasks},
              "target_adapters": {t: anchor_keys[tr.target][t] for t in tasks}}
    deps = tuple(dict.fromkeys([*params["source_adapters"].values(), *params["target_adapters"].values()]))
    return Job("translate", key, params, deps=deps, label=f"translate {tr.label} for {tr.held_out}")


def _adapter(rt: Runtime, key: str, task: str, model: str) -> LoraAdapter:
    memo_key = ("lora-adapter", key, task)
    if memo_key not in rt.memo:
        if not rt.store.has("adapter", key):
            raise TransferlabError(f"anchor adapter {task} on {model} is not trained yet (store key {key}): "
                                   "its training job failed or did not run")
        rt.memo[memo_key] = load_adapter(rt.store.path("adapter", key), name=task, expect_base=model)
    return rt.memo[memo_key]


def _base_weights(rt: Runtime, model: str, adapter: LoraAdapter) -> Any:
    memo_key = ("base-weights", model)
    if memo_key not in rt.memo:
        rt.memo[memo_key] = base_weights(rt.model(model).model, adapter.tensors)
    return rt.memo[memo_key]


def run_translate(job: Job, rt: Runtime, tick: Tick) -> dict[str, Any]:
    p = job.params
    src = {t: _adapter(rt, k, t, p["source_model"]) for t, k in p["source_adapters"].items()}
    dst = {t: _adapter(rt, k, t, p["target_model"]) for t, k in p["target_adapters"].items()}
    params = p["params"]
    if p["method"] == "subspace_projection":
        params = {"weights_X": _base_weights(rt, p["source_model"], next(iter(src.values()))),
                  "weights_Y": _base_weights(rt, p["target_model"], next(iter(dst.values())))}
    anchors_x = [src[t] for t in p["anchors"]]
    anchors_y = [dst[t] for t in p["anchors"]]
    prediction, seconds = translate(p["method"], params, anchors_x, anchors_y, src[p["held_out"]])
    stack = AdapterStack(anchors_y)
    uniform = torch.full((len(stack),), 1.0 / len(stack), dtype=torch.float64)
    mean = {t: stack.combine(t, uniform) for t in stack.tensors}
    agreement = update_cosines(prediction.factors, dst[p["held_out"]], mean)
    meta = {"method": p["method"], "params": p["params"], "anchors": p["anchors"], "held_out": p["held_out"],
            "source_model": p["source_model"], "target_model": p["target_model"], "seconds": seconds, **agreement,
            **{k: v for k, v in prediction.meta.items() if k != "weights"}, "weights": prediction.meta.get("weights")}
    with rt.store.writing("adapter", job.key, meta={"kind": "translation", "method": p["method"],
                                                    "held_out": p["held_out"]}) as out:
        prediction.write(out)
        (out / "translation.json").write_text(json.dumps(meta, indent=1, default=float))
    return {"seconds": round(seconds, 1), "update cosine": round(agreement["cosine"], 2)}
