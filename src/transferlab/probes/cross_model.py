"""Cross-model probes (seed 001, "Probe" panel): train a probe on model S, apply it to model T.

The two residual streams have different widths and bases, so T's activations are first
mapped into S's space by a ridge regression fitted on neutral texts (IFEval prompts and
GSM8K questions, which are in no probe dataset) at matched relative depth: T's layer l
pairs with S's layer round(l * N_S / N_T). The probe (w, b) of S then acts on T as
x -> (A^T x + c) . w + b, i.e. a direction A w and a bias on T's own activations, scored
exactly like a native probe. The diagonal (S = T) is the native probe at the same layers.

Cells of the "Model x Trained on" matrix: for each dataset and algorithm the layer is
chosen on T's hparams split, and the validation accuracies are averaged. The study runs
this as jobs (`plan`: a `map` job per pair of models, a `cross` job per ordered pair);
this module holds the parts: the neutral texts, the layer matching and the ridge maps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
