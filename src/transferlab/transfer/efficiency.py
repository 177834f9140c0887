"""Seed 002's compute efficiency: the gain of a trained cell per million training tokens and
per training PFLOP, from the cost its adapter's `training.json` records.

The cost of one adapter (`TrainingCost.flops`) is estimated as

    FLOPs = T_train · (4N + 6·N_lora) + T_forward · 2N

- `T_train`: tokens through the training forward and backward passes (prompt and
  completion, no padding; GRPO counts each of its inner steps);
- `T_forward`: tokens through forward passes only (GRPO's sampling and its KL reference
  model; 0 for supervised training);
- `N`: parameters of the frozen base model, `N_lora`: of the adapter.

Per processed token, the frozen base costs 2N forward and about 2N backward (gradients
flow through its activations but not into its weights); the adapter costs 2·N_lora forward
and 4·N_lora backward (activation and weight gradients). Attention's sequence-length term
and the logits SFT computes only at completion positions are ignored: an estimate to rank
adapters by, not a measurement. A sequential adapter also pays for the adapter it was
initialised from; a joint one trained once on both tasks.

Adapters trained before the processed-token count was recorded (and Tinker runs) fall
back to the loss tokens (completion tokens only, so fewer than were processed), `N` from
the model's config (`engine.estimate.model_parameters`) and `N_lora` from the saved
adapter; their rows carry `cost_fallback:<metric>` = 1 and the report marks them.

Rows, per trained cell and metric `m` (and pooled over seeds, with the mean cost of the
seeds' adapters): `gain_per_mtoken:m`, `gain_per_pflop:m` (the gain and its CI divided by
the cost, which is fixed per adapter), `train_mtokens:m` and `train_pflops:m` (the cost).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transferlab.engine.store import POOLED, ResultRow, Store

TOKENS_UNIT = 1e6  # gain per million training tokens
FLOPS_UNIT = 1e15  # gain per training PFLOP
KINDS = ("gain_per_mtoken", "gain_per_pflop", "train_mtokens", "train_pflops", "cost_fallback")


@dataclass(frozen=True)
class TrainingCost:
    """What training one adapter cost, in tokens and parameters (see the module docstring)."""

    train_tokens: float  # through forward and backward passes
    forward_tokens: float  # through forward passes only
    parameters: float  # N, the frozen base
    trainable: float  # N_lora, the adapter
    recorded: bool = True  # False: an old artifact, loss tokens and estimated N stand in

    @property
    def flops(self) -> float:
        return self.train_tokens * (4 * self.parameters + 6 * self.trainable) + self.forward_tokens * 2 * self.parameters

    def __add__(self, other: TrainingCost) -> TrainingCost:
        """Two training stages on one model (sequential training): tokens and FLOPs add up."""
        return TrainingCost(self.train_tokens + other.train_tokens, self.forward_tokens + other.forward_tokens,
                            self.parameters, self.trainable, self.recorded and other.recorded)


def cost_from_record(record: Mapping[str, Any], model: str, adapter_dir: Path | None = None) -> TrainingCost:
    """The cost of one training stage from its `training.json` record (the fallback for old ones)."""
    if record.get("parameters"):
        return TrainingCost(float(record["processed_tokens"]), float(record.get("forward_tokens", 0)),
                            float(record["parameters"]), float(record.get("trainable_parameters", 0)))
    from transferlab.engine.estimate import model_parameters

    return TrainingCost(float(record.get("tokens", 0)), 0.0, model_parameters(model),
                        adapter_parameters(adapter_dir) if adapter_dir else 0.0, recorded=False)


def adapter_parameters(adapter_dir: Path) -> float:
    """Number of weights in a saved PEFT adapter (read from the safetensors header, no tensors loaded)."""
    path = adapter_dir / "adapter_model.safetensors"
    if not path.exists():
        return 0.0
    with path.open("rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    return float(sum(math.prod(t["shape"]) for name, t in header.items() if name != "__metadata__"))


def training_cost(store: Store, adapter: str, trainings: Mapping[str, Mapping[str, Any]],
                  model: str) -> TrainingCost | None:
    """The whole cost of `adapter`: its own stage plus, for sequential training, the adapter it
    continued from. None when the adapter (or its record) is missing."""
    if not store.has("adapter", adapter):
        return None
    try:
        record = store.read_json("adapter", adapter, "training.json")
    except FileNotFoundError:
        return None
    cost = cost_from_record(record, model, store.path("adapter", adapter))
    first = trainings.get(adapter, {}).get("init_adapter")
    if first:
        before = training_cost(store, first, trainings, model)
        return None if before is None else before + cost
    return cost


CostKey = tuple[str, str, str, str, str, int]  # model, learner, trained_on, evaluated_on, condition, seed


def efficiency_rows(rows: Sequence[ResultRow], costs: Mapping[CostKey, TrainingCost]) -> list[ResultRow]:
    """Per-token and per-FLOP rows for every `gain:` row whose cell has a cost; a pooled gain row
    (seed = POOLED) is divided by the mean cost of the seeds' adapters."""
    out = []
    for row in rows:
        if not row.metric.startswith("gain:"):
            continue
        cell = (row.model, row.learner, row.trained_on, row.evaluated_on, row.condition)
        if row.seed == POOLED:
            seeds = [c for k, c in costs.items() if k[:5] == cell]
            if not seeds:
                continue
            cost = TrainingCost(*(sum(getattr(c, f) for c in seeds) / len(seeds)
                                  for f in ("train_tokens", "forward_tokens", "parameters", "trainable")),
                                recorded=all(c.recorded for c in seeds))
        elif (*cell, row.seed) in costs:
            cost = costs[(*cell, row.seed)]
        else:
            continue
        metric = row.metric.removeprefix("gain:")
        out += [_scaled(row, f"gain_per_mtoken:{metric}", cost.train_tokens / TOKENS_UNIT),
                _scaled(row, f"gain_per_pflop:{metric}", cost.flops / FLOPS_UNIT),
                _constant(row, f"train_mtokens:{metric}", cost.train_tokens / TOKENS_UNIT),
                _constant(row, f"train_pflops:{metric}", cost.flops / FLOPS_UNIT)]
        if not cost.recorded:
            out.append(_constant(row, f"cost_fallback:{metric}", 1.0))
    return out


def _scaled(row: ResultRow, metric: str, cost: float) -> ResultRow:
    """The gain divided by a fixed cost: value and CI bounds alike (NA for a zero cost)."""
    scale = 1 / cost if cost > 0 else math.nan
    low, high = (math.nan if x is None else x * scale for x in (row.ci_low, row.ci_high))
    return ResultRow(row.model, row.learner, row.trained_on, row.evaluated_on, row.condition, row.seed, metric,
                     row.value * scale, row.n, low, high)


def _constant(row: ResultRow, metric: str, value: float) -> ResultRow:
    return ResultRow(row.model, row.learner, row.trained_on, row.evaluated_on, row.condition, row.seed, metric,
                     value, row.n, math.nan, math.nan)
