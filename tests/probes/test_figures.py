"""The probe figures show their uncertainty (error bars, hatching at chance), and r4 appears with TruthfulQA."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from transferlab.probes import figures, truthfulqa
from transferlab.probes.results import ProbeResults
from transferlab.probes.tables import Tables


@pytest.fixture
def drawn(monkeypatch):
    """Every figure drawn, by file name, before it is closed."""
    out: dict[str, object] = {}
    real = figures._save

    def keep(fig, path):
        out[Path(path).name] = fig
        fig.canvas.draw()
        return real(fig, path)

    monkeypatch.setattr(figures, "_save", keep)
    monkeypatch.setattr(truthfulqa, "_save", keep)
    return out


def two_probe_table(root: Path, random_own: float | None = None) -> Tables:
    """dim generalises (its chance-corrected CIs above 0), lr does not (they include 0); with
    `random_own`, a random baseline scoring that much in distribution joins them."""
    rows = []
    probes = [("dim", 0.9, (0.5, 0.9)), ("lr", 0.6, (-0.3, 0.4))]
    for algorithm, value, cc in probes + ([("random", 0.5, (-0.2, 0.2))] if random_own else []):
        for layer in (1, 2):
            for a in ("x", "y", "z"):
                for b in ("x", "y", "z"):
                    cell = ("m", "m", algorithm, layer, a, b)
                    own = a == b
                    top = random_own if algorithm == "random" else 0.95
                    rows += [(*cell, "hparams", "acc", top if own else value, None, None, None),
                             (*cell, "validation", "acc", top if own else value, 40, value - 0.1, value + 0.05),
                             (*cell, "validation", "recovered", 1.0 if own else value, 40, value - 0.15,
                              min(1.0, value + 0.1)),
                             (*cell, "validation", "recovered_cc", 1.0 if own else sum(cc) / 2, 40, *cc)]
    results = ProbeResults(root)
    results.replace("m", "m", rows)
    return Tables(results.frame(), "m")


def errorbars(ax):
    from matplotlib.container import ErrorbarContainer

    return [c for c in ax.containers if isinstance(c, ErrorbarContainer) or getattr(c, "errorbar", None)]


def test_a_probes_score_ci_combines_its_datasets_cis_in_quadrature(tmp_path):
    t = two_probe_table(tmp_path)
    dim = t.probes[(t.probes.algorithm == "dim") & (t.probes.trained_on == "x") & (t.probes.layer == 1)].iloc[0]
    assert dim.score == pytest.approx(0.9)
    assert dim.score_low == pytest.approx(0.9 - (2 * 0.15**2) ** 0.5 / 2)  # two other datasets
    assert dim.score_high == pytest.approx(0.9 + (2 * 0.1**2) ** 0.5 / 2)
    assert not dim.at_chance
    assert t.probes[t.probes.algorithm == "lr"].at_chance.all()


def test_the_best_probe_bars_have_error_bars_and_hatch_what_is_not_above_chance(tmp_path, drawn):
    t = two_probe_table(tmp_path)
    for by in ("algorithm", "trained_on"):
        figures.fig_best_by(t, by, tmp_path / f"{by}.png")
        ax = drawn[f"{by}.png"].axes[0]
        (bars,) = [c for c in ax.containers if hasattr(c, "patches") and c.patches]
        assert bars.errorbar is not None, f"r1 by {by}: whiskers"
        hatched = {label.get_text(): bool(patch.get_hatch()) for label, patch in zip(ax.get_yticklabels(), bars)}
        if by == "algorithm":
            assert hatched == {"DIM": False, "LR": True}
        else:
            assert not any(hatched.values()), "each train set's best probe is dim, above chance"


def test_the_layer_curve_the_algorithm_boxes_and_the_datasets_have_error_bars(tmp_path, drawn):
    t = two_probe_table(tmp_path)
    figures.fig_best_by(t, "layer", tmp_path / "r1c.png")
    figures.fig_algorithms(t, tmp_path / "r2.png")
    figures.fig_datasets(t, tmp_path / "r3a.png")
    for name in ("r1c.png", "r2.png", "r3a.png"):
        assert errorbars(drawn[name].axes[0]), name
    from matplotlib.collections import PathCollection

    points = [c for c in drawn["r2.png"].axes[0].collections if isinstance(c, PathCollection)]
    hollow = [c for c in points if len(c.get_offsets()) and not c.get_facecolor().any()]
    assert sum(len(c.get_offsets()) for c in hollow) == 6, "the six LR probes (CI reaches chance) are hollow"


def test_the_datasets_figure_never_takes_a_baseline_as_a_datasets_best_probe(tmp_path, drawn):
    t = two_probe_table(tmp_path, random_own=0.99)
    figures.fig_datasets(t, tmp_path / "r3a.png")
    from matplotlib.container import BarContainer

    in_distribution = [c for c in drawn["r3a.png"].axes[0].containers if isinstance(c, BarContainer)][0]
    assert [bar.get_width() for bar in in_distribution] == pytest.approx([0.95] * 3), "DIM's 0.95, not random's 0.99"


def test_r0_draws_the_ci_band_and_keeps_the_baseline_apart(tmp_path, drawn):
    from matplotlib.collections import PolyCollection

    root = tmp_path / "run"
    from tests.probes.test_study import planted_run

    t = Tables(ProbeResults(planted_run(root)).frame(), "planted")
    figures.fig_ecdf_by_layer(t, tmp_path / "r0.png")
    ax = drawn["r0.png"].axes[0]
    assert any(isinstance(c, PolyCollection) for c in ax.collections), "the band of the scores' CIs"
    labels = ax.get_legend_handles_labels()[1]
    assert "Random (baseline)" in labels and "95 % CI of the scores" in labels
    assert "CI low above" in ax.get_title()


def truthful_qa_parquet(path: Path, questions: int = 60) -> Path:
    """TruthfulQA in the hub's format (multiple_choice: mc1_targets / mc2_targets)."""
    import pandas as pd

    records = [{"question": f"Is claim {i} true?",
                "mc1_targets": {"choices": [f"yes {i}", f"no {i}", f"maybe {i}"][: 2 + i % 2],
                                "labels": [1, 0, 0][: 2 + i % 2]},
                "mc2_targets": {"choices": [f"yes {i}"], "labels": [1]}} for i in range(questions)]
    pd.DataFrame(records).to_parquet(path)
    return path


