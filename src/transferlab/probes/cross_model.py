"""Cross-model probes (seed 001, "Probe" panel): train a probe on model S, apply it to model T.

The two residual streams have different widths and bases, so T's activations are first
mapped into S's space by a ridge regression fitted on neutral texts (IFEval prompts and
GSM8K questions, which are in no probe dataset) at matched relative depth: T's layer l
pairs with S's layer round(l * N_S / N_T). The probe (w, b) of S then acts on T as
x -> (A^T x + c) . w + b, i.e. a direction A w and a bias on T's own activations, scored
exactly like a native probe. The diagonal (S = T) is the native probe at the same layers.

Cells of the "Model x Trained on" matrix: for each dataset and algorithm the layer is
chosen on T's hparams split, and the validation accuracies are averaged.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from transferlab.errors import TransferlabError
from transferlab.tasks.base import stable_hash

TABLE = "probe_cross_model"
ALPHAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0)  # ridge strengths, times the mean eigenvalue of the inputs


@dataclass(frozen=True)
class NeutralTexts:
    """Texts with no truth label, for fitting maps between models (duck-types a ProbeDataset)."""

    name: str
    texts: tuple[str, ...]

    @property
    def rows(self) -> tuple[str, ...]:
        return self.texts

    def fingerprint(self) -> str:
        return stable_hash("neutral", list(self.texts))


def neutral_texts(n: int) -> NeutralTexts:
    """Up to n prefixes (one, two sentences, or 300 characters) of IFEval prompts and GSM8K questions."""
    from transferlab.tasks import get_task

    sources = [e.prompt for e in get_task("ifeval").all_examples()]
    sources += [e.prompt.rsplit("\n\n", 1)[-1] for e in get_task("gsm8k").all_examples()]
    candidates = set()
    for text in sources:
        sentences = re.split(r"(?<=[.!?])\s+", " ".join(text.split()))
        candidates.add(sentences[0][:300])
        if len(sentences) > 1:
            candidates.add(" ".join(sentences[:2])[:300])
        candidates.add(" ".join(text.split())[:300].rsplit(" ", 1)[0])
    ordered = sorted((c for c in candidates if len(c) > 20), key=lambda c: stable_hash("neutral-order", c))
    if len(ordered) < 50:
        raise TransferlabError("too few neutral texts to fit a map between models")
    return NeutralTexts("neutral", tuple(ordered[:n]))


def matched_layers(target_layers: list[int], n_target: int, n_source: int) -> list[int]:
    """The source layer at the same relative depth as each target layer."""
    return [min(n_source, max(1, round(layer * n_source / n_target))) if layer else 0 for layer in target_layers]


def fit_ridge_maps(X: np.ndarray, Y: np.ndarray, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ridge maps from X (L, n, dx) to Y (L, n, dy), the strength chosen per layer on a held-out fifth.

    Returns (A (L, dx, dy), mean of X (L, dx), mean of Y (L, dy)), so y ~ (x - mx) A + my.
    """
    Xt = torch.as_tensor(np.asarray(X), dtype=torch.float64)
    Yt = torch.as_tensor(np.asarray(Y), dtype=torch.float64)
    n = Xt.shape[1]
    held = torch.as_tensor(np.random.default_rng(seed).random(n) < 0.2)
    if held.sum() < 5 or (~held).sum() < 10:
        raise TransferlabError(f"{n} neutral texts are too few to fit and check a map: use at least 100")

    def solve(x: torch.Tensor, y: torch.Tensor, alphas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mx, my = x.mean(dim=1), y.mean(dim=1)
        U, S, Vh = torch.linalg.svd(x - mx[:, None], full_matrices=False)
        UtY = U.transpose(1, 2) @ (y - my[:, None])  # (L, k, dy)
        scale = (S.pow(2).sum(dim=1) / x.shape[2])[:, None]  # mean eigenvalue (times n)
        factors = S[:, None, :] / (S[:, None, :].pow(2) + alphas[None, :, None] * scale[:, :, None])  # (L, a, k)
        maps = torch.einsum("lkd,lak,lke->lade", Vh, factors, UtY)  # (L, a, dx, dy)
        return maps, mx, my

    alphas = torch.as_tensor(ALPHAS, dtype=torch.float64)
    maps, mx, my = solve(Xt[:, ~held], Yt[:, ~held], alphas)
    pred = torch.einsum("lnd,lade->lane", Xt[:, held] - mx[:, None], maps) + my[:, None, None]
    error = (pred - Yt[:, None, held]).pow(2).sum(dim=(2, 3))  # (L, a)
    best = error.argmin(dim=1)
    full, mx, my = solve(Xt, Yt, alphas)
    return full[torch.arange(full.shape[0]), best], mx, my


def run_cross_model(config: Any, store: Any, results: Any, console: Any = None, primary: Any = None) -> None:
    """Fit probes on each model, carry them to every other model, and store the accuracies."""
    import gc

    from transferlab.models import load
    from transferlab.probes.activations import cached_activations, num_layers
    from transferlab.probes.protocol import Data, ProbeBank, evaluate, fit_one
    from transferlab.probes.study import _say, load_datasets

    cross = config.cross_model
    names = list(dict.fromkeys([config.model, *cross.models]))
    if len(names) < 2:
        raise TransferlabError("cross-model probes need a second model: cross_model: {models: [gemma3-270m]}")
    wanted = cross.datasets or config.datasets
    datasets, _ = load_datasets(_with_datasets(config, wanted), console)
    neutral = neutral_texts(cross.neutral_texts)
    per_model: dict[str, dict[str, Any]] = {}
    for name in names:
        loaded = primary if primary is not None and primary.name == name else load(name, device=config.device,
                                                                                    dtype=config.dtype)
        total = num_layers(loaded.model)
        start = time.perf_counter()
        data = {}
        for ds in datasets:
            acts, layers, _ = cached_activations(store, loaded, ds, cross.layers, config.position, config.batch_size)
            data[ds.name] = Data.of(ds, acts)
        neutral_acts, _, _ = cached_activations(store, loaded, neutral, cross.layers, config.position,
                                                config.batch_size)
        per_model[name] = {"total": total, "layers": layers, "data": data, "neutral": neutral_acts}
        _say(console, f"cross-model: activations of {name} ({len(datasets)} datasets + {len(neutral.texts)} neutral "
                      f"texts) ready in {time.perf_counter() - start:.0f} s")
        if loaded is not primary:
            del loaded
            gc.collect()
    algorithms = {a: dict(config.params.get(a, {})) for a in cross.algorithms}
    for source in names:
        src = per_model[source]
        for target in names:
            tgt = per_model[target]
            pairs = matched_layers(tgt["layers"], tgt["total"], src["total"])
            src_index = [src["layers"].index(layer) for layer in pairs]
            maps = None
            if source != target:
                X = np.array(tgt["neutral"], dtype=np.float64)  # a writable copy of the memory map
                Y = np.array(src["neutral"], dtype=np.float64)[src_index]
                maps = fit_ridge_maps(X, Y)
            rows = []
            skips = []
            for ds in datasets:
                src_data = src["data"][ds.name]
                restricted = Data(ds.name, np.asarray(src_data.acts)[src_index], src_data.labels, src_data.groups,
                                  src_data.answer_types, src_data.splits)
                bank = ProbeBank(tgt["layers"])
                for algorithm, params in algorithms.items():
                    try:
                        coef, intercept, valid, _ = fit_one(restricted, algorithm, params)
                    except TransferlabError as err:
                        skips.append((ds.name, algorithm, None, str(err)))
                        continue
                    if maps is not None:
                        A, mx, my = maps
                        w = torch.as_tensor(coef)
                        coef_t = torch.einsum("lde,le->ld", A, w)
                        intercept = (torch.as_tensor(intercept) + (my * w).sum(dim=1) - (mx * coef_t).sum(dim=1)).numpy()
                        coef = coef_t.numpy()
                    bank.add(ds.name, algorithm, coef, intercept, valid)
                if not len(bank):
                    continue
                for ev in evaluate(bank, [tgt["data"][ds.name]], resamples=config.resamples):
                    for p in range(len(bank)):
                        for li, layer in enumerate(tgt["layers"]):
                            acc = float(ev.acc[p, li])
                            if acc != acc:
                                continue
                            key = (target, source, bank.algorithm[p], layer, ds.name, ds.name)
                            rows.append((*key, "validation", "acc", acc, ev.units, float(ev.acc_ci[0][p, li]),
                                         float(ev.acc_ci[1][p, li])))
                            rows.append((*key, "hparams", "acc", float(ev.hparams_acc[p, li]), None, None, None))
            results.replace(target, source, rows, skips, table=TABLE)
            _say(console, f"cross-model: probes trained on {source}, applied to {target}: {len(rows) // 2} cells")
    results.update_run(cross_model={"models": names, "datasets": [d.name for d in datasets],
                                    "algorithms": list(algorithms), "neutral_texts": len(neutral.texts),
                                    "layers": {n: per_model[n]["layers"] for n in names}})


def _with_datasets(config: Any, names: tuple[str, ...]) -> Any:
    import dataclasses

    return dataclasses.replace(config, datasets=tuple(names))
