"""Seed 001's figure from a real probe store (its report's cross_model.csv) and a translation matrix:
both panels drawn with matplotlib into a real PNG, every cell's value and CI those of the tables."""

from __future__ import annotations

import itertools
import math

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from transferlab.cli import app
from transferlab.errors import TransferlabError
from transferlab.seed001_figure import draw, lora_cells, probe_cells, read_lora

MODELS = ("gemma3-270m", "smollm2-135m")
runner = CliRunner()


def validation_acc(model: str, source: str, dataset: str, algorithm: str, layer: int) -> tuple[float, float]:
    """A planted accuracy and CI half-width: same-model probes better, layer 2 chosen on hparams."""
    value = 0.60 + 0.2 * (model == source) + 0.05 * (dataset == "cities") + 0.02 * (algorithm == "lr") + 0.01 * layer
    return value, 0.04 + 0.01 * (algorithm == "lr") + 0.02 * (dataset == "larger_than")


def probe_run(root):
    from tests.probes.test_study import planted_run
    from transferlab.probes.results import ProbeResults

    planted_run(root)
    results = ProbeResults(root)
    for source in ("planted", "other"):  # planted_run's own cross-model rows make way for a 2 x 2
        results.replace("planted", source, [], table="probe_cross_model")
    for model, source in itertools.product(MODELS, MODELS):
        rows = []
        for dataset, algorithm, layer in itertools.product(("cities", "larger_than"), ("dim", "lr"), (1, 2)):
            value, half = validation_acc(model, source, dataset, algorithm, layer)
            rows.append((model, source, algorithm, layer, dataset, dataset, "validation", "acc", value, 50,
                         value - half, value + half))
            rows.append((model, source, algorithm, layer, dataset, dataset, "hparams", "acc", value, 20, None, None))
        results.replace(model, source, rows, table="probe_cross_model")
    return root


def matrix_csv(path):
    rows = []
    for task, shift in (("larger_than", 0.0), ("cities", 0.1)):
        for model in MODELS:
            rows.append((task, model, "-", False, 0.5, 0.4, 0.6, 60, "acc"))
            for source in MODELS:
                score = 0.55 + shift + 0.1 * (model == source)
                rows.append((task, model, source, model != source, score, score - 0.1, score + 0.12, 60, "acc"))
    frame = pd.DataFrame(rows, columns=["task", "model", "trained_on_model", "translated", "score", "score_lo",
                                        "score_hi", "n", "metric"])
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return frame


def expected_probe_cell(model: str, source: str) -> tuple[float, float]:
    """Layer 2 wins on hparams everywhere; the two algorithms of a dataset add, datasets in quadrature."""
    values, sums = [], []
    for dataset in ("cities", "larger_than"):
        halves = []
        for algorithm in ("dim", "lr"):
            value, half = validation_acc(model, source, dataset, algorithm, 2)
            values.append(value)
            halves.append(half)
        sums.append(sum(halves))
    return float(np.mean(values)), math.sqrt(sum(s * s for s in sums)) / len(values)


def test_probe_report_exports_the_cross_model_cells_with_cis(tmp_path):
    root = probe_run(tmp_path / "probes")
    assert runner.invoke(app, ["probes", "report", str(root)]).exit_code == 0
    cells = pd.read_csv(root / "report" / "tables" / "cross_model.csv")
    assert len(cells) == 4
    for r in cells.itertuples():
        value, half = expected_probe_cell(r.model, r.trained_on_model)
        assert (r.value, r.ci_low, r.ci_high) == pytest.approx((value, value - half, value + half), abs=1e-4)
        assert (r.datasets, r.probes, r.algorithms) == (2, 4, "dim lr")
    seed = pd.read_csv(root / "report" / "tables" / "seed_comparison.csv").set_index("key")
    own = cells[(cells.model == "smollm2-135m") & (cells.trained_on_model == "smollm2-135m")].iloc[0]
    assert seed.loc["001.probe.LLaMA-2.LLaMA-2", "ours"] == pytest.approx(own.value, abs=1e-4)
    assert seed.loc["001.probe.LLaMA-2.LLaMA-2", "seed_value"] == 0.52


