"""`transferlab results import`: lm-evaluation-harness's results JSON and --log_samples JSONL,
a wide table like seed 000's, and the tidy table; bad rows and unknown formats refused in one
line with nothing imported.

The lm-eval fixtures are written here in lm-eval 0.4's own layout
(`lm_eval/loggers/evaluation_tracker.py`): `<output_path>/<model_name_sanitized>/results_<date>.json`
with `results.<task>."<metric>,<filter>"`, `"<metric>_stderr,<filter>"`, `n-samples` and
`config.model_args`, and `samples_<task>_<date>.jsonl` beside it, one record per document
and filter (doc_id, doc, target, arguments as gen_args_N/arg_N, resps and filtered_resps as
strings, filter, metrics, hashes, then one field per metric).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from transferlab.engine.imports import detect, import_any
from transferlab.engine.lm_eval import INDEX, Labels
from transferlab.engine.store import RESULT_COLUMNS, ResultRow, Store
from transferlab.stats import bootstrap_mean, paired_difference, paired_ratio
from seed_tables import SEED_000

BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"
DATE = "2025-03-01T12-00-00.123456"

# ... and as the seed's text stores it: the whole report on one line.
SEED_000_TEXT = ("# Cross-Model LoRA Adapter Translation **Models:** X=`Qwen/Qwen2.5-3B-Instruct` ## Experiment 1 — Main "
                 "table " + " ".join(SEED_000.splitlines()) + " ## Success criteria - Best learned method minus mean "
                 "baseline: `-0.000` ## Experiment 3 | Held-out domain | Best anchor pool | |---|---| | math | code-only |")


def transferlab(*args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("transferlab")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "transferlab"]
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True, timeout=120)


# ---- lm-eval fixtures, in its own format ---------------------------------------------------
def results_json(model_args: str | dict, metrics: dict[str, dict[str, float | str]], n: int) -> dict:
    """A results_<date>.json as lm-eval 0.4 writes it (the keys it always writes)."""
    tasks = list(metrics)
    return {
        "results": {t: {"alias": t, **m} for t, m in metrics.items()},
        "group_subtasks": {t: [] for t in tasks},
        "configs": {t: {"task": t, "output_type": "multiple_choice", "metric_list": [{"metric": "acc"}]} for t in tasks},
        "versions": {t: 1.0 for t in tasks},
        "n-shot": {t: 0 for t in tasks},
        "higher_is_better": {t: {"acc": True, "acc_norm": True} for t in tasks},
        "n-samples": {t: {"original": 2376, "effective": n} for t in tasks},
        "config": {"model": "hf", "model_args": model_args, "model_num_parameters": 134515008, "model_dtype": "torch.float32",
                   "batch_size": "8", "batch_sizes": [], "device": "cpu", "use_cache": None, "limit": n,
                   "bootstrap_iters": 100000, "gen_kwargs": None, "random_seed": 0, "numpy_seed": 1234,
                   "torch_seed": 1234, "fewshot_seed": 1234},
        "git_hash": "4e7e0d4", "date": 1740830400.0, "task_hashes": {t: "0" * 64 for t in tasks},
        "model_source": "hf", "model_name": BASE, "model_name_sanitized": BASE.replace("/", "__"),
        "system_instruction": None, "system_instruction_sha": None, "fewshot_as_multiturn": False,
        "chat_template": None, "chat_template_sha": None, "start_time": 11.5, "end_time": 71.25,
        "total_evaluation_time_seconds": "59.75",
    }


def sample(doc_id: int, acc: float, filter_name: str = "none") -> dict:
    """One --log_samples record of a 4-choice task (arc_easy's shape)."""
    question = f"Question: which is number {doc_id}?\nAnswer:"
    choices = [" red", " green", " blue", " black"]
    logprobs = [-4.0, -2.0 if acc else -5.0, -3.0, -6.0]
    return {"doc_id": doc_id, "doc": {"id": f"Mercury_{doc_id}", "question": question, "answerKey": "B",
                                      "choices": {"text": choices, "label": ["A", "B", "C", "D"]}},
            "target": "1", "arguments": {f"gen_args_{i}": {"arg_0": question, "arg_1": c} for i, c in enumerate(choices)},
            "resps": [[[str(lp), "False"]] for lp in logprobs], "filtered_resps": [[str(lp), "False"] for lp in logprobs],
            "filter": filter_name, "metrics": ["acc", "acc_norm"], "doc_hash": "d" * 64, "prompt_hash": "p" * 64,
            "target_hash": "t" * 64, "acc": acc, "acc_norm": acc}


def lm_eval_run(root: Path, model_args: str, scores: dict[int, float], task: str = "arc_easy",
                date: str = DATE, samples: bool = True) -> Path:
    """The files `lm_eval --output_path root --log_samples` leaves: results JSON and samples JSONL."""
    folder = root / BASE.replace("/", "__")
    folder.mkdir(parents=True, exist_ok=True)
    acc = sum(scores.values()) / len(scores)
    stderr = math.sqrt(acc * (1 - acc) / (len(scores) - 1))
    data = results_json(model_args, {task: {"acc,none": acc, "acc_stderr,none": stderr, "acc_norm,none": acc,
                                            "acc_norm_stderr,none": "N/A"}}, len(scores))
    (folder / f"results_{date}.json").write_text(json.dumps(data, indent=2))
    if samples:
        lines = [json.dumps(sample(d, a)) for d, a in scores.items()]
        (folder / f"samples_{task}_{date}.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def outcomes(n: int, rate: float, salt: int) -> dict[int, float]:
    return {d: float((d * 7 + salt) % 100 < rate * 100) for d in range(n)}


def frame(run: Path) -> pd.DataFrame:
    return Store.existing(run).results()


def one(results: pd.DataFrame, **where: object) -> pd.Series:
    hit = results
    for column, value in where.items():
        hit = hit[hit[column] == value]
    assert len(hit) == 1, (where, hit)
    return hit.iloc[0]


# ---- lm-eval results JSON ----------------------------------------------------------------
def test_lm_eval_results_json_gives_model_adapter_ci_and_n(tmp_path):
    base = lm_eval_run(tmp_path / "base", f"pretrained={BASE},dtype=float32", outcomes(60, 0.5, 1), samples=False)
    tuned = lm_eval_run(tmp_path / "tuned", f"pretrained={BASE},peft=adapters/arc_easy,dtype=float32",
                        outcomes(60, 0.7, 2), date="2025-03-01T13-00-00.5", samples=False)
    paths = [*base.glob("results_*.json"), *tuned.glob("results_*.json")]
    assert [detect(p) for p in paths] == ["lm-eval-json", "lm-eval-json"]
    done = import_any(tmp_path / "run", paths)
    assert done.files == {"lm-eval-json": 2} and done.rows == 4
    results = frame(tmp_path / "run")
    data = json.loads(paths[1].read_text())["results"]["arc_easy"]
    row = one(results, condition="direct", metric="acc")  # peft=adapters/arc_easy evaluated on arc_easy
    assert (row.model, row.learner, row.trained_on, row.evaluated_on, row.n) == (BASE, "lora", "arc_easy", "arc_easy", 60)
    assert row.value == pytest.approx(data["acc,none"])
    assert row.ci_low == pytest.approx(data["acc,none"] - 1.959964 * data["acc_stderr,none"])
    assert row.ci_high == pytest.approx(data["acc,none"] + 1.959964 * data["acc_stderr,none"])
    assert pd.isna(one(results, condition="direct", metric="acc_norm").ci_low)  # stderr "N/A": no CI
    baseline = one(results, condition="baseline", metric="acc")
    assert (baseline.learner, baseline.trained_on) == ("-", "-")


def test_lm_eval_model_args_dict_filters_groups_and_labels(tmp_path):
    data = results_json({"pretrained": BASE, "peft": "/ckpt/math-lora/"}, {
        "gsm8k": {"exact_match,strict-match": 0.25, "exact_match_stderr,strict-match": 0.04,
                  "exact_match,flexible-extract": 0.3, "exact_match_stderr,flexible-extract": 0.05}}, 120)
    path = tmp_path / "results_2025-01-01T00-00-00.json"
    path.write_text(json.dumps(data))
    import_any(tmp_path / "run", [path], labels=Labels(learner="grpo", trained_on="math", seed=3))
    results = frame(tmp_path / "run")
    assert set(results.metric) == {"exact_match,strict-match", "exact_match,flexible-extract"}
    assert set(results.learner) == {"grpo"} and set(results.trained_on) == {"math"} and set(results.seed) == {3}
    assert set(results.condition) == {"transfer"} and set(results.n) == {120}
    import_any(tmp_path / "named", [path])  # no --trained-on: the adapter directory's name
    assert set(frame(tmp_path / "named").trained_on) == {"math-lora"}


# ---- lm-eval samples: per-example records, paired by doc_id ---------------------------------
def test_samples_pair_by_doc_id_with_the_same_ci_as_a_direct_computation(tmp_path):
    base_scores, tuned_scores = outcomes(80, 0.4, 3), outcomes(90, 0.6, 5)  # the adapter saw 10 more documents
    base = lm_eval_run(tmp_path / "base", f"pretrained={BASE}", base_scores)
    tuned = lm_eval_run(tmp_path / "tuned", f"pretrained={BASE},peft=out/arc_easy", tuned_scores,
                        date="2025-03-02T09-30-00.000001")
    shuffled = tuned / "samples_arc_easy_2025-03-02T09-30-00.000001.jsonl"
    lines = shuffled.read_text().splitlines()
    shuffled.write_text("\n".join(reversed(lines)) + "\n")  # order must not matter: doc_id pairs them
    run = tmp_path / "run"
    assert detect(shuffled) == "lm-eval-samples"
    proc = transferlab("results", "import", run, shuffled)  # the adapter first, its base later
    assert proc.returncode == 0, proc.stderr
    assert not frame(run).metric.str.startswith("gain:").any()  # nothing to pair with yet
    proc = transferlab("results", "import", run, base)  # a directory: its results JSON and samples
    assert proc.returncode == 0, proc.stderr
    assert "2 file(s)" in proc.stdout and "1 per-example evaluations stored" in proc.stdout
    results = frame(run)
    shared = sorted(set(base_scores) & set(tuned_scores))
    expected = paired_difference([tuned_scores[d] for d in shared], [base_scores[d] for d in shared], 1000, 0)
    gain = one(results, condition="direct", metric="gain:acc")
    assert (gain.value, gain.n, gain.ci_low, gain.ci_high) == pytest.approx(
        (expected.value, expected.n, expected.ci_low, expected.ci_high))
    assert one(results, condition="direct", metric="p:gain:acc").value == pytest.approx(expected.p)
    score = one(results, condition="baseline", metric="acc")  # the samples' bootstrap replaced the stderr CI
    direct = bootstrap_mean([base_scores[d] for d in sorted(base_scores)], 1000, seed=0)
    assert (score.value, score.n, score.ci_low, score.ci_high) == pytest.approx(
        (direct.value, direct.n, direct.ci_low, direct.ci_high))
    index = json.loads((run / INDEX).read_text())
    assert sorted(e["cell"][4] for e in index) == ["baseline", "direct"]
    evaluation = Store.existing(run).read_json("evaluation", index[0]["evaluation"], "evaluation.json")
    assert evaluation["uids"] == [str(d) for d in sorted(tuned_scores)] and "choice" in evaluation["outputs"][0]
    assert evaluation["prompts"][0].startswith("Question:") and evaluation["targets"][0] == "1"


def test_samples_give_relative_transfer_against_the_direct_adapter(tmp_path):
    base, direct, transfer = outcomes(100, 0.3, 1), outcomes(100, 0.8, 2), outcomes(100, 0.5, 3)
    paths = []
    for name, scores, adapter in (("base", base, None), ("direct", direct, "a/arc_easy"), ("transfer", transfer, "a/sciq")):
        path = tmp_path / name / "samples_arc_easy_2025-01-01T00-00-00.jsonl"
        path.parent.mkdir()
        path.write_text("".join(json.dumps(sample(d, a)) + "\n" for d, a in scores.items()))
        import_any(tmp_path / "run", [path], labels=Labels(model=BASE, adapter=adapter))
        paths.append(path)
    row = one(frame(tmp_path / "run"), condition="transfer", metric="relative:acc")
    t, d, b = ([s[k] for k in range(100)] for s in (transfer, direct, base))
    expected = paired_ratio([x - y for x, y in zip(t, b)], [x - y for x, y in zip(d, b)], 1000, 0)
    assert row.trained_on == "sciq" and (row.value, row.ci_low, row.ci_high) == pytest.approx(
        (expected.value, expected.ci_low, expected.ci_high))


def test_lm_eval_imports_get_the_transfer_report(tmp_path):
    """Base model and two adapters on two tasks, as lm-eval writes them: `transferlab report`
    draws the matrix from the imported rows as from a run's own (gains, relative transfer)."""
    runs = {"base": None, "arc": "ad/arc_easy", "sciq": "ad/sciq"}
    rates = {("base", "arc_easy"): 0.4, ("base", "sciq"): 0.3, ("arc", "arc_easy"): 0.7, ("arc", "sciq"): 0.5,
             ("sciq", "arc_easy"): 0.45, ("sciq", "sciq"): 0.8}
    for (name, task), rate in rates.items():
        args = f"pretrained={BASE}" + (f",peft={runs[name]}" if runs[name] else "")
        lm_eval_run(tmp_path / name, args, outcomes(80, rate, len(name)), task=task,
                    date=DATE if task == "arc_easy" else "2025-03-01T12-00-01.5")
    run = tmp_path / "run"
    proc = transferlab("results", "import", run, *(tmp_path / name for name in runs))
    assert proc.returncode == 0 and "6 per-example evaluations stored" in proc.stdout, proc.stderr
    results = frame(run)
    gain = one(results, trained_on="arc_easy", evaluated_on="sciq", metric="gain:acc")
    assert gain.condition == "transfer" and gain.n == 80
    assert one(results, trained_on="arc_easy", evaluated_on="sciq", metric="relative:acc").value > 0
    report = transferlab("report", run)
    assert report.returncode == 0, report.stderr
    summary = (run / "report" / "summary.md").read_text()
    assert f"| arc_easy | {one(results, trained_on='arc_easy', evaluated_on='arc_easy', metric='gain:acc').value:+.3f} [" \
        in summary and f"{gain.value:+.3f} [{gain.ci_low:+.3f}, {gain.ci_high:+.3f}]" in summary
    assert "Relative transfer (gap recovered)" in summary


def test_lm_eval_group_rows_count_their_subtasks(tmp_path):
    data = results_json(f"pretrained={BASE}", {"mmlu_mini": {"acc,none": 0.4, "acc_stderr,none": 0.03},
                                               "mmlu_a": {"acc,none": 0.3, "acc_stderr,none": 0.05},
                                               "mmlu_b": {"acc,none": 0.5, "acc_stderr,none": 0.05}}, 50)
    data["group_subtasks"] = {"mmlu_mini": ["mmlu_a", "mmlu_b"]}
    del data["n-samples"]["mmlu_mini"]  # lm-eval counts tasks only
    path = tmp_path / "results_2025-01-01T00-00-00.json"
    path.write_text(json.dumps(data))
    import_any(tmp_path / "run", [path])
    assert one(frame(tmp_path / "run"), evaluated_on="mmlu_mini").n == 100


# ---- wide tables: seed 000 -------------------------------------------------------------------
@pytest.mark.parametrize("text", [SEED_000, SEED_000_TEXT], ids=["markdown", "seed-text-one-line"])
def test_seed_000_table_gets_the_flags_translation_flag_gives(tmp_path, text):
    table = tmp_path / "seed000.md"
    table.write_text(SEED_000)
    source = tmp_path / "000_seed.txt"
    source.write_text(text)
    run = tmp_path / "run"
    proc = transferlab("results", "import", run, source, "--min-effect", "0.01", "--model", "Llama-3.2-3B")
    assert proc.returncode == 0, proc.stderr
    assert "6 tasks x 6 methods" in proc.stdout and "NA on 4 tasks, unstable on 1" in proc.stdout
    flag = transferlab("translation", "flag", table, "--out", tmp_path / "flagged.csv", "--min-effect", "0.01")
    assert flag.returncode == 0, flag.stderr
    reference = pd.read_csv(tmp_path / "flagged.csv")
    reference["method"] = reference["method"].str.replace(r"^topk8_", "topk_", regex=True)
    imported = pd.read_csv(run / "tables" / "translations.csv").rename(columns={"held_out": "task"})
    merged = reference.merge(imported, on=["task", "method"], suffixes=("_flag", "_import"))
    assert len(merged) == 36
    assert list(merged.na_rule_flag.fillna("")) == list(merged.na_rule_import.fillna(""))
    assert list(merged.unstable_flag) == list(merged.unstable_import) and merged.unstable_flag.sum() == 6
    pd.testing.assert_series_equal(merged.gap_flag, merged.gap_import, check_names=False)
    report = transferlab("report", run)
    assert report.returncode == 0, report.stderr
    out = report.stdout
    assert "| math | gsm_hard | 0.057 | 0.073 | 0.016 | † under 2 × the minimum effect |" in out
    assert "| code | humaneval_plus | 0.079 | 0.067 | -0.012 | NA: wrong sign |" in out
    assert "NA on 4 of 6 tasks (1 wrong sign, 3 below the minimum effect) and unstable on 1 (gsm_hard)" in out
    assert "Best learned method minus the mean translator, averaged over held-out tasks: `-0.008` (pertensor_ridge)" in out
    rows = frame(run)
    gap = one(rows, learner="pertensor_mlp", evaluated_on="arc_challenge", metric="gap_recovered:score")
    assert gap.model == "Llama-3.2-3B" and gap.value == pytest.approx((0.726 - 0.706) / (0.726 - 0.706))
    assert pd.isna(one(rows, learner="mean", evaluated_on="mbpp_plus", metric="gap_recovered:score").value)


def test_wide_table_with_other_names_needs_a_column_mapping(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("Benchmark,Base,Ridge,Upper bound,Notes\nboolq,0.60,0.70,0.80,ok\npiqa,0.50,0.52,0.51,flat\n")
    unmapped = transferlab("results", "import", tmp_path / "a", path)
    assert unmapped.returncode == 2 and unmapped.stderr.count("\n") == 1 and "--columns" in unmapped.stderr
    proc = transferlab("results", "import", tmp_path / "b", path, "--columns",
                       "task=Benchmark,base=Base,oracle=Upper bound", "--columns", "drop=Notes")
    assert proc.returncode == 0, proc.stderr
    flagged = pd.read_csv(tmp_path / "b" / "tables" / "translations.csv").set_index("held_out")
    assert flagged.loc["boolq", "gap"] == pytest.approx(0.5) and flagged.loc["piqa", "na_rule"] == "below_min_effect"
    assert "Notes" not in flagged.columns and list(flagged["method"]) == ["Ridge", "Ridge"]


# ---- the tidy table ------------------------------------------------------------------------
def test_tidy_csv_and_parquet_import(tmp_path):
    store = Store(tmp_path / "native")
    store.add_results([ResultRow("m", "lora", "a", "b", "transfer", 0, "acc", 0.5, 100, 0.4, 0.6),
                       ResultRow("m", "lora", "a", "b", "transfer", 0, "relative:acc", float("nan"), 100)])
    for suffix in (".csv", ".parquet"):
        path = tmp_path / f"table{suffix}"
        proc = transferlab("results", "export", store.root, path)
        assert proc.returncode == 0, proc.stderr
        assert detect(path) == "tidy"
        done = import_any(tmp_path / f"copy{suffix}", [path])
        assert done.rows == 2
        pd.testing.assert_frame_equal(frame(tmp_path / f"copy{suffix}"), store.results())


# ---- refusals: one line, nothing imported ----------------------------------------------------
HEADER = ",".join(RESULT_COLUMNS)


def _samples_with(tmp_path: Path, records: list[dict]) -> Path:
    path = tmp_path / f"samples_arc_easy_{DATE}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


BAD = {
    "tidy-nan": lambda p: _write(p / "t.csv", f"{HEADER}\nm,-,-,b,baseline,0,acc,0.5,10,,\nm,-,-,c,baseline,0,acc,nan,10,,\n"),
    "tidy-inf": lambda p: _write(p / "t.csv", f"{HEADER}\nm,-,-,b,baseline,0,acc,inf,10,,\n"),
    "tidy-seed": lambda p: _write(p / "t.csv", f"{HEADER}\nm,-,-,b,baseline,1.7,acc,0.5,10,,\n"),
    "tidy-duplicate": lambda p: _write(p / "t.csv", f"{HEADER}\nm,-,-,b,baseline,0,acc,0.5,10,,\nm,-,-,b,baseline,0,acc,0.6,10,,\n"),
    "json-nan": lambda p: _write(p / "results_2025-01-01T00-00-00.json", json.dumps(results_json(
        f"pretrained={BASE}", {"arc_easy": {"acc,none": float("nan"), "acc_stderr,none": 0.1}}, 10))),
    "samples-nan": lambda p: _samples_with(p, [sample(0, 1.0), {**sample(1, 0.0), "acc": float("nan")}]),
    "samples-doc-id": lambda p: _samples_with(p, [sample(0, 1.0), {**sample(1, 0.0), "doc_id": 1.5}]),
    "samples-duplicate": lambda p: _samples_with(p, [sample(0, 1.0), sample(1, 0.0), sample(1, 1.0)]),
    "wide-nan": lambda p: _write(p / "w.md", SEED_000.replace("| 0.217 | 0.207 |", "| 0.217 | nan |")),
    "wide-duplicate": lambda p: _write(p / "w.md", SEED_000 + SEED_000.splitlines()[2] + "\n"),
}
WHERE = {"tidy-nan": "row 3", "tidy-inf": "row 2", "tidy-seed": "row 2: seed is '1.7', not an integer",
         "tidy-duplicate": "row 2 and row 3", "json-nan": "results.arc_easy", "samples-nan": "line 2",
         "samples-doc-id": "line 2: doc_id", "samples-duplicate": "line 2 and line 3", "wide-nan": "table row 4",
         "wide-duplicate": "row 1 and row 7"}


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_and_imports_nothing(tmp_path, case):
    run = tmp_path / "run"
    Store(run).add_results([ResultRow("m", "-", "-", "x", "baseline", 0, "acc", 0.5, 10)])
    before = frame(run)
    source = tmp_path / "in"
    source.mkdir()
    path = BAD[case](source)
    proc = transferlab("results", "import", run, path, "--model", BASE)
    assert proc.returncode == 2, proc.stdout
    assert proc.stderr.count("\n") == 1 and WHERE[case] in proc.stderr, proc.stderr
    assert "nothing was imported" in proc.stderr
    pd.testing.assert_frame_equal(frame(run), before)
    assert not (run / "tables").exists() and not (run / INDEX).exists() and not (run / "artifacts").exists()


@pytest.mark.parametrize("name, content", [
    ("spec.yaml", "name: x\nmodels: [m]\n"),
    ("other.json", json.dumps({"scores": [1, 2]})),
    ("blob.bin", "\0\1\2binary"),
    ("notes.csv", "a,b\n1,2\n"),
])
def test_unsupported_format_is_one_line_naming_the_formats(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    proc = transferlab("results", "import", tmp_path / "run", path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    for fmt in ("lm-eval-json", "lm-eval-samples", "wide", "tidy"):
        assert fmt in proc.stderr
    assert not (tmp_path / "run").exists()


def test_unknown_format_option_lists_the_formats(tmp_path):
    path = _write(tmp_path / "t.csv", f"{HEADER}\n")
    proc = transferlab("results", "import", tmp_path / "run", path, "--format", "lm-eval")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "did you mean 'lm-eval-json'" in proc.stderr
