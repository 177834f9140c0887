"""A whole (small) transfer study on the real bundled model: plan, train, evaluate, resume, report."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from transferlab.engine.jobs import Job
from transferlab.transfer.plan import plan_transfer
from transferlab.transfer.report import write_report
from transferlab.transfer.spec import parse_spec
from transferlab.engine.store import Store
from transferlab.transfer.study import run_study

pytestmark = pytest.mark.integration

SPEC = """\
name: tiny-study
models: [smollm2-135m]
tasks: [cities, larger_than]
learners:
  - {{name: lora, type: lora, rank: 4, steps: 3, batch_size: 4, learning_rate: 1.0e-3}}
budgets: {{train_examples: 12, eval_examples: 10}}
bootstrap: 200
output: {output}
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "run"
    spec = parse_spec(SPEC.format(output=out), "tiny.yaml")
    plan, report, where = run_study(spec, quiet=True)
    return spec, plan, report, where


def test_plan_trains_once_per_source_and_evaluates_every_target(study):
    spec, plan, report, _ = study
    assert plan.count("train") == 2 and plan.count("evaluate") == 2 + 2 * 2
    assert not report.failed and len(report.done) == len(plan.jobs)
    assert all(Job.from_json(j.to_json()) == j for j in plan.jobs)  # jobs are plain, serialisable data


def test_results_table_is_tidy_with_cis_and_gains(study):
    _, _, _, where = study
    frame = Store(where).results()
    base = frame[(frame.condition == "baseline") & (frame.metric == "acc")]
    assert set(base.evaluated_on) == {"cities", "larger_than"} and (base.n == 10).all()
    gains = frame[frame.metric == "gain:acc"]
    assert len(gains) == 4 and set(gains.condition) == {"transfer", "direct"}
    assert ((gains.ci_low <= gains.value) & (gains.value <= gains.ci_high)).all()


def test_normalised_metrics_are_na_when_the_direct_gain_is_noise(study):
    _, _, _, where = study
    frame = Store(where).results()
    relative = frame[frame.metric == "relative:acc"]
    efficiency = frame[frame.metric == "efficiency:acc"]
    assert len(relative) == len(efficiency) == 2  # the two off-diagonal cells
    direct = frame[(frame.metric == "gain:acc") & (frame.condition == "direct")].set_index("evaluated_on")
    for row in relative.itertuples():
        noise = direct.loc[row.evaluated_on, "ci_low"] <= 0 <= direct.loc[row.evaluated_on, "ci_high"]
        assert noise == pd.isna(row.value)  # NA exactly when the oracle gained nothing measurable
    direct_score = frame[(frame.metric == "acc") & (frame.condition == "direct")].set_index("evaluated_on")
    for row in efficiency.itertuples():  # efficiency's denominator is the direct score: NA at chance (True/False)
        assert (direct_score.loc[row.evaluated_on, "ci_low"] <= 0.5) == pd.isna(row.value)


def test_rerun_does_only_missing_jobs_and_rebuilds_corrupt_artifacts(study):
    spec, plan, _, where = study
    _, again, _ = run_study(spec, quiet=True)
    assert not again.done and len(again.reused) == len(plan.jobs)
    victim = next(j for j in plan.jobs if j.kind == "evaluate")
    path = Store(where).path("evaluation", victim.key) / "evaluation.json"
    data = json.loads(path.read_text())
    data["scores"]["acc"] = [1.0] * len(data["scores"]["acc"])
    path.write_text(json.dumps(data))  # a tampered artifact must be rebuilt, never used
    _, third, _ = run_study(spec, quiet=True)
    assert third.done == [victim.key]


def test_broken_task_goes_to_the_audit_and_the_run_goes_on(study, tmp_path):
    spec, _, _, _ = study
    (tmp_path / "broken.jsonl").write_text("this is not json\n")
    (tmp_path / "broken.yaml").write_text('name: broken-task\nsource: {path: broken.jsonl}\nprompt: "{{ x }}"\n'
                                          'choices: [a, b]\n')
    text = SPEC.format(output=spec.output).replace("tasks: [cities, larger_than]",
                                                   "tasks: [cities, larger_than, broken-task]")
    text += "task_files: [broken.yaml]\n"
    (tmp_path / "spec.yaml").write_text(text)
    from transferlab.transfer.spec import load_spec

    broken_spec = load_spec(tmp_path / "spec.yaml")
    plan = plan_transfer(broken_spec)
    assert "broken-task" in plan.audit and plan.tasks == ["cities", "larger_than"]
    _, report, where = run_study(broken_spec, quiet=True)
    assert "broken-task" in json.loads((where / "audit.json").read_text())["failed_tasks"]
    assert not report.failed


def test_report_is_drawn_from_the_results_table_alone(study, tmp_path):
    _, _, _, where = study
    frame = Store(where).results()
    written = write_report(frame, tmp_path / "report")
    names = {p.name for p in written}
    assert {"summary.md", "smollm2-135m_lora_gain.png", "smollm2-135m_lora_scores.png"} <= names
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "cities" in summary and "[" in summary  # values with CIs


def test_sequential_and_joint_conditions_train_once_per_pair(study, tmp_path):
    spec, _, _, _ = study
    text = SPEC.format(output=tmp_path / "pairs") + ("conditions: [baseline, direct, sequential, joint]\n"
                                                      "pairs: [[cities, larger_than]]\n")
    paired = parse_spec(text, "pairs.yaml")
    plan = plan_transfer(paired)
    kinds = sorted(j.label.split(" on ")[1] for j in plan.jobs if j.kind == "train")
    assert kinds == ["cities (seed 0)", "cities then larger_than (seed 0)", "cities+larger_than (seed 0)",
                     "larger_than (seed 0)"]
    assert "of which 2 for sequential/joint pairs" in plan.describe()
    _, report, where = run_study(paired, quiet=True)
    assert not report.failed
    frame = Store(where).results()
    rows = frame[(frame.metric == "acc") & frame.condition.isin(["sequential", "joint"])]
    assert set(zip(rows.condition, rows.trained_on)) == {("sequential", "cities>larger_than"),
                                                         ("joint", "cities+larger_than")}
    assert {"efficiency:acc", "relative:acc"} <= set(frame[frame.condition == "joint"].metric)


def test_run_stores_labels_methods_and_similarity_and_reports_them(study, tmp_path):
    from transferlab.transfer.study import write_run_report
    from rich.console import Console

    _, plan, _, where = study
    store = Store(where)
    assert store.labels() == {"cities": "truth", "larger_than": "truth"}
    assert store.learner_methods() == {"lora": "sl"}
    sim = store.similarity()
    assert set(sim["kind"]) == {"vocabulary", "embedding"} and len(sim) == 4  # 2 ordered pairs x 2 kinds
    written = {p.name for p in write_run_report(where, "tiny", Console(file=open("/dev/null", "w")))}
    assert {"asymmetry.png", "similarity_embedding.png", "smollm2-135m_lora_relative.png"} <= written


def test_a_second_run_sharing_artifacts_reuses_every_job(study, tmp_path):
    import dataclasses

    spec, _, _, _ = study
    first = dataclasses.replace(spec, output=str(tmp_path / "a"), artifacts=str(tmp_path / "shared"), seeds=(0,))
    run_study(first, quiet=True)
    second = dataclasses.replace(first, output=str(tmp_path / "b"), similarity=())
    plan, report, where = run_study(second, quiet=True)
    assert not report.done and len(report.reused) == len(plan.jobs)
    assert len(Store(where).results()) == len(Store(tmp_path / "a").results())
