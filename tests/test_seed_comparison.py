"""The seeds' published numbers (`seed_numbers`) match the seeds' own text, and every study report
ships its tidy tables and a "compared with the seed" table drawn from its results alone."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from seed_tables import SEED_000
from transferlab import seed_numbers as sn
from transferlab.cli import app
from transferlab.engine.store import POOLED, RESULT_COLUMNS

REPO = Path(__file__).parents[1]

# Lines quoted from /work/shared/seeds/NNN_*.txt (the tests cannot read that folder in CI).
SEED_TEXT = {
    "000": SEED_000 + "## Success criteria - Best learned method minus mean baseline (average over held-out): `-0.000` "
                      "- Domain average gap_recovered: `{'math': 1.800000000000002, 'code': -0.2500000000000003, "
                      "'science': 1.3333333333333333}`",
    "001": """**Left Heatmap: "Probe"**
* **Cell (Mistral Model, Trained On Mistral):** Color is a medium-dark purple. Estimated value: **~0.65**.
* **Cell (Mistral Model, Trained On LLaMA-2):** Color is bright orange-red. Estimated value: **~0.78**.
* **Cell (LLaMA-2 Model, Trained On Mistral):** Color is a bright red-pink. Estimated value: **~0.75**.
* **Cell (LLaMA-2 Model, Trained On LLaMA-2):** Color is very dark purple/black. Estimated value: **~0.52**.
**Right Heatmap: "LoRA + Prompt"**
* **Cell (Mistral Model, Trained On Mistral):** Color is dark purple. Estimated value: **~0.68**.
* **Cell (Mistral Model, Trained On LLaMA-2):** Color is bright orange-red. Estimated value: **~0.79**.
* **Cell (LLaMA-2 Model, Trained On Mistral):** Color is dark purple. Estimated value: **~0.67**.
* **Cell (LLaMA-2 Model, Trained On LLaMA-2):** Color is bright red-pink. Estimated value: **~0.76**.
""",
    "002": """### Transfer Matrix (Hypothetical)
                     Target Domain
                 Math   Code   Physics   Logic
Source    Math    -     70%     80%      60%
Domain    Code   50%     -      40%      55%
         Physics 75%    35%      -       50%
          Logic  45%    50%     45%       -

Values = Transfer Efficiency (% of direct training performance)
""",
    "003": """| Metric | Llama-2-13B | Qwen3-4B | Change |
