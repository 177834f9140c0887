"""The translation study end to end on two tiny Llamas of different widths and depths:
spec errors, dry run, run, resume, results table, report, PEFT loading of a translation."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from translation_helpers import write_toy_tasks

from transferlab.engine.spec import SpecError
from transferlab.engine.store import Store
from transferlab.translation.spec import parse_translation_spec
from transferlab.translation.study import run_spec

SPEC = """\
study: translation
name: tiny
model_x: {x}
model_y: {y}
task_files: [toy-a.yaml, toy-b.yaml, toy-c.yaml, toy-d.yaml, toy-e.yaml]
domains: {{letters: [toy-a, toy-b, toy-c], digits: [toy-d, toy-e]}}
anchor: {{rank: 2, alpha: 4, steps: 1, batch_size: 4, learning_rate: 1.0e-2, max_seq_len: 32}}
methods: [mean, global_ridge, topk_global_ridge, pertensor_mlp, subspace_projection]
top_k: 3
mlp: {{steps: 20}}
budgets: {{train_examples: 8, eval_examples: 6}}
experiments:
  scaling: {{anchor_counts: [3], tasks: [toy-a], evaluate: false}}
  cross_domain: {{methods: [global_ridge], tasks: [toy-d]}}
  matrix: {{tasks: [toy-a]}}
bootstrap: 50
threads: 1
output: {out}
"""


@pytest.fixture(scope="module")
def study(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    write_toy_tasks(root)
    path = root / "spec.yaml"
    path.write_text(SPEC.format(x=tiny_models[0], y=tiny_models[1], out=root / "run"))
    out = run_spec(path)
    return path, out


def test_run_writes_results_tables_and_report(study):
    _, out = study
    frame = Store(out).results()
    translated = frame[frame.condition == "translated:main"]
    assert set(translated.learner) == {"mean", "global_ridge", "topk_global_ridge",
                                       "pertensor_mlp", "subspace_projection"}
    assert {"acc", "gain:acc", "gap_recovered:acc", "update_cosine"} <= set(translated.metric)
    assert set(frame[frame.condition == "oracle"].evaluated_on) == {"toy-a", "toy-b", "toy-c", "toy-d", "toy-e"}
    report = (out / "report" / "translation.md").read_text()
    assert "Layers are matched by relative depth" in report and "2 layers" in report and "3 layers" in report
    for section in ("Experiment 1", "Summary", "Experiment 2", "Experiment 3", "Cross-model adapter matrix",
                    "Honest failure modes"):
        assert section in report
    assert {p.name for p in (out / "report").glob("*.png")} == {"main_table.png", "summary.png", "scaling.png",
                                                                 "domain_heatmap.png", "matrix.png"}
    rows = (out / "tables" / "translations.csv").read_text()
    assert "global_ridge@n=3#0" in rows and "global_ridge@pool=letters" in rows
    # the digits pool has one anchor left when toy-d is held out: recorded, not crashed
    assert "needs at least 3 anchor pairs, got 1 (toy-e)" in rows
    matrix = (out / "tables" / "matrix.csv").read_text()
    assert matrix.count("toy-a") == 6  # two models x (base, own adapter, translated adapter)


def test_gains_carry_bh_qvalues_per_family(study):
    """Oracle gains are one family and each experiment's translated gains another: q >= p,
    and the report prints the oracle gain's q beside its CI."""
    import pandas as pd

    from transferlab.stats import bh_qvalues

    _, out = study
    tasks = pd.read_csv(out / "tables" / "tasks.csv")
    assert (tasks.oracle_gain_q >= tasks.oracle_gain_p).all()
    assert list(tasks.oracle_gain_q) == pytest.approx(list(bh_qvalues(tasks.oracle_gain_p)))
    trans = pd.read_csv(out / "tables" / "translations.csv")
    main = trans[(trans.experiment == "main") & trans.gain_p.notna()]
    assert len(main) and list(main.gain_q) == pytest.approx(list(bh_qvalues(main.gain_p)))
    report = (out / "report" / "translation.md").read_text()
    assert re.search(r"\| toy-a \| [-0-9.]+ \[[^]]+\], q [0-9.]+ \|", report)