def test_lora_cells_average_tasks_with_quadrature(tmp_path):
    frame = matrix_csv(tmp_path / "tables" / "matrix.csv")
    cells = lora_cells(frame).set_index(["model", "trained_on"])
    assert len(cells) == 4  # the base rows ("-") are not a panel cell
    cell = cells.loc[("smollm2-135m", "gemma3-270m")]
    assert cell.value == pytest.approx(0.60) and cell.ci_low == pytest.approx(0.60 - math.sqrt(2 * 0.01) / 2)
    assert cell.ci_high == pytest.approx(0.60 + math.sqrt(2 * 0.0144) / 2) and cell.note.startswith("translated mean")
    one = lora_cells(frame, task="cities").set_index(["model", "trained_on"]).loc[("smollm2-135m", "smollm2-135m")]
    assert (one.value, one.ci_low, one.ci_high) == pytest.approx((0.75, 0.65, 0.87))
    with pytest.raises(TransferlabError, match="has no task 'gsm8k': it has cities, larger_than"):
        lora_cells(frame, task="gsm8k")


def test_the_figure_draws_each_table_cell(tmp_path):
    root = probe_run(tmp_path / "probes")
    assert runner.invoke(app, ["probes", "report", str(root)]).exit_code == 0
    matrix_csv(tmp_path / "translation" / "tables" / "matrix.csv")
    out = tmp_path / "docs" / "seed001.png"
    result = runner.invoke(app, ["figure", "seed001", "--probes", str(root), "--translation",
                                 str(tmp_path / "translation"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    image = matplotlib.image.imread(out)
    assert image.ndim == 3 and image.shape[1] > image.shape[0] > 300  # two panels side by side
    drawn = pd.read_csv(out.with_suffix(".csv"))
    assert sorted(drawn.panel.unique()) == ["lora", "probe"] and len(drawn) == 8

    probe, lora = probe_cells(root), read_lora(tmp_path / "translation")
    fig = draw(probe, lora, tmp_path / "again.png")
    try:
        panels, bars = fig.axes[:2], fig.axes[2:]
        assert len(bars) == 2  # one colour bar per panel, as the seed draws them
        assert [a.get_title() for a in panels] == ["Probe", "LoRA"]
        for ax, cells in zip(panels, (probe, lora)):
            assert [t.get_text() for t in ax.get_xticklabels()] == list(MODELS)  # same order in both panels
            assert [t.get_text() for t in ax.get_yticklabels()] == list(MODELS)
            assert (ax.get_xlabel(), ax.get_ylabel()) == ("Trained on", "Model")
            grid = np.asarray(ax.images[0].get_array())
            texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
            for r in cells.itertuples():
                i, j = MODELS.index(r.model), MODELS.index(r.trained_on)
                assert grid[i, j] == pytest.approx(r.value)
                assert texts[(i, j)] == f"{r.value:.3f}\n[{r.ci_low:.2f}, {r.ci_high:.2f}]"
    finally:
        plt.close(fig)


def test_bad_inputs_are_one_line_errors(tmp_path):
    root = probe_run(tmp_path / "probes")  # a store whose report was never drawn
    matrix = tmp_path / "matrix.csv"
    matrix_csv(matrix)
    with pytest.raises(TransferlabError, match=r"draw its report first \(`transferlab probes report"):
        probe_cells(root)
    with pytest.raises(TransferlabError, match="does not exist"):
        probe_cells(tmp_path / "nowhere")
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"task": ["a"], "score": [0.5]}).to_csv(bad, index=False)
    with pytest.raises(TransferlabError, match="lacks model, n, score_hi"):
        read_lora(bad)
    result = runner.invoke(app, ["figure", "seed001", "--probes", str(root), "--translation", str(matrix),
                                 "--out", str(tmp_path / "x.jpg")])
    assert result.exit_code != 0 and "give a .png file name" in str(result.exception)
    assert not (tmp_path / "x.jpg").exists()