|--------|-------------|----------|--------|
| Mean cross-dataset accuracy | 70% | **84.3%** | +14.3% |
| Probes >80% recovered | 36% | **70%** | +34% |
| Best probe (ag_news) | 92.8% | **94.3%** | +1.5% |
""",
    "004": "As an illustrative strongest-case example in a controlled instruction-versus-numeric setting, an "
           "instruction-tuned adapter substantially improves off-target NM-based numeric benchmark performance from "
           "0.133 to 0.632 while not improving verifiable instruction following on IFEval (ILA: 0.313 to 0.271; PLA: "
           "0.250 to 0.143; values rounded to three decimals).",
}


def test_every_number_quotes_its_seed():
    assert set(n.seed for n in sn.NUMBERS.values()) == set(SEED_TEXT) == set(sn.SEEDS)
    for number in sn.NUMBERS.values():
        assert number.quote in SEED_TEXT[number.seed], number.key
        assert number.key.startswith(number.seed + ".")


def test_seed_000_numbers_follow_from_its_main_table():
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in SEED_000.splitlines()[2:]]
    header = [c.strip() for c in SEED_000.splitlines()[0].strip("|").split("|")]
    assert header[2:-1] == list(sn.SEED_000_METHODS)
    table = [(r[0], r[1], tuple(float(v) for v in r[2:-1]), None if r[-1] == "NA" else float(r[-1])) for r in rows]
    assert table == list(sn.SEED_000_MAIN)
    for i, method in enumerate(sn.SEED_000_METHODS):
        column = np.mean([r[2][i] for r in table])
        assert sn.NUMBERS[f"000.mean_score.{method}"].value == pytest.approx(column, abs=1e-4)
    gains = [r[2][-1] - r[2][0] for r in table]
    assert sn.NUMBERS["000.oracle_gain.mean"].value == pytest.approx(np.mean(gains), abs=1e-4)
    assert sn.NUMBERS["000.oracle_gain.defined"].value == 0.0 and max(gains) < 0.05
    assert sn.NUMBERS["000.best_minus_mean"].value == 0.0  # the seed prints -0.000


def test_seed_001_cells_match_their_panel():
    text = SEED_TEXT["001"]
    for panel, (heading, cells) in sn.SEED_001_PANELS.items():
        block = text.split(heading)[1].split("**Right Heatmap")[0] if panel == "probe" else text.split(heading)[1]
        for model, trained_on, value, line in cells:
            assert line in block
            assert f"({model} Model, Trained On {trained_on})" in line
            assert float(re.search(r"~([0-9.]+)", line).group(1)) == value
            assert sn.NUMBERS[sn.seed_001_key(panel, model, trained_on)].value == value


def test_seed_002_matrix_is_hypothetical_and_parsed_right():
    for source, (line, row) in zip(sn.SEED_002_DOMAINS, sn.SEED_002_MATRIX):
        cells = line.split()[-4:]
        assert line.split()[-5] == source
        assert [None if c == "-" else int(c.rstrip("%")) / 100 for c in cells] == list(row)
    off = [v for _, row in sn.SEED_002_MATRIX for v in row if v is not None]
    assert sn.NUMBERS["002.efficiency.mean"].value == pytest.approx(np.mean(off), abs=1e-4)
    assert all("HYPOTHETICAL" in n.note for n in sn.NUMBERS.values() if n.seed == "002")
    assert "HYPOTHETICAL" in sn.SEEDS["002"].setup


def test_seed_003_and_004_numbers():
    for key, _, line, llama, qwen in sn.SEED_003_ROWS:
        columns = [c.strip().strip("*") for c in line.strip("|").split("|")]
        assert line in SEED_TEXT["003"] and columns[0] in line
        percents = [float(c.rstrip("%")) / 100 for c in columns[1:3]]
        assert percents == pytest.approx([llama, qwen])
        assert sn.NUMBERS[f"003.{key}.llama2_13b"].value == llama and sn.NUMBERS[f"003.{key}.qwen3_4b"].value == qwen
    text = SEED_TEXT["004"]
    for key, label in (("numeric", "from"), ("ila", "ILA:"), ("pla", "PLA:")):
        base, adapter = map(float, re.search(rf"{label} ([0-9.]+) to ([0-9.]+)", text).groups())
        assert (sn.NUMBERS[f"004.{key}.base"].value, sn.NUMBERS[f"004.{key}.adapter"].value) == (base, adapter)
        assert sn.NUMBERS[f"004.{key}.gain"].value == pytest.approx(adapter - base, abs=1e-9)


def test_comparison_table_markdown_and_csv(tmp_path):
    frame = sn.comparison_table([("004.pla.adapter", sn.Ours(0.2, 0.1, 0.3, "cell")),
                                 ("002.efficiency.mean", sn.Ours(math.nan, detail="none defined"))], "ours: tiny")
    assert list(frame["seed_value"]) == [0.143, sn.NUMBERS["002.efficiency.mean"].value]
    text = "\n".join(sn.comparison_markdown(frame))
    assert ("| 004 | IFEval prompt-level accuracy, PLA (on-label): instruction-tuned adapter | 0.200 [0.100, 0.300]"
            in text)
    assert "| NA | none defined |" in text and "HYPOTHETICAL" in text and "ours: tiny" in text
    back = pd.read_csv(sn.write_comparison(frame, tmp_path / "tables"), dtype={"seed": str})
    assert list(back["key"]) == list(frame["key"]) and back["seed"].tolist() == ["004", "002"]
    with pytest.raises(KeyError):
        sn.comparison_table([("004.nonsense", sn.Ours(1.0))], "")


def test_seed_001_roles_put_the_llama_model_in_llama_2s_place():
    roles, why = sn.seed_001_roles(["smollm2-135m", "gemma3-270m"])
    assert roles == {"gemma3-270m": "Mistral", "smollm2-135m": "LLaMA-2"} and "Llama" in why
    rows = sn.seed_001_rows("probe", [("smollm2-135m", "gemma3-270m", sn.Ours(0.6, 0.5, 0.7))])
    assert rows[0][0] == "001.probe.LLaMA-2.Mistral" and rows[0][1].value == 0.6
    assert sn.seed_001_rows("probe", [("a", "a", sn.Ours(0.6))]) == []  # one model: no 2x2 to compare


def test_big_tables_go_to_parquet(tmp_path):
    from transferlab.tidy import MAX_CSV_BYTES, read_table, write_table

    small = pd.DataFrame({"x": [0.123456789, 1.0]})
    path = write_table(small, tmp_path, "t")
    assert path.name == "t.csv" and read_table(path)["x"].tolist() == [0.1235, 1.0]
    big = pd.DataFrame({"name": ["a-fairly-long-dataset-name"] * (MAX_CSV_BYTES // 20), "x": 0.5})
    path = write_table(big, tmp_path, "t")
    assert path.name == "t.parquet" and not (tmp_path / "t.csv").exists() and len(read_table(path)) == len(big)


# ---- the transfer report ----------------------------------------------------------------------------
def drift_table() -> pd.DataFrame:
    """Seed 004's design as a tidy table: an instruction adapter and a math adapter, two seeds and the pooled rows."""
    rows = []
    scores = {"gsm8k": ("exact_match_flexible", 0.10), "ifeval": ("prompt_strict", 0.30), "humaneval": ("pass@1", 0.2)}
    for seed in (0, 1, POOLED):
        for target, (metric, base) in scores.items():
            rows.append(("m", "-", "-", target, "baseline", seed, metric, base, 100, base - 0.05, base + 0.05))
            if target == "ifeval":
                rows.append(("m", "-", "-", target, "baseline", seed, "inst_strict", 0.40, 100, 0.35, 0.45))
            rows.append(("m", "-", "-", target, "baseline", seed, "share:majority", 0.5, 100, math.nan, math.nan))
            for source, gain, p in (("alpaca_gpt4", 0.30 if target == "gsm8k" else -0.10, 0.001),
                                    ("gsm8k", 0.15 if target == "gsm8k" else 0.01, 0.4 if target != "gsm8k" else 0.01)):
                condition = "direct" if source == target else "transfer"
                rows += [("m", "lora", source, target, condition, seed, metric, base + gain, 100, base + gain - 0.05,
                          base + gain + 0.05),
                         ("m", "lora", source, target, condition, seed, f"gain:{metric}", gain, 100, gain - 0.04,
                          gain + 0.04),
                         ("m", "lora", source, target, condition, seed, f"p:gain:{metric}", p, 100, math.nan, math.nan),
                         ("m", "lora", source, target, condition, seed, "share:majority",
                          0.97 if (source, target) == ("gsm8k", "humaneval") else 0.5, 100, math.nan, math.nan)]
                if target == "ifeval":
                    rows += [("m", "lora", source, target, condition, seed, "inst_strict", 0.35, 100, 0.30, 0.40),
                             ("m", "lora", source, target, condition, seed, "gain:inst_strict", -0.05, 100, -0.09,
                              -0.01)]
                if condition == "transfer" and target == "humaneval":
                    rows.append(("m", "lora", source, target, condition, seed, "efficiency:pass@1",
                                 0.6 if source == "gsm8k" else math.nan, 100, 0.4, 0.8))
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def test_transfer_report_ships_tidy_tables_and_the_seed_comparison(tmp_path):
    from transferlab.stats import bh_qvalues
    from transferlab.transfer.report import write_report

    results = drift_table()
    written = write_report(results, tmp_path / "report", "drift", labels={"alpaca_gpt4": "instruction_following"})
    tables = tmp_path / "report" / "tables"
    assert {p.name for p in written} >= {"cells.csv", "metrics.csv", "drift.csv", "seed_comparison.csv"}
    cells = pd.read_csv(tables / "cells.csv")
    assert len(cells) == 3 * (3 + 6)  # (2 seeds + pooled) x (3 base + 6 trained cells), primary metrics only
    one = cells[(cells.trained_on == "alpaca_gpt4") & (cells.evaluated_on == "gsm8k") & (cells.seed == POOLED)].iloc[0]
    assert (one.metric, one.score, one.gain, one.gain_ci_low) == ("exact_match_flexible", 0.4, 0.3, 0.26)
    assert one.marks == "*" and one.significant and one.q < 0.05
    family = cells[(cells.seed == 0) & (cells.learner == "lora")].sort_values(["evaluated_on", "trained_on"])
    p = results[(results.seed == 0) & results.metric.str.startswith("p:gain:")]
    assert sorted(family.q.round(4)) == sorted(np.round(bh_qvalues(p.value.to_numpy()), 4))
    dagger = cells[(cells.trained_on == "gsm8k") & (cells.evaluated_on == "humaneval")]
    assert dagger.degenerate.all() and dagger.marks.str.contains("†").all()
    metrics = pd.read_csv(tables / "metrics.csv", keep_default_na=False)
    na = metrics[(metrics.quantity == "efficiency") & (metrics.trained_on == "alpaca_gpt4")]
    assert len(na) == 3 and (na.value == "").all() and na.na_reason.str.contains("chance").all()
    seed = pd.read_csv(tables / "seed_comparison.csv", dtype={"seed": str}).set_index("key")
    assert seed.loc["004.numeric.adapter", "ours"] == 0.4 and seed.loc["004.numeric.adapter", "seed_value"] == 0.632
    assert seed.loc["004.numeric.base", "ours"] == 0.1 and seed.loc["004.numeric.gain", "ours_ci_low"] == 0.26
    assert seed.loc["004.ila.gain", "ours"] == -0.05 and seed.loc["004.pla.adapter", "ours"] == pytest.approx(0.2)
    assert "pooled over 2 seeds" in seed.loc["004.ila.adapter", "ours_detail"]
    math_code = seed.loc["002.efficiency.Math.Code"]
    assert (math_code.ours, math_code.seed_value) == (0.6, 0.7) and "gsm8k -> humaneval" in math_code.ours_detail
    assert "† degenerate" in math_code.ours_detail  # gsm8k -> humaneval answers one way on 97% of examples
    mean = seed.loc["002.efficiency.mean"]  # so the mean leaves it out, and alpaca's cell is NA: none is left
    assert pd.isna(mean.ours) and "none of the 2 transfer cells" in mean.ours_detail
    assert "leaving out 1 degenerate" in mean.ours_detail
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "## Compared with the seed" in summary
    assert "| 004 | numeric benchmark score (off-label): base model | 0.100 [0.050, 0.150] |" in summary
    assert "tables/cells.csv" in summary


