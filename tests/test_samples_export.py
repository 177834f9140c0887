"""Per-example records of a real (tiny) run, exported tidy and as lm-eval's --log_samples, and read
back by `results import` to the same scores, CIs and gains."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from tiny_models import make_tokenizer
from toy_tasks import Comparison
from transferlab.cli import app
from transferlab.engine.samples import lm_eval_sample, run_evaluations, select
from transferlab.engine.store import Store
from transferlab.errors import TransferlabError
from transferlab.predictions import example_records

runner = CliRunner()

TASKS = {
    "sx-mc": ('prompt: "{{ q }}"\nchoices: ["N", "Y"]\nanswer: label\n',
              lambda i: {"q": f"mc {i}? {'N' if i % 3 == 0 else 'Y'}", "label": int(i % 3 != 0)}),
    "sx-gen": ('output_type: generate\nprompt: "{{ q }}"\ntarget: "{{ a }}"\nmetrics: [exact_match, contains]\n'
               'max_new_tokens: 3\n', lambda i: {"q": f"say {i % 4} ({i})", "a": str(i % 4)}),
}
SPEC = """\
name: samples
models: [{model}]
tasks: [sx-mc, sx-gen]
task_files: [sx-mc.yaml, sx-gen.yaml]
learners:
  - {{name: lora, type: lora, rank: 2, steps: 4, batch_size: 4, learning_rate: 5.0e-2, max_seq_len: 48}}