def test_wall_time_counts_concurrent_workers_once():
    from transferlab.translation.report_cells import busy_seconds

    def run(finished: str, seconds: float) -> dict:
        return {"finished": finished, "wall_seconds": seconds}

    # two workers at once (10:00-11:00 and 10:30-11:00), then a later sitting of 10 minutes
    runs = [run("2026-12-02 11:00:00", 3600), run("2026-12-02 11:00:00", 1800), run("2026-12-02 15:10:00", 600)]
    assert busy_seconds(runs) == pytest.approx(4200)
    assert busy_seconds([run("2026-12-02 11:00:00", 60), run("2026-12-02 12:00:00", 60)]) == pytest.approx(120)


def test_translated_adapter_loads_in_plain_peft_on_model_y(study, tiny_models):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    _, out = study
    store = Store(out)
    adapters = [p.parent for p in (out / "artifacts" / "adapter").glob("*/translation.json")]
    meta = json.loads((adapters[0] / "translation.json").read_text())
    assert meta["target_model"] in tiny_models
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(meta["target_model"]), str(adapters[0]))
    assert model.peft_config["default"].r == 2
    assert store.has("adapter", adapters[0].name)  # written with a manifest, like every artifact


def test_rerun_resumes_without_redoing_work(study):
    path, out = study
    run_spec(path)
    runs = json.loads((out / "run.json").read_text())
    assert runs[-1]["jobs_run"] == 0 and runs[-1]["translations_built"] == 0 and runs[-1]["jobs_reused"] > 0


def test_a_second_run_on_shared_artifacts_trains_nothing(study, tmp_path):
    """`artifacts:` points a new run at another run's adapters and evaluations: the anchors, the
    evaluations and the translations are all reused, and its results equal the first run's."""
    path, out = study
    text = path.read_text().replace(f"output: {out}", f"output: {tmp_path / 'again'}\nartifacts: {out / 'artifacts'}")
    again = path.with_name("again.yaml")
    again.write_text(text)
    assert parse_translation_spec(text, str(again)).artifacts == str(out / "artifacts")
    second = run_spec(again)
    runs = json.loads((second / "run.json").read_text())
    assert runs[-1]["jobs_run"] == 0 and runs[-1]["translations_built"] == 0 and runs[-1]["jobs_reused"] > 0
    assert not (second / "artifacts").exists()

    import pandas as pd

    def rows(where: Path) -> pd.DataFrame:
        frame = Store.existing(where).results()
        return frame.drop(columns=[c for c in ("updated",) if c in frame]).reset_index(drop=True)

    assert len(rows(out)) > 0
    pd.testing.assert_frame_equal(rows(second), rows(out))  # the rows of reused jobs were committed here too


def test_dry_run_prints_the_plan_and_an_estimate(study, capsys):
    from rich.console import Console

    path, _ = study
    console = Console(file=None, force_terminal=False, width=200)
    assert run_spec(path, dry_run=True, console=console) is None
    printed = capsys.readouterr().out
    assert "5 anchor tasks over 2 domains; 10 anchor trainings" in printed and "estimate" in printed


@pytest.mark.parametrize("change, message", [
    ("methods: [mean, globl_ridge]", r"spec.yaml:\d+: methods.1: unknown translation method 'globl_ridge': did you mean 'global_ridge'"),
    ("top_k: 9", r"spec.yaml:\d+: top_k: top_k=9 needs at least 10 anchor tasks"),
    ("domains: {a: [toy-a, toy-b], b: [toy-b, toy-c]}", r"domains.b.0: task 'toy-b' is already in domain 'a'"),
    ("anchor: {rank: 0}", r"spec.yaml:\d+: anchor.rank: rank must be an integer in \[1, 4096\], got 0"),
    ("expriments: {}", r"unknown field 'expriments': did you mean 'experiments'"),
    ("experiments: {scaling: {anchor_counts: [2]}}", r"experiments.scaling.anchor_counts: expected a list of integers >= 3"),
    ("min_effect: -0.1", r"spec.yaml:\d+: min_effect: min_effect must be a positive number .*got -0.1$"),
    ("min_effect: lots", r"spec.yaml:\d+: min_effect: min_effect must be a positive number .*got 'lots'$"),
])
def test_spec_errors_name_the_line_and_field(study, change, message):
    path, _ = study
    text = path.read_text()
    key = change.split(":")[0]
    lines = [line for line in text.splitlines() if not line.startswith(f"{key}:")]
    if key == "experiments":
        lines = [line for line in lines if not line.startswith("  ")]
    bad = "\n".join(lines) + "\n" + change + "\n"
    with pytest.raises(SpecError, match=message):
        parse_translation_spec(bad, str(Path(path.parent) / "spec.yaml"))


