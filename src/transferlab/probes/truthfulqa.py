"""Figure r4 and its numbers: do probes that generalise across datasets also find truth on TruthfulQA?

Seed 003 (after mishajw/repeng's `experiments/comparison.py`) holds TruthfulQA out: every
probe trained on another dataset is placed by its generalisation score over the other
datasets (x, TruthfulQA left out) against its plain accuracy on TruthfulQA (y, mc1
question accuracy). Probes trained on TruthfulQA itself are in distribution there and are
left out. Both axes carry their 95 % CIs; points whose TruthfulQA CI reaches chance are
hollow. The dotted lines at 35.9 % and 50.3 % are the references the original study drew
(RepE, Zou et al. 2023, Table 1, for Llama-2-13b-chat): comparable only on that model.

Works from the tidy table alone, so a table imported from another tool gets r4 as long as
its TruthfulQA dataset is named like truthful_qa, truthfulqa or TruthfulQA-mc1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from transferlab.probes.algorithms import BASELINES
from transferlab.probes.figures import _plt, _save
from transferlab.probes.tables import PROBE, THRESHOLD, Tables, errors, mean_ci

SEED_REFERENCES = (0.359, 0.503)  # the original study's horizontal lines (RepE Table 1, Llama-2-13b-chat)


def truthful_qa_name(datasets: list[str]) -> str | None:
    """The run's TruthfulQA dataset, whatever its spelling (None when there is none)."""
    for name in datasets:
        if name.lower().removeprefix("hub-").replace("_", "").replace("-", "").startswith("truthfulqa"):
            return name
    return None


def truthful_qa_table(t: Tables, name: str) -> Any:
    """One row per probe not trained on `name`: generalisation over the other datasets (with CI)
    and accuracy on `name` (with CI); `baseline` marks the reference probes."""
    cells = t.cells[(t.cells.evaluated_on != name) & (t.cells.trained_on != name)]
    x = mean_ci(cells).rename(columns={"value": "score", "low": "score_low", "high": "score_high"})
    acc = t.acc[(t.acc.evaluated_on == name) & (t.acc.trained_on != name)].set_index(PROBE)
    y = acc[["value", "ci_low", "ci_high"]].rename(columns={"value": "tqa", "ci_low": "tqa_low",
                                                            "ci_high": "tqa_high"})
    joined = x.join(y, how="inner").reset_index()
    return joined.assign(baseline=joined.algorithm.isin(BASELINES))


def truthful_qa_numbers(table: Any, chance: float | None) -> dict[str, Any]:
    """Pearson r of the two axes over the real probes, and the seed's question: of the probes
    above 80 % generalisation, how many are above chance on TruthfulQA beyond noise?"""
    real = table[~table.baseline]
    r = float(np.corrcoef(real.score, real.tqa)[0, 1]) if len(real) > 2 and real.tqa.std() > 0 else float("nan")
    good = real[real.score > THRESHOLD]
    out: dict[str, Any] = {"probes": int(len(real)), "r": r, "above_80": int(len(good)), "chance": chance,
                           "mean_accuracy": float(real.tqa.mean()) if len(real) else float("nan")}
    if chance is not None:
        out["above_80_and_above_chance"] = int((good.tqa_low > chance).sum())
        out["above_chance"] = int((real.tqa_low > chance).sum())
    return out


def format_r(value: float) -> str:
    return "NA" if value != value else f"{value:.2f}"


def fig_truthful_qa(t: Tables, path: Path, chance: float | None = None) -> Path | None:
    """Figure r4, drawn whenever the run holds a TruthfulQA dataset and probes trained elsewhere."""
    name = truthful_qa_name(t.datasets)
    if name is None:
        return None
    table = truthful_qa_table(t, name)
    if table.empty:
        return None
    numbers = truthful_qa_numbers(table, chance)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    real, base = table[~table.baseline], table[table.baseline]
    ax.errorbar(real.score, real.tqa, xerr=errors(real, "score", "score_low", "score_high"),
                yerr=errors(real, "tqa", "tqa_low", "tqa_high"), fmt="none", ecolor="#4c72b0", alpha=0.2, lw=0.6)
    noise = (real.tqa_low <= chance).to_numpy() if chance is not None else np.zeros(len(real), dtype=bool)
    ax.scatter(real.score[~noise], real.tqa[~noise], s=8, color="#4c72b0", label="probe")
    ax.scatter(real.score[noise], real.tqa[noise], s=8, facecolors="none", edgecolors="#4c72b0",
               label="probe, TruthfulQA CI reaches chance")
    if len(base):
        ax.scatter(base.score, base.tqa, s=10, marker="x", color="grey", label="random (baseline)")
    if chance is not None:
        ax.axhline(chance, color="#c44e52", ls="--", lw=1, label=f"chance ({chance:.1%})")
    for value, color in zip(SEED_REFERENCES, ("green", "grey")):
        ax.axhline(value, color=color, ls=":", lw=1)
    ax.plot([], [], color="green", ls=":", lw=1, label="original study's lines (Llama-2-13b-chat, RepE Table 1)")
    ax.axvline(THRESHOLD, color="grey", ls=":", lw=0.8)
    ax.set(xlabel=f"generalisation score on the other datasets ({name} left out)",
           ylabel=f"accuracy on {name} (validation)", xlim=(0, 1.02), ylim=(0, 1.02))
    ax.set_title(f"{t.model}: {name} vs the rest (Pearson r = {format_r(numbers['r'])}, {numbers['probes']} probes; "
                 "whiskers: 95 % CI)", fontsize=8)
    ax.legend(fontsize=6, loc="upper left")
    return _save(fig, path)
