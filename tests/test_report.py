"""Reports are drawn from a results table alone: here one written by hand, as another tool would."""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from transferlab.cli import app
from transferlab.engine.store import RESULT_COLUMNS


def tidy_table() -> pd.DataFrame:
    rows = []
    for target, base in (("cities", 0.5), ("larger_than", 0.55)):
        rows.append(("m", "-", "-", target, "baseline", 0, "acc", base, 100, base - 0.1, base + 0.1))
        for source in ("cities", "larger_than"):
            condition = "direct" if source == target else "transfer"
            gain = 0.2 if source == target else -0.05
            rows.append(("m", "lora", source, target, condition, 0, "acc", base + gain, 100, base + gain - 0.1,
                         base + gain + 0.1))
            rows.append(("m", "lora", source, target, condition, 0, "gain:acc", gain, 100, gain - 0.08, gain + 0.08))
            if condition == "transfer":
                rows.append(("m", "lora", source, target, condition, 0, "relative:acc", -0.25, 100, -0.7, 0.2))
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def test_import_then_report_without_any_model(tmp_path):
    csv = tmp_path / "from-elsewhere.csv"
    tidy_table().to_csv(csv, index=False)
    runner = CliRunner()
    assert runner.invoke(app, ["results", "import", str(tmp_path / "run"), str(csv)]).exit_code == 0
    result = runner.invoke(app, ["report", str(tmp_path / "run"), "--title", "imported"])
    assert result.exit_code == 0, result.output
    report = tmp_path / "run" / "report"
    assert (report / "m_lora_gain.png").stat().st_size > 10_000
    summary = (report / "summary.md").read_text()
    assert "+0.200 [+0.120, +0.280]*" in summary  # a significant direct gain, starred
    assert "-0.250 [-0.700, +0.200]" in summary  # relative transfer with its CI
    assert "direct training helped its own task significantly in 2 of 2 tasks" in summary


def test_report_of_an_empty_run_is_a_clear_error(tmp_path):
    from transferlab.engine.store import Store

    Store(tmp_path / "empty")
    result = CliRunner().invoke(app, ["report", str(tmp_path / "empty")])
    assert result.exit_code != 0 and "empty" in str(result.exception)


def test_several_seeds_show_mean_and_std_and_every_figure_is_drawn(tmp_path):
    from transferlab.transfer.report import write_report

    one = tidy_table()
    two = one.copy()
    two["seed"] = 1
    two.loc[two["metric"] == "gain:acc", "value"] += 0.02  # seed 1 gains 0.02 more
    results = pd.concat([one, two], ignore_index=True)
    similarity = pd.DataFrame({"task_a": ["cities", "larger_than"], "task_b": ["larger_than", "cities"],
                               "kind": ["vocabulary"] * 2, "similarity": [0.1, 0.1]})
    written = {p.name for p in write_report(results, tmp_path, "seeds", labels={"cities": "geography"},
                                            similarity=similarity)}
    assert {"m_lora_gain.png", "m_lora_relative.png", "asymmetry.png", "similarity_vocabulary.png"} <= written
    summary = (tmp_path / "summary.md").read_text()
    assert "+0.210 [+0.120, +0.280]* ± 0.014 (2 seeds)" in summary  # mean of 0.20 and 0.22 ± their std
    assert "| cities | geography | 2 |" in summary  # the drift table uses the stored label
    assert "vocabulary: not computed: only 2 task pairs" in summary  # too few pairs for a correlation


def test_clusters_leave_out_source_only_and_target_only_tasks(tmp_path):
    from transferlab.transfer.report import analysis_sections

    rows = []
    sources, targets = ["a", "b", "c", "instructions"], ["a", "b", "c", "ifeval"]
    for i, source in enumerate(sources):
        for j, target in enumerate(targets):
            condition = "direct" if source == target else "transfer"
            gain = 0.1 * ((i * 3 + j * 5) % 4) - 0.1
            rows.append(("m", "lora", source, target, condition, 0, "gain:acc", gain, 100, gain - 0.05, gain + 0.05))
    summary = "\n".join(analysis_sections(pd.DataFrame(rows, columns=RESULT_COLUMNS)))
    clusters = summary.split("## Tasks clustered by transfer profile")[1].split("##")[0]
    assert "Left out, being only a source or only a target: ifeval, instructions." in clusters
    assert "| task | cluster |" in clusters and "Not enough cells" not in clusters
    assert {line.split("|")[1].strip() for line in clusters.splitlines() if line.startswith("| ")} >= {"a", "b", "c"}


def test_gain_marks_control_the_false_discovery_rate(tmp_path):
    """One gain whose CI just excludes zero among many null cells is not marked after BH; a
    strong one is. Without p-values (another tool's table) the mark falls back to the CI."""
    from transferlab.engine.store import NONE
    from transferlab.transfer.report import matrices, write_report

    tasks = [f"t{i}" for i in range(6)]
    rows = []
    for t in tasks:
        rows.append(("m", NONE, NONE, t, "baseline", 0, "acc", 0.5, 100, 0.4, 0.6))
        for s in tasks:
            gain, low, high, p = 0.0, -0.1, 0.1, 0.9
            if (s, t) == ("t0", "t1"):
                gain, low, high, p = 0.08, 0.005, 0.16, 0.04  # nominally significant
            if (s, t) == ("t2", "t3"):
                gain, low, high, p = 0.3, 0.2, 0.4, 0.0005  # survives the correction
            condition = "direct" if s == t else "transfer"
            rows += [("m", "lora", s, t, condition, 0, "acc", 0.5 + gain, 100, 0.4 + gain, 0.6 + gain),
                     ("m", "lora", s, t, condition, 0, "gain:acc", gain, 100, low, high),
                     ("m", "lora", s, t, condition, 0, "p:gain:acc", p, 100, None, None)]
    frame = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    _, gains = matrices(frame, "m", "lora")
    cell = lambda g, s, t: g[(g.trained_on == s) & (g.evaluated_on == t)].iloc[0]  # noqa: E731
    assert cell(gains, "t0", "t1").q > 0.05 and cell(gains, "t2", "t3").q < 0.05
    summary = write_report(frame, tmp_path / "r")[0].read_text()
    assert "+0.080 [+0.005, +0.160] |" in summary.replace("*", "") and "+0.080 [+0.005, +0.160]*" not in summary
    assert "+0.300 [+0.200, +0.400]*" in summary
    assert "over its 36 gain cells" in summary and "2 cells have a CI excluding zero before the correction" in summary
    no_p = frame[~frame.metric.str.startswith("p:")]
    assert "+0.080 [+0.005, +0.160]*" in write_report(no_p, tmp_path / "s")[0].read_text()


def test_findings_name_no_largest_transfer_when_no_cell_gained():
    """A zero, a loss or a degenerate predictor's gain is no 'largest transfer'."""
    import pandas as pd
    from transferlab.transfer.report import _findings

    def cell(src, tgt, value, degenerate=False):
        return {"trained_on": src, "evaluated_on": tgt, "value": value, "ci_low": value - 0.05,
                "ci_high": value + 0.05, "degenerate": degenerate}

    nothing = pd.DataFrame([cell("a", "a", 0.3), cell("a", "b", 0.0), cell("a", "c", -0.2), cell("b", "c", 0.1, True)])
    lines = "\n".join(_findings(nothing))
    assert "largest transfer" not in lines and "no transfer cell gained" in lines
    some = pd.DataFrame([cell("a", "a", 0.3), cell("a", "b", 0.12), cell("b", "c", 0.4, True)])
    assert "largest transfer: a → b: +0.120" in "\n".join(_findings(some))