def test_cli_run_dispatches_translation_specs(study):
    from typer.testing import CliRunner

    from transferlab.cli import app

    path, _ = study
    result = CliRunner().invoke(app, ["run", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "anchor trainings" in result.output and "translate" in result.output
    bad = path.with_name("bad.yaml")
    bad.write_text(path.read_text().replace("methods: [mean,", "methods: [meen,"))
    result = CliRunner().invoke(app, ["run", str(bad)])  # `transferlab` prints this one line (cli.main)
    assert result.exit_code != 0 and re.search(r"bad.yaml:\d+: methods.0: .*did you mean 'mean'", str(result.exception))


def test_degenerate_base_oracle_and_translations_are_flagged(study):
    """The tiny random models, one training step each, answer the same on every toy example:
    base_Y, the oracles and the translations are label priors, and the report says so."""
    import pandas as pd

    _, out = study
    tasks = pd.read_csv(out / "tables" / "tasks.csv")
    assert tasks.base_y_degenerate.all() and (tasks.base_y_majority >= 0.95).all()
    translations = pd.read_csv(out / "tables" / "translations.csv")
    assert {"majority", "flipped", "degenerate"} <= set(translations.columns)
    report = (out / "report" / "translation.md").read_text()
    assert "Degenerate predictor: base_Y gives one answer on at least 95% of the examples" in report


def test_gap_flags_reach_the_tables_summary_and_report(study, tmp_path):
    """Every oracle here gains nothing: each task's gap_recovered is NA by the minimum-effect
    rule, in tasks.csv, translations.csv (which carries base_Y and the oracle, so it can be
    flagged again without per-example data), summary.json and the report. A run redrawn after
    its tables changed is flagged under the current rules (the † of an unstable cell)."""
    import shutil

    import pandas as pd
    from typer.testing import CliRunner

    from transferlab.cli import app
    from transferlab.translation.gaps import flag_gaps

    _, out = study
    tasks = pd.read_csv(out / "tables" / "tasks.csv")
    assert (tasks.gap_na_rule == "below_min_effect").all()
    trans = pd.read_csv(out / "tables" / "translations.csv")
    scored = trans[trans.score.notna()]
    assert {"base_y", "oracle", "oracle_gain", "na_rule", "unstable"} <= set(trans.columns)
    assert (scored.na_rule == "below_min_effect").all() and scored.gap.isna().all()
    aggregated = scored.drop(columns=["oracle_gain_lo", "oracle_gain_hi", "gap", "gap_lo", "gap_hi", "na_rule"])
    assert (flag_gaps(aggregated).na_rule == "below_min_effect").all()
    summary = json.loads((out / "tables" / "summary.json").read_text())
    assert summary["min_effect"] == 0.05 and all("below the minimum effect 0.05" in r for r in summary["gap_na"].values())
    report = (out / "report" / "translation.md").read_text()
    assert "below the minimum effect 0.05" in report and "NA: below the minimum effect" in report

    copy = tmp_path / "run"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("artifacts"))
    tasks.loc[tasks.task == "toy-a", ["base_y", "oracle", "oracle_gain", "oracle_gain_lo", "oracle_gain_hi"]] = \
        [0.5, 0.58, 0.08, 0.06, 0.10]
    tasks.to_csv(copy / "tables" / "tasks.csv", index=False)
    main_a = (trans.experiment == "main") & (trans.held_out == "toy-a")
    trans.loc[main_a, ["score", "gain", "gap"]] = [0.54, 0.04, float("nan")]
    trans.drop(columns=["na_rule", "na_reason", "unstable"]).to_csv(copy / "tables" / "translations.csv", index=False)
    result = CliRunner().invoke(app, ["translation", "report", str(copy)])
    assert result.exit_code == 0, result.output
    redrawn = (copy / "report" / "translation.md").read_text()
    row = next(line for line in redrawn.splitlines() if line.startswith("| toy-a | 0.080"))
    assert "† under 2 × the minimum effect" in row and "0.50†" in row