budgets: {{train_examples: 12, eval_examples: 10, max_new_tokens: 3}}
similarity: []
bootstrap: 1000
device: cpu
output: {out}
"""
METRICS = ("acc", "acc_norm", "exact_match", "contains")


@pytest.fixture(scope="module")
def run(tmp_path_factory, one_thread):
    from transferlab.models import tiny_llama
    from transferlab.transfer.spec import parse_spec
    from transferlab.transfer.study import run_study

    root = tmp_path_factory.mktemp("samples")
    tokenizer = make_tokenizer()
    tiny_llama(vocab_size=len(tokenizer), seed=0).save_pretrained(root / "tiny", safe_serialization=True)
    tokenizer.save_pretrained(root / "tiny")
    for name, (fields, row) in TASKS.items():
        (root / f"{name}.jsonl").write_text("".join(json.dumps(row(i)) + "\n" for i in range(60)))
        (root / f"{name}.yaml").write_text(f"name: {name}\nsource: {{path: {name}.jsonl}}\n{fields}")
    spec = parse_spec(SPEC.format(model=root / "tiny", out=root / "run"), str(root / "spec.yaml"))
    _, report, where = run_study(spec, quiet=True)
    assert not report.failed
    return root, where


def test_every_finished_evaluation_is_found_with_its_cell(run):
    _, where = run
    found = run_evaluations(where)
    assert len(found) == 2 + 2 * 2  # the base model and two adapters on two targets
    cells = {(e.trained_on, e.evaluated_on, e.condition) for e in found}
    assert ("-", "sx-mc", "baseline") in cells and ("sx-mc", "sx-gen", "transfer") in cells
    assert ("sx-gen", "sx-gen", "direct") in cells
    assert {len(e.record["uids"]) for e in found} == {10}


def test_tidy_jsonl_holds_prediction_logprobs_reference_and_score(run, tmp_path):
    _, where = run
    out = tmp_path / "s.jsonl"
    result = runner.invoke(app, ["results", "samples", str(where), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 60
    mc = [r for r in rows if r["evaluated_on"] == "sx-mc"]
    gen = [r for r in rows if r["evaluated_on"] == "sx-gen"]
    for r in mc:
        assert len(r["choice_logprobs"]) == 2 and r["prediction"] in (0, 1) and r["answer"] in (0, 1)
        assert r["prediction"] == max(range(2), key=r["choice_logprobs"].__getitem__)
        assert r["acc"] == float(r["prediction"] == r["answer"]) and r["reference"] in ("N", "Y")
        assert r["context"].startswith("<|user|>") and r["continuations"] == ["N", "Y"]
    for r in gen:
        assert isinstance(r["prediction"], str) and r["choice_logprobs"] is None and r["reference"] in "0123"
        assert r["exact_match"] == float(r["prediction"].strip().lower() == r["reference"])
    table = Store(where).results()
    for (trained_on, task), group in pd.DataFrame(rows).groupby(["trained_on", "evaluated_on"]):
        metric = "acc" if task == "sx-mc" else "exact_match"
        stored = table[(table.trained_on == trained_on) & (table.evaluated_on == task) & (table.metric == metric)]
        assert group[metric].mean() == pytest.approx(stored.value.iloc[0])


def test_tidy_csv_and_filters(run, tmp_path):
    _, where = run
    out = tmp_path / "s.csv"
    result = runner.invoke(app, ["results", "samples", str(where), "--out", str(out), "--task", "sx-mc",
                                 "--adapter", "base", "--adapter", "sx-gen"])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert len(frame) == 20 and set(frame.trained_on) == {"-", "sx-gen"} and set(frame.evaluated_on) == {"sx-mc"}
    assert all(len(json.loads(v)) == 2 for v in frame.choice_logprobs)
    found = run_evaluations(where)
    assert [(e.trained_on, e.evaluated_on) for e in select(found, cells=["sx-mc:sx-gen"])] == [("sx-mc", "sx-gen")]
    assert len(select(found, cells=["base:sx-gen", "-:sx-mc"])) == 2
    with pytest.raises(TransferlabError, match=r"--task 'sx-mcq' matches no evaluation of this run: it has sx-gen, sx-mc"):
        select(found, tasks=["sx-mcq"])
    bad = runner.invoke(app, ["results", "samples", str(where), "--out", str(tmp_path / "s.txt")])
    assert bad.exit_code != 0 and "writes .csv or .jsonl" in str(bad.exception)
    stdout = runner.invoke(app, ["results", "samples", str(where), "--cell", "sx-gen:sx-gen"])
    assert stdout.exit_code == 0 and sum(line.startswith('{"model"') for line in stdout.output.splitlines()) == 10


def test_lm_eval_export_imports_back_to_the_same_scores_cis_and_gains(run, tmp_path):
    _, where = run
    out = tmp_path / "lm-eval-out"
    exported = runner.invoke(app, ["results", "samples", str(where), "--format", "lm-eval", "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    samples = sorted(out.rglob("samples_*.jsonl"))
    assert len(samples) == 6 and len(list(out.rglob("results_*.json"))) == 3  # one lm-eval run per model + adapter
    first = json.loads(next(p for p in samples if "sx-mc" in p.name).read_text().splitlines()[0])
    assert {"doc_id", "doc", "target", "arguments", "resps", "filtered_resps", "filter", "metrics", "doc_hash",
            "prompt_hash", "target_hash", "acc", "acc_norm"} <= set(first)
    assert first["arguments"]["gen_args_1"]["arg_1"] == "Y" and len(first["resps"]) == 2
    other = tmp_path / "other"
    imported = runner.invoke(app, ["results", "import", str(other), str(out)])
    assert imported.exit_code == 0, imported.output
    key = ["model", "learner", "trained_on", "evaluated_on", "condition", "seed", "metric"]
    original = Store(where).results().set_index(key)
    back = Store(other).results().set_index(key)
    wanted = [m for m in back.index.get_level_values("metric").unique()
              if m in METRICS or m.startswith("gain:") or m.startswith("relative:")]
    assert {"acc", "exact_match", "gain:acc", "gain:contains", "relative:acc"} <= set(wanted)
    compared = 0
    for index, row in back.iterrows():
        if index[-1] not in wanted:
            continue
        mine = original.loc[index]
        for column in ("value", "ci_low", "ci_high"):
            assert row[column] == pytest.approx(mine[column], abs=1e-12, nan_ok=True), (index, column)
        assert row["n"] == mine["n"]
        compared += 1
    assert compared == 6 * 2 + 4 * 2 + 2 * 2  # every score, every adapter's gains, both transfer cells' relative
    again = runner.invoke(app, ["results", "samples", str(other), "--format", "tidy", "--task", "sx-mc"])
    assert again.exit_code == 0 and '"split": "lm-eval"' in again.output  # imported records export too


def test_older_records_stay_readable():
    task = Comparison()
    examples = task.examples("test")[:4]
    old = {"task": task.name, "split": "test", "uids": [e.uid for e in examples],
           "scores": {"acc": [1.0, 0.0, 1.0, 0.0], "acc_norm": [1.0, 0.0, 1.0, 0.0]}, "outputs": [], "weights": {}}
    records = example_records(old, task)
    assert [r["prediction"] for r in records] == [e.answer if i % 2 == 0 else 1 - e.answer
                                                  for i, e in enumerate(examples)]  # implied by two choices
    assert [r["reference"] for r in records] == [e.target for e in examples]
    assert [r["answer"] for r in records] == [e.answer for e in examples]
    assert all(r["context"] is None and r["choice_logprobs"] is None for r in records)
    unknown = example_records(old)  # without the task: scores only
    assert all(r["reference"] is None and r["prediction"] is None for r in unknown)
    assert [r["scores"]["acc"] for r in unknown] == old["scores"]["acc"]
    from transferlab.engine.samples import Evaluated

    e = Evaluated("m", "-", "-", task.name, "baseline", 0, "default", "test", "k", 0.0, old)
    line = lm_eval_sample(0, records[0], e, task)
    assert line["arguments"]["gen_args_0"]["arg_0"] == examples[0].prompt and line["acc"] == 1.0


def test_weighted_metrics_keep_their_weighted_mean():
    from transferlab.engine.samples import Evaluated, _aggregate

    record = {"uids": ["a", "b"], "scores": {"inst": [0.5, 1.0]}, "weights": {"inst": [2.0, 1.0]},
              "outputs": ["x", "y"], "targets": ["", ""]}
    rows = example_records(record)
    e = Evaluated("m", "-", "-", "t", "baseline", 0, "default", "test", "k", 0.0, record)
    assert lm_eval_sample(0, rows[0], e, None)["inst"] == [0.5, 0.5]  # once per instruction
    assert _aggregate(rows)["inst,none"] == pytest.approx(2 / 3) and _aggregate(rows)["inst_stderr,none"] == "N/A"