def test_transfer_tables_regenerate_from_the_store(tmp_path):
    csv = tmp_path / "results.csv"
    drift_table().to_csv(csv, index=False)
    runner = CliRunner()
    assert runner.invoke(app, ["results", "import", str(tmp_path / "run"), str(csv)]).exit_code == 0
    result = runner.invoke(app, ["report", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    tables = tmp_path / "run" / "report" / "tables"
    first = (tables / "cells.csv").read_text()
    (tables / "cells.csv").unlink()
    assert runner.invoke(app, ["report", str(tmp_path / "run")]).exit_code == 0
    assert (tables / "cells.csv").read_text() == first
    assert all(p.stat().st_size < 1_000_000 for p in tables.iterdir())


# ---- the probe and translation reports --------------------------------------------------------------
def test_probe_report_ships_tidy_tables_and_seed_003(tmp_path):
    from tests.probes.test_study import planted_run
    from transferlab.probes.results import ProbeResults
    from transferlab.probes.tables import Tables, headline

    root = planted_run(tmp_path / "run")
    assert CliRunner().invoke(app, ["probes", "report", str(root)]).exit_code == 0
    tables = root / "report" / "tables"
    t = Tables(ProbeResults(root).frame(), "planted")
    cells = pd.read_csv(tables / "cells.csv")
    assert len(cells) == len(t.acc) and cells.recovered.notna().sum() == len(t.recovered)
    h = headline(t)
    rows = pd.read_csv(tables / "headline.csv").set_index("quantity")
    mean = rows.loc["mean_cross_accuracy"]
    assert mean.value == pytest.approx(h["mean_cross_accuracy"], abs=1e-4) and mean.ci_low <= mean.value <= mean.ci_high
    assert mean.ci_high - mean.ci_low > 0
    seed = pd.read_csv(tables / "seed_comparison.csv", dtype={"seed": str}).set_index("key")
    assert seed.loc["003.mean_cross_accuracy.qwen3_4b", "seed_value"] == 0.843
    assert seed.loc["003.mean_cross_accuracy.qwen3_4b", "ours"] == pytest.approx(h["mean_cross_accuracy"], abs=1e-4)
    assert seed.loc["003.best_probe.llama2_13b", "ours"] == pytest.approx(h["best"]["score"], abs=1e-4)
    assert "17 datasets" in seed.loc["003.share_above_80.llama2_13b", "seed_setup"]
    assert "## Compared with the seed" in (root / "report" / "summary.md").read_text()


def test_translation_report_compares_with_seed_000_and_001(tmp_path):
    run = tmp_path / "translation"
    shutil.copytree(REPO / "docs" / "results" / "translation", run)
    assert CliRunner().invoke(app, ["translation", "report", str(run)]).exit_code == 0
    seed = pd.read_csv(run / "report" / "tables" / "seed_comparison.csv", dtype={"seed": str}).set_index("key")
    summary = pd.read_json(run / "tables" / "summary.json", typ="series")
    tasks = pd.read_csv(run / "tables" / "tasks.csv")
    matrix = pd.read_csv(run / "tables" / "matrix.csv")
    assert seed.loc["000.best_minus_mean", "ours"] == pytest.approx(summary["best_learned_minus_mean"], abs=1e-4)
    assert seed.loc["000.mean_score.base_Y", "ours"] == pytest.approx(tasks.base_y.mean(), abs=1e-4)
    assert seed.loc["000.mean_score.base_Y", "seed_value"] == pytest.approx(0.2545)
    low, high = seed.loc["000.oracle_gain.mean", ["ours_ci_low", "ours_ci_high"]]
    assert low < tasks.oracle_gain.mean() < high
    own = matrix[(matrix.model == "smollm2-135m") & (matrix.trained_on_model == "smollm2-135m")]
    cell = seed.loc["001.lora.LLaMA-2.LLaMA-2"]
    if len(own) == 1:  # one matrix task: its own cell and CI
        assert (cell.ours, cell.ours_ci_low, cell.ours_ci_high) == pytest.approx(
            (own.score.iloc[0], own.score_lo.iloc[0], own.score_hi.iloc[0]), abs=1e-4)
    else:  # several: the mean over tasks, inside its CI
        assert cell.ours == pytest.approx(own.score.mean(), abs=1e-4)
        assert cell.ours_ci_low < cell.ours < cell.ours_ci_high
        assert f"mean over {len(own)} tasks" in cell.ours_detail
    assert "## Compared with the seed" in (run / "report" / "translation.md").read_text()