def truth_data(name: str, labels: np.ndarray, groups: np.ndarray, splits: np.ndarray, seed: int):
    """Activations of two layers that hold one shared truth direction (the same for every dataset)."""
    from transferlab.probes.protocol import Data

    d = 16
    truth = np.random.default_rng(99).normal(size=d)
    noise = np.random.default_rng(seed).normal(size=(2, len(labels), d))
    acts = noise + np.array([0.4, 2.5])[:, None, None] * np.outer(labels - 0.5, truth)[None]  # layer 1 weak
    return Data(name, acts, labels, groups, np.array(["s"] * len(labels)), splits)


def test_r4_is_drawn_from_a_truthfulqa_dataset_and_only_then(tmp_path, drawn):
    pytest.importorskip("datasets")
    from tests.probes.test_protocol import data as planted_data
    from transferlab.probes.datasets import load_dataset
    from transferlab.probes.protocol import evaluate, fit_bank
    from transferlab.probes.report import write_report
    from transferlab.probes.results import result_rows

    tqa = load_dataset("truthful_qa", source=truthful_qa_parquet(tmp_path / "tqa.parquet"))
    assert tqa.family == "repe" and tqa.grouped("validation")
    sets = [truth_data("truthful_qa", tqa.labels, tqa.groups, tqa.splits, 0)]
    for i, name in enumerate(("cities", "larger_than", "neg_cities"), start=1):
        p = planted_data(name, i)
        sets.append(truth_data(name, p.labels, p.groups, p.splits, i))
    bank = fit_bank(sets, {"dim": {}, "lr": {}, "random": {}}, [1, 2])
    evs = evaluate(bank, sets, resamples=50)
    root = tmp_path / "run"
    results = ProbeResults(root)
    results.replace("m", "m", result_rows("m", "m", bank, evs, [1, 2]))
    results.update_run(model="m", layers=[1, 2], chance={e.dataset: e.chance for e in evs},
                       datasets={s.name: {"family": "got", "grouped": True} for s in sets})
    write_report(root)
    assert (root / "report" / "r4_truthful_qa.png").stat().st_size > 0
    ax = drawn["r4_truthful_qa.png"].axes[0]
    assert errorbars(ax), "both axes carry their CIs"
    chance = [line for line in ax.get_lines() if "chance" in str(line.get_label())]
    assert chance and chance[0].get_ydata()[0] == pytest.approx(evs[0].chance), "the chance line is TruthfulQA's"
    summary = (root / "report" / "summary.md").read_text()
    assert "## TruthfulQA (figure r4)" in summary and "Pearson r" in summary
    # a table from another tool, the dataset spelled differently: r4 still comes
    t = Tables(results.frame().replace({"truthful_qa": "TruthfulQA"}), "m")
    assert truthfulqa.fig_truthful_qa(t, tmp_path / "imported.png") is not None
    # and without TruthfulQA there is no r4
    plain = planted_run_without_r4(tmp_path / "plain")
    assert not (plain / "report" / "r4_truthful_qa.png").exists()


def planted_run_without_r4(root: Path) -> Path:
    from tests.probes.test_study import planted_run
    from transferlab.probes.report import write_report

    write_report(planted_run(root))
    return root
