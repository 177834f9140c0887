"""LoRA adapters as translation features that respect LoRA's symmetry.

(A, B) and (RA, BR^-1) are the same adapter, so nothing here looks at raw factors:
every quantity is a function of the update ΔW = scale · B·A. Inner products of updates
are computed from the factors without forming ΔW (tr(Aᵢᵀ Bᵢᵀ Bⱼ Aⱼ) costs r²(in + out)),
which keeps kernel methods cheap at billions of parameters, and makes them indifferent
to the widths and head layouts of the two models: X features are only ever compared
with X features, and a prediction for Y is a combination of Y updates.

    from transferlab.translation.features import load_adapter, AdapterStack
    stack = AdapterStack.of([load_adapter(p, expect_base="smollm2-135m") for p in paths])
    gram = stack.gram(("q_proj", 3))      # N x N Frobenius inner products of ΔW
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from transferlab.errors import TransferlabError

TensorId = tuple[int, str]  # (layer index, module name), e.g. (3, "q_proj")
_KEY = re.compile(r"layers\.(\d+)\.(?:.*\.)?([A-Za-z0-9_]+)\.lora_([AB])(?:\.[^.]+)?\.weight$")
WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"


@dataclass
class LoraAdapter:
    """One PEFT LoRA adapter held as scaled factors: ΔW[t] = B[t] @ A[t] for each tensor t.

    `name` is how errors refer to the adapter (its task, or its path); `keys` and
    `config` remember the PEFT layout so a prediction can be written back in it.
    """

    name: str
    base_model: str
    rank: int
    alpha: float
    target_modules: tuple[str, ...]
    A: dict[TensorId, torch.Tensor]  # r x in
    B: dict[TensorId, torch.Tensor]  # out x r, with the LoRA scale folded in
    config: dict[str, Any] = field(default_factory=dict)
    keys: dict[TensorId, tuple[str, str]] = field(default_factory=dict)

    @property
    def tensors(self) -> list[TensorId]:
        return sorted(self.A)

    @property
    def n_layers(self) -> int:
        return max(layer for layer, _ in self.A) + 1

    def delta(self, t: TensorId) -> torch.Tensor:
        """The dense update of one tensor (tests and the naive benchmark only)."""
        return self.B[t] @ self.A[t]


def lora_scale(config: dict[str, Any]) -> float:
    rank, alpha = config["r"], config.get("lora_alpha", config["r"])
    return alpha / rank**0.5 if config.get("use_rslora") else alpha / rank


def load_adapter(path: str | Path, name: str | None = None, expect_base: str | None = None) -> LoraAdapter:
    """Read a PEFT LoRA directory; `expect_base` rejects an adapter made for another model."""
    from safetensors.torch import load_file

    path = Path(path)
    name = name or str(path)
    if not (path / CONFIG).exists() or not (path / WEIGHTS).exists():
        raise TransferlabError(f"adapter {name}: {path} is not a PEFT adapter directory "
                               f"(needs {CONFIG} and {WEIGHTS})")
    config = json.loads((path / CONFIG).read_text())
    if config.get("peft_type", "LORA") != "LORA":
        raise TransferlabError(f"adapter {name}: is a {config['peft_type']} adapter; translation needs LoRA")
    base = str(config.get("base_model_name_or_path") or "")
    if expect_base is not None and base != expect_base:
        raise TransferlabError(f"adapter {name}: was trained for base model {base!r}, expected {expect_base!r}")
    scale = lora_scale(config)
    A: dict[TensorId, torch.Tensor] = {}
    B: dict[TensorId, torch.Tensor] = {}
    keys: dict[TensorId, list[str]] = {}
    for key, value in load_file(str(path / WEIGHTS)).items():
        match = _KEY.search(key)
        if not match:
            continue  # not a LoRA factor (e.g. saved biases); PEFT keeps those as they are
        t = (int(match.group(1)), match.group(2))
        value = value.detach().to(torch.float64)
        if match.group(3) == "A":
            A[t] = value
        else:
            B[t] = value * scale
        keys.setdefault(t, ["", ""])["AB".index(match.group(3))] = key
    if not A or set(A) != set(B):
        raise TransferlabError(f"adapter {name}: {path / WEIGHTS} has no complete lora_A/lora_B pairs per layer")
    modules = tuple(sorted({m for _, m in A}))
    return LoraAdapter(name, base, int(config["r"]), float(config.get("lora_alpha", config["r"])), modules, A, B,
                       config, {t: (k[0], k[1]) for t, k in keys.items()})


def from_factors(name: str, base_model: str, factors: dict[TensorId, tuple[torch.Tensor, torch.Tensor]],
                 alpha: float | None = None) -> LoraAdapter:
    """An in-memory adapter from {tensor: (A, B)} with ΔW = B @ A (tests, benchmarks)."""
    rank = next(iter(factors.values()))[0].shape[0]
    A = {t: a.to(torch.float64) for t, (a, _) in factors.items()}
    B = {t: b.to(torch.float64) for t, (_, b) in factors.items()}
    return LoraAdapter(name, base_model, rank, float(alpha or rank), tuple(sorted({m for _, m in A})), A, B)


def canonical(a: torch.Tensor, b: torch.Tensor, rank: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The SVD canonical factorisation of ΔW = b @ a, truncated to `rank`.

    Returns (A, B) = (√S Vᵀ, U √S), with each singular pair's sign fixed so the largest
    entry of V's column is positive: equal for every (RA, BR⁻¹) of the same update. Works
    on factors only (two QRs and an SVD of a small core), never on the dense ΔW.
    """
    qb, rb = torch.linalg.qr(b)  # b = qb rb
    qa, ra = torch.linalg.qr(a.T)  # a = ra^T qa^T
    u, s, vt = torch.linalg.svd(rb @ ra.T)
    k = min(rank or s.numel(), s.numel())
    u, s, vt = u[:, :k], s[:k], vt[:k]
    v = qa @ vt.T  # in x k
    sign = torch.sign(v.gather(0, v.abs().argmax(0, keepdim=True))).squeeze(0)
    sign[sign == 0] = 1
    root = s.clamp(min=0).sqrt()
    return (root[:, None] * (v * sign).T), (qb @ u) * sign * root


def relative_depth_match(n_from: int, n_to: int) -> list[list[tuple[int, float]]]:
    """For each of `n_to` layers, the layers of an `n_from`-layer model at the same relative
    depth, with interpolation weights: layer j of the target sits at depth j/(n_to-1), which
    falls between two source layers (or on one)."""
    out = []
    for j in range(n_to):
        depth = j / (n_to - 1) if n_to > 1 else 0.0
        pos = depth * (n_from - 1)
        lo = int(np.floor(pos))
        hi = min(lo + 1, n_from - 1)
        frac = pos - lo
        out.append([(lo, 1.0)] if frac < 1e-9 or hi == lo else [(lo, 1 - frac), (hi, frac)])
    return out


class AdapterStack:
    """N adapters of one base model with the same tensors and rank, stacked per tensor.

    Built with `AdapterStack.of`, which checks that every adapter matches the first one and
    names the adapter that does not.
    """

    def __init__(self, adapters: Sequence[LoraAdapter]):
        self.adapters = list(adapters)
        self.names = [a.name for a in self.adapters]
        first = self.adapters[0]
        self.base_model, self.rank, self.tensors = first.base_model, first.rank, first.tensors
        self.modules = first.target_modules
        self.n_layers = first.n_layers
        self._A = {t: torch.stack([a.A[t] for a in self.adapters]) for t in self.tensors}  # N x r x in
        self._B = {t: torch.stack([a.B[t] for a in self.adapters]) for t in self.tensors}  # N x out x r
        self._sq = {t: None for t in self.tensors}

    @classmethod
    def of(cls, adapters: Sequence[LoraAdapter], base_model: str | None = None, role: str = "anchor") -> AdapterStack:
        if not adapters:
            raise TransferlabError(f"no {role} adapters given")
        check_compatible(adapters, base_model, role)
        return cls(adapters)

    def __len__(self) -> int:
        return len(self.adapters)

    def subset(self, index: Sequence[int]) -> AdapterStack:
        return AdapterStack([self.adapters[i] for i in index])

    def shape(self, t: TensorId) -> tuple[int, int]:
        return self._B[t].shape[1], self._A[t].shape[2]

    def cross_gram(self, other: AdapterStack, t: TensorId) -> torch.Tensor:
        """⟨ΔW_i, ΔW'_j⟩_F for i in self, j in other: (BᵢᵀB'ⱼ) ⊙ (AᵢA'ⱼᵀ) summed over r x r."""
        bb = torch.einsum("iop,joq->ijpq", self._B[t], other._B[t])
        aa = torch.einsum("ipn,jqn->ijpq", self._A[t], other._A[t])
        return (bb * aa).sum((2, 3))

    def gram(self, t: TensorId) -> torch.Tensor:
        if self._sq[t] is None:
            self._sq[t] = self.cross_gram(self, t)
        return self._sq[t]

    def combine(self, t: TensorId, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Σᵢ wᵢ ΔWᵢ as (A_cat, B_cat) of rank N·r, without forming the dense update."""
        n, r, fan_in = self._A[t].shape
        a = self._A[t].reshape(n * r, fan_in)
        b = (self._B[t] * weights.to(self._B[t].dtype)[:, None, None]).permute(1, 0, 2).reshape(-1, n * r)
        return a, b


def check_compatible(adapters: Sequence[LoraAdapter], base_model: str | None, role: str) -> None:
    """One line naming the first adapter that differs from the others (or from `base_model`)."""
    first = adapters[0]
    for a in adapters:
        if base_model is not None and a.base_model != base_model:
            raise TransferlabError(f"{role} adapter {a.name}: was trained for base model {a.base_model!r}, "
                                   f"expected {base_model!r}")
        if a.base_model != first.base_model:
            raise TransferlabError(f"{role} adapter {a.name}: base model {a.base_model!r} differs from "
                                   f"{first.name}'s {first.base_model!r}")
        if a.target_modules != first.target_modules or a.tensors != first.tensors:
            raise TransferlabError(f"{role} adapter {a.name}: targets {list(a.target_modules)} on "
                                   f"{a.n_layers} layers, but {first.name} targets {list(first.target_modules)} "
                                   f"on {first.n_layers}: every {role} needs the same target modules")
        if a.rank != first.rank:
            raise TransferlabError(f"{role} adapter {a.name}: rank {a.rank} differs from {first.name}'s "
                                   f"rank {first.rank}: train every {role} with the same rank")
        for t in a.tensors:
            if a.A[t].shape != first.A[t].shape or a.B[t].shape != first.B[t].shape:
                raise TransferlabError(f"{role} adapter {a.name}: layer {t[0]} {t[1]} has shape "
                                       f"{tuple(a.B[t].shape[:1]) + tuple(a.A[t].shape[1:])}, {first.name} has "
                                       f"{tuple(first.B[t].shape[:1]) + tuple(first.A[t].shape[1:])}")


def source_tensors_for(x: AdapterStack, y_tensors: Sequence[TensorId], y_layers: int) -> dict[TensorId, list[tuple[TensorId, float]]]:
    """The X tensors that describe each Y tensor: same module at the same relative depth.

    A Y module X does not adapt draws on every X module at that depth, so a Y adapter
    with other target modules can still be predicted.
    """
    match = relative_depth_match(x.n_layers, y_layers)
    x_set = set(x.tensors)
    out: dict[TensorId, list[tuple[TensorId, float]]] = {}
    for layer, module in y_tensors:
        modules = [module] if any((l, module) in x_set for l, _ in match[layer]) else list(x.modules)
        pairs = [((l, m), w) for l, w in match[layer] for m in modules if (l, m) in x_set]
        if not pairs:
            raise TransferlabError(f"no layer of the source adapters matches layer {layer} {module} of the target")
        out[(layer, module)] = pairs
    return out


def normalised_grams(stack: AdapterStack, other: AdapterStack | None = None) -> dict[TensorId, torch.Tensor]:
    """Per-tensor Grams divided by the anchors' mean squared norm of that tensor, so every
    tensor weighs the same in a global feature whatever its size or learning rate."""
    out = {}
    for t in stack.tensors:
        g = stack.gram(t)
        scale = g.diagonal().mean().clamp(min=1e-30)
        out[t] = (stack.cross_gram(other, t) if other is not None else g) / scale
    return out


def base_weights(model: Any, tensors: Sequence[TensorId]) -> dict[TensorId, torch.Tensor]:
    """The frozen base weight matrix (out x in) of each adapted tensor of a loaded model."""
    wanted = set(tensors)
    out: dict[TensorId, torch.Tensor] = {}
    for name, module in model.named_modules():
        match = re.search(r"layers\.(\d+)\.(?:.*\.)?([A-Za-z0-9_]+)$", name)
        if match and (int(match.group(1)), match.group(2)) in wanted and hasattr(module, "weight"):
            out[(int(match.group(1)), match.group(2))] = module.weight.detach().to(torch.float64).cpu()
    missing = sorted(wanted - set(out))
    if missing:
        raise TransferlabError(f"the base model has no module for layer {missing[0][0]} {missing[0][1]}: "
                               "the adapter was made for another architecture")
    return out


def write_adapter(factors: dict[TensorId, tuple[torch.Tensor, torch.Tensor]], template: LoraAdapter,
                  base_model: str, directory: str | Path, rank: int | None = None) -> Path:
    """Save predicted updates as a PEFT LoRA directory in `template`'s layout (plain PEFT loads it).

    Each update is brought to the adapter rank by truncated SVD (`canonical`), and B is
    divided by the LoRA scale PEFT will multiply back in.
    """
    from safetensors.torch import save_file

    rank = rank or template.rank
    config = dict(template.config or {"peft_type": "LORA", "task_type": "CAUSAL_LM", "bias": "none",
                                      "target_modules": list(template.target_modules), "lora_dropout": 0.0})
    config.update(r=rank, lora_alpha=template.alpha, base_model_name_or_path=base_model, use_rslora=False)
    config.pop("rank_pattern", None), config.pop("alpha_pattern", None)
    scale = template.alpha / rank
    state = {}
    for t in template.tensors:
        if t not in factors:
            raise TransferlabError(f"the prediction has no update for layer {t[0]} {t[1]} of {base_model}")
        a_cat, b_cat = factors[t]
        a, b = canonical(a_cat, b_cat, rank)
        if a.shape[0] < rank:  # the update has lower rank than the adapter: pad with zeros
            a = torch.cat([a, a.new_zeros(rank - a.shape[0], a.shape[1])])
            b = torch.cat([b, b.new_zeros(b.shape[0], rank - b.shape[1])], dim=1)
        key_a, key_b = template.keys.get(t) or (
            f"base_model.model.model.layers.{t[0]}.self_attn.{t[1]}.lora_A.weight",
            f"base_model.model.model.layers.{t[0]}.self_attn.{t[1]}.lora_B.weight")
        state[key_a] = a.to(torch.float32).contiguous()
        state[key_b] = (b / scale).to(torch.float32).contiguous()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(state, str(directory / WEIGHTS), metadata={"format": "pt"})
    (directory / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True))
    return directory


def factor_inner(a1: torch.Tensor, b1: torch.Tensor, a2: torch.Tensor, b2: torch.Tensor) -> float:
    """⟨b1 a1, b2 a2⟩_F from the factors, for updates of any rank."""
    return float(((b1.T @ b2) * (a1 @ a2.T)).sum())


def update_cosines(prediction: dict[TensorId, tuple[torch.Tensor, torch.Tensor]], truth: LoraAdapter,
                   mean: dict[TensorId, tuple[torch.Tensor, torch.Tensor]] | None = None) -> dict[str, float]:
    """How close a predicted update is to the true one, over all tensors, without forming ΔW.

    `cosine` compares the updates themselves; `centered_cosine` compares their departures
    from the anchors' mean update (`mean`), i.e. whether the prediction moved from the mean
    towards the truth. `relative_error` is ‖P − T‖² / ‖T‖².
    """
    pp = pt = tt = 0.0
    cpp = cpt = ctt = 0.0
    for t in truth.tensors:
        a, b = prediction[t]
        ta, tb = truth.A[t], truth.B[t]
        pp += factor_inner(a, b, a, b)
        pt += factor_inner(a, b, ta, tb)
        tt += factor_inner(ta, tb, ta, tb)
        if mean is not None:
            ma, mb = mean[t]
            mm, pm, tm = factor_inner(ma, mb, ma, mb), factor_inner(a, b, ma, mb), factor_inner(ta, tb, ma, mb)
            cpp += factor_inner(a, b, a, b) - 2 * pm + mm
            cpt += factor_inner(a, b, ta, tb) - pm - tm + mm
            ctt += factor_inner(ta, tb, ta, tb) - 2 * tm + mm
    out = {"cosine": pt / max((pp * tt) ** 0.5, 1e-30), "relative_error": (pp - 2 * pt + tt) / max(tt, 1e-30)}
    if mean is not None:
        out["centered_cosine"] = cpt / (cpp * ctt) ** 0.5 if cpp > 1e-12 * max(ctt, 1e-30) else float("nan")
    return out
