"""The bad-input corpus of `test_fuzz_inputs.py`: specs of the three study kinds, task YAMLs,
imports (CSV, Parquet, lm-eval JSON / JSONL) and commands on corrupted or mistyped run
directories. Every case is an input a user (or an attacker) could give; every one must be
refused with one line on stderr, a non-zero exit, no traceback, within seconds, and with
nothing written.

A case is its files (name -> text or bytes, written into a fresh directory) and the command
line; `{d}` in either stands for that directory.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

Files = dict[str, "str | bytes"]


@dataclass(frozen=True)
class Case:
    id: str
    kind: str  # spec-transfer, spec-probes, spec-translation, task, import, store
    args: tuple[str, ...]
    files: Files = field(default_factory=dict)
    setup: Callable[[Path], None] | None = None  # builds what text files cannot (a database)


# ---- YAML bombs, shared by every kind ----------------------------------------------------
def laughs(key: str) -> str:
    """A 'billion laughs' under `key`: nine aliases of nine aliases ... of 'lol', 9^9 values in 700 bytes."""
    lines = [f"{key}:", "  a: &a [" + ",".join(['"lol"'] * 9) + "]"]
    lines += [f"  {chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]" for i in range(8)]
    return "\n".join(lines) + "\n"


LAUGHS = laughs("labels")
DEEP = "[" * 5000 + "]" * 5000
RECURSIVE = "a: &a [*a, *a]\n"
HUGE = "# " + "x" * 2_100_000 + "\n"

# ---- specs -------------------------------------------------------------------------------
TRANSFER = "models: [smollm2-135m]\ntasks: [cities, larger_than]\noutput: {d}/out\n"
GENERATE = "models: [smollm2-135m]\ntasks: [gsm8k]\noutput: {d}/out\n"  # GRPO learns from generation tasks
LEARNER = "learners:\n  - {{name: a, type: {type}, {field}}}\n"
PROBES = "study: probes\nmodel: smollm2-135m\ndatasets: [cities, neg_cities]\noutput: {d}/out\n"
TRANSLATION = ("study: translation\nmodel_x: smollm2-135m\nmodel_y: gemma3-270m\noutput: {d}/out\n"
               "methods: [mean, global_ridge, pertensor_ridge]\n"
               "domains: {truth: [cities, neg_cities], numbers: [larger_than, smaller_than]}\n")

TRANSFER_BAD = {
    "billion-laughs": TRANSFER + LAUGHS,
    "deep-nesting": TRANSFER + "extra: " + DEEP + "\n",
    "recursive-alias": TRANSFER + RECURSIVE,
    "over-size-limit": TRANSFER + HUGE,
    "bad-yaml": "models: [smollm2-135m\ntasks: [cities]\n",
    "tab-indent": "models:\n\t- smollm2-135m\n",
    "top-level-list": "- smollm2-135m\n- cities\n",
    "top-level-scalar": "just words\n",
    "empty-file": "",
    "unknown-field": TRANSFER + "modles: [x]\n",
    "missing-tasks": "models: [smollm2-135m]\noutput: {d}/out\n",
    "tasks-int": "models: [smollm2-135m]\ntasks: 5\noutput: {d}/out\n",
    "tasks-empty": "models: [smollm2-135m]\ntasks: []\noutput: {d}/out\n",
    "tasks-unknown": "models: [smollm2-135m]\ntasks: [citiez]\noutput: {d}/out\n",
    "model-unknown": "models: [no-such-model]\ntasks: [cities]\noutput: {d}/out\n",
    "target-modules-comma-string": TRANSFER + LEARNER.format(type="lora", field="target_modules: 'q_proj,v_proj'"),
    "target-modules-empty": TRANSFER + LEARNER.format(type="lora", field="target_modules: []"),
    "target-modules-ints": TRANSFER + LEARNER.format(type="lora", field="target_modules: [1, 2]"),
    "target-modules-mapping": TRANSFER + LEARNER.format(type="lora", field="target_modules: {q: v}"),
    "rank-float": TRANSFER + LEARNER.format(type="lora", field="rank: 8.5"),
    "rank-zero": TRANSFER + LEARNER.format(type="lora", field="rank: 0"),
    "rank-string": TRANSFER + LEARNER.format(type="lora", field="rank: eight"),
    "rank-bool": TRANSFER + LEARNER.format(type="lora", field="rank: true"),
    "rank-huge": TRANSFER + LEARNER.format(type="lora", field="rank: 1000000"),
    "alpha-negative": TRANSFER + LEARNER.format(type="lora", field="alpha: -1"),
    "lr-word": TRANSFER + LEARNER.format(type="lora", field="learning_rate: fast"),
    "lr-nan": TRANSFER + LEARNER.format(type="lora", field="learning_rate: .nan"),
    "lr-inf": TRANSFER + LEARNER.format(type="lora", field="learning_rate: .inf"),
    "lr-list": TRANSFER + LEARNER.format(type="lora", field="learning_rate: [0.1]"),
    "dropout-over-one": TRANSFER + LEARNER.format(type="lora", field="dropout: 1.5"),
    "steps-negative": TRANSFER + LEARNER.format(type="lora", field="steps: -3"),
    "batch-size-zero": TRANSFER + LEARNER.format(type="lora", field="batch_size: 0"),
    "epochs-zero": TRANSFER + LEARNER.format(type="lora", field="epochs: 0"),
    "max-seq-len-tiny": TRANSFER + LEARNER.format(type="lora", field="max_seq_len: 4"),
    "warmup-one": TRANSFER + LEARNER.format(type="lora", field="warmup_ratio: 1.0"),
    "learner-seed-float": TRANSFER + LEARNER.format(type="lora", field="seed: 1.5"),
    "eval-every-negative": TRANSFER + LEARNER.format(type="lora", field="eval_every: -1"),
    "learner-unknown-field": TRANSFER + LEARNER.format(type="lora", field="rnak: 8"),
    "learner-type-unknown": TRANSFER + LEARNER.format(type="bogus", field="rank: 8"),
    "grpo-group-one": GENERATE + LEARNER.format(type="grpo", field="group_size: 1"),
    "grpo-temperature-zero": GENERATE + LEARNER.format(type="grpo", field="temperature: 0"),
    "grpo-top-p-over-one": GENERATE + LEARNER.format(type="grpo", field="top_p: 1.5"),
    "grpo-normalize-string": GENERATE + LEARNER.format(type="grpo", field="normalize_advantages: 'no'"),
    "learners-string": TRANSFER + "learners: lora\n",
    "learners-empty": TRANSFER + "learners: []\n",
    "learners-duplicate": TRANSFER + "learners: [{name: a}, {name: a}]\n",
    "learner-name-list": TRANSFER + "learners: [{name: [a, b]}]\n",
    "device-quantum": TRANSFER + "device: quantum\n",
    "dtype-float8": TRANSFER + "dtype: float8\n",
    "seeds-word": TRANSFER + "seeds: [0, one]\n",
    "seeds-float": TRANSFER + "seeds: [1.5]\n",
    "seeds-bool": TRANSFER + "seeds: [true]\n",
    "budgets-negative": TRANSFER + "budgets: {train_examples: -1}\n",
    "budgets-float": TRANSFER + "budgets: {eval_examples: 2.5}\n",
    "budgets-list": TRANSFER + "budgets: [1, 2]\n",
    "bootstrap-word": TRANSFER + "bootstrap: many\n",
    "bootstrap-negative": TRANSFER + "bootstrap: -5\n",
    "eval-split-train": TRANSFER + "eval_split: train\n",
    "condition-unknown": TRANSFER + "conditions: [transfer, sideways]\n",
    "sequential-without-pairs": TRANSFER + "conditions: [baseline, sequential]\n",
    "pair-same-task": TRANSFER + "conditions: [joint]\npairs: [[cities, cities]]\n",
    "labels-string": TRANSFER + "labels: math\n",
    "name-list": TRANSFER + "name: [a, b]\n",
    "output-mapping": "models: [smollm2-135m]\ntasks: [cities]\noutput: {a: 1}\n",
    "template-unknown": TRANSFER + "prompt_templates: [fancy]\n",
    "similarity-unknown": TRANSFER + "similarity: [telepathy]\n",
    "task-file-missing": TRANSFER + "task_files: [missing.yaml]\n",
    "study-unknown": TRANSFER + "study: bogus\n",
    "tracking-bogus": TRANSFER + "tracking: 5\n",
    "duplicate-key": TRANSFER + "tasks: [cities]\n",
    "python-tag": TRANSFER + "name: !!python/object/apply:os.system [echo pwned]\n",
}
PROBES_BAD = {
    "billion-laughs": PROBES + LAUGHS,
    "dataset-unknown": PROBES.replace("neg_cities", "nope"),
    "dataset-twice": PROBES.replace("neg_cities", "cities"),
    "algorithm-unknown": PROBES + "algorithms: [magic]\n",
    "limit-negative": PROBES + "limit: -1\n",
    "limit-float": PROBES + "limit: 2.5\n",
    "batch-size-zero": PROBES + "batch_size: 0\n",
    "layers-word": PROBES + "layers: middle\n",
    "layers-every-zero": PROBES + "layers: 'every:0'\n",
    "position-unknown": PROBES + "position: middle\n",
    "protocol-unknown": PROBES + "protocol: bogus\n",
    "device-quantum": PROBES + "device: quantum\n",
    "dtype-float8": PROBES + "dtype: float8\n",
    "report-string": PROBES + "report: 'no'\n",
    "params-list": PROBES + "params: [1]\n",
    "params-unknown-algorithm": PROBES + "params: {nope: {C: 1}}\n",
    "cross-models-string-unknown": PROBES + "cross_model: {models: no-such-model}\n",
    "cross-neutral-word": PROBES + "cross_model: {models: [gemma3-270m], neutral_texts: many}\n",
    "cross-list": PROBES + "cross_model: [gemma3-270m]\n",
    "limits-negative": PROBES + "limits: {cities: -5}\n",
    "sources-int": PROBES + "sources: {cities: 5}\n",
    "models-empty": PROBES + "models: []\n",
    "resamples-negative": PROBES + "resamples: -1\n",
    "max-chars-word": PROBES + "max_chars: long\n",
    "name-mapping": PROBES + "name: {a: 1}\n",
    "unknown-field": PROBES + "algoritms: [dim]\n",
    "duplicate-key": PROBES + "limit: 5\nlimit: 6\n",
}
TRANSLATION_BAD = {
    "billion-laughs": TRANSLATION + LAUGHS,
    "same-models": TRANSLATION.replace("gemma3-270m", "smollm2-135m"),
    "domains-list": TRANSLATION.split("domains")[0] + "domains: [cities]\n",
    "three-anchors": TRANSLATION.replace(", smaller_than", ""),
    "anchor-rank-float": TRANSLATION + "anchor: {rank: 8.5}\n",
    "anchor-modules-comma": TRANSLATION + "anchor: {target_modules: 'q_proj,v_proj'}\n",
    "anchor-lr-word": TRANSLATION + "anchor: {learning_rate: fast}\n",
    "method-unknown": TRANSLATION + "methods: [magic]\n",
    "top-k-small": TRANSLATION + "top_k: 2\n",
    "top-k-float": TRANSLATION + "top_k: 8.5\n",
    "min-effect-negative": TRANSLATION + "min_effect: -1\n",
    "anchor-counts-small": TRANSLATION + "experiments: {scaling: {anchor_counts: [2]}}\n",
    "repeats-zero": TRANSLATION + "experiments: {scaling: {repeats: 0}}\n",
    "experiment-unknown": TRANSLATION + "experiments: {bogus: {}}\n",
    "mlp-hidden-negative": TRANSLATION + "mlp: {hidden: -1}\n",
    "mlp-steps-word": TRANSLATION + "mlp: {steps: many}\n",
    "seed-negative": TRANSLATION + "seed: -1\n",
    "threads-float": TRANSLATION + "threads: 1.5\n",
    "device-quantum": TRANSLATION + "device: quantum\n",
    "bootstrap-word": TRANSLATION + "bootstrap: x\n",
    "eval-split-train": TRANSLATION + "eval_split: train\n",
    "budgets-negative": TRANSLATION + "budgets: {eval_examples: -1}\n",
}

# ---- task YAMLs --------------------------------------------------------------------------
DATA = "".join(json.dumps({"text": f"review {i}", "label": i % 2, "uid": i % 3}) + "\n" for i in range(12))


def task(title: str, **fields: str | None) -> str:
    """A multiple-choice task over data.jsonl, with `fields` replacing or adding YAML lines."""
    base: dict[str, str | None] = {"name": title, "source": "{path: data.jsonl}", "prompt": "'Review: {{ text }}'",
            "choices": "[negative, positive]", "answer": "label"}
    base.update(fields)
    return "".join(f"{k}: {v}\n" for k, v in base.items() if v is not None)


TASK_BAD = {
    "billion-laughs": task("t-laughs") + laughs("description"),
    "deep-nesting": task("t-deep", description=DEEP),
    "recursive-alias": task("t-rec") + RECURSIVE,
    "over-size-limit": task("t-huge") + HUGE,
    "not-yaml": "name: [unclosed\n",
    "list": "- a\n- b\n",
    "empty": "",
    "unknown-field": task("t-unknown", promt="x"),
    "missing-name": task("x", name=None),
    "missing-source": task("t-nosource", source=None),
    "missing-prompt": task("t-noprompt", prompt=None),
    "output-type-unknown": task("t-otype", output_type="essay"),
    "version-word": task("t-version", version="two"),
    "fewshot-negative": task("t-fewshot", num_fewshot="-1"),
    "max-new-tokens-word": task("t-mnt", max_new_tokens="lots"),
    "chance-over-one": task("t-chance", chance="2"),
    "chance-word": task("t-chance2", chance="high"),
    "split-fractions-string": task("t-split", split_fractions="'0.5,0.1,0.4'"),
    "split-fractions-two": task("t-split2", split_fractions="[0.5, 0.5]"),
    "split-fractions-sum": task("t-split3", split_fractions="[0.9, 0.9, 0.9]"),
    "metrics-unknown": task("t-metric", output_type="generate", metrics="[bleu]", choices=None),
    "metrics-empty": task("t-metric2", output_type="generate", metrics="[]", choices=None),
    "choices-one-string": task("t-choices", choices="positive"),
    "choices-empty": task("t-choices2", choices="[]"),
    "no-choices": task("t-choices3", choices=None),
    "source-int": task("t-src", source="5"),
    "source-empty-mapping": task("t-src2", source="{}"),
    "source-missing-file": task("t-src3", source="{path: nowhere.jsonl}"),
    "source-unsupported-suffix": task("t-src4", source="{path: data.txt}"),
    "source-broken-jsonl": task("t-src5", source="{path: broken.jsonl}"),
    "source-empty-file": task("t-src6", source="{path: empty.jsonl}"),
    "template-syntax": task("t-syntax", prompt="'{{ text '"),
    "template-undefined": task("t-undef", prompt="'{{ txet }}'"),
    "template-unsafe-attribute": task("t-unsafe", prompt="\"{{ ''.__class__.__mro__[1].__subclasses__() }}\""),
    "template-big-string": task("t-big", prompt="\"{{ 'x' * 10**9 }}\""),
    "template-big-power": task("t-pow", prompt="'{{ 10 ** (10 ** 10) }}'"),
    "template-nested-range": task("t-range", prompt="'{% for i in range(100000) %}{% for j in range(100000) %}"
                                                    "x{% endfor %}{% endfor %}'"),
    "template-silent-loops": task("t-loops", prompt="'{% for i in range(99999) %}{% for j in range(99999) %}"
                                                    "{% endfor %}{% endfor %}'"),
    "template-big-range": task("t-range2", prompt="'{% for i in range(10**12) %}x{% endfor %}'"),
    "template-center": task("t-center", prompt="\"{{ 'x' | center(10**9) }}\""),
    "template-format-width": task("t-fmt", prompt="\"{{ '%0999999999d' % 1 }}\""),
    "target-syntax": task("t-tsyntax", target="'{% if %}'"),
    "answer-field-missing": task("t-answer", answer="stars"),
    "answer-out-of-range": task("t-answer2", answer="uid", choices="[a, b]", source="{path: big-answers.jsonl}"),
    "id-field-missing": task("t-id", id_field="doc_id"),
    "id-field-duplicates": task("t-id2", id_field="uid"),
    "name-taken": task("cities"),
    "name-list": task("[a, b]"),
    "name-empty": task("''"),
    "domain-mapping": task("t-domain", domain="{a: 1}"),
    "system-prompt-list": task("t-system", system_prompt="[a, b]"),
    "stop-mapping": task("t-stop", stop="{a: 1}"),
    "template-lipsum": task("t-lipsum", prompt="'{{ lipsum(n=999999) }}'"),
    "template-deep-parens": task("t-parens", prompt="'{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}'"),
    "template-include": task("t-include", prompt="\"{% include '/etc/passwd' %}\""),
    "source-device": task("t-device", source="{path: /dev/zero}"),
    "duplicate-key": task("t-dup") + "prompt: again\n",
}
TASK_DATA = {"data.jsonl": DATA, "data.txt": DATA, "broken.jsonl": '{"text": "a", "label": 0}\n{"text": \n', "empty.jsonl": "",
             "big-answers.jsonl": json.dumps({"text": "a", "label": 0, "uid": 7}) + "\n"}

# ---- imports -----------------------------------------------------------------------------
HEADER = "model,learner,trained_on,evaluated_on,condition,seed,metric,value,n,ci_low,ci_high\n"
ROW = "m,lora,cities,cities,transfer,{seed},acc,{value},100,0.5,0.7\n"


def tidy(*rows: str, header: str = HEADER) -> str:
    return header + "".join(rows)


def lm_eval_results(acc: object = 0.5, **overrides: object) -> str:
    data: dict[str, object] = {
        "results": {"arc_easy": {"alias": "arc_easy", "acc,none": acc, "acc_stderr,none": 0.01}},
        "n-samples": {"arc_easy": {"original": 2376, "effective": 100}},
        "config": {"model": "hf", "model_args": "pretrained=HuggingFaceTB/SmolLM2-135M-Instruct"},
        "versions": {"arc_easy": 1.0}}
    data.update(overrides)
    return json.dumps(data).replace('"NAN"', "NaN")


def _parquet(path: Path, **columns: list) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({k: pa.array(v, from_pandas=False) for k, v in columns.items()}), path)


def parquet_case(name: str, nan: bool = False, drop: str = "") -> Callable[[Path], None]:
    def build(d: Path) -> None:
        cols = {"model": ["m"], "learner": ["lora"], "trained_on": ["cities"], "evaluated_on": ["cities"],
                "condition": ["transfer"], "seed": [0], "metric": ["acc"], "value": [float("nan") if nan else 0.6],
                "n": [100], "ci_low": [0.5], "ci_high": [0.7]}
        cols.pop(drop, None)
        _parquet(d / name, **cols)
    return build


IMPORT_BAD: dict[str, tuple[Files, tuple[str, ...], Callable[[Path], None] | None]] = {
    "csv-nan": ({"t.csv": tidy(ROW.format(seed=0, value="nan"))}, ("t.csv",), None),
    "csv-inf": ({"t.csv": tidy(ROW.format(seed=0, value="inf"))}, ("t.csv",), None),
    "csv-seed-float": ({"t.csv": tidy(ROW.format(seed=1.7, value=0.6))}, ("t.csv",), None),
    "csv-duplicate": ({"t.csv": tidy(ROW.format(seed=0, value=0.6), ROW.format(seed=0, value=0.7))}, ("t.csv",), None),
    "csv-value-word": ({"t.csv": tidy(ROW.format(seed=0, value="high"))}, ("t.csv",), None),
    "csv-missing-column": ({"t.csv": tidy("m,lora,cities,cities,transfer,acc,0.6,100,0.5,0.7\n",
                                          header=HEADER.replace(",seed", ""))}, ("t.csv",), None),
    "csv-header-only": ({"t.csv": HEADER}, ("t.csv",), None),
    "csv-empty": ({"t.csv": ""}, ("t.csv",), None),
    "csv-binary": ({"t.csv": bytes(range(256)) * 8}, ("t.csv",), None),
    "csv-ragged": ({"t.csv": tidy("m,lora,cities\n")}, ("t.csv",), None),
    "unknown-suffix": ({"t.txt": "hello\n"}, ("t.txt",), None),
    "missing-file": ({}, ("nowhere.csv",), None),
    "empty-directory": ({"lm/.keep": ""}, ("lm",), None),
    "parquet-garbage": ({"t.parquet": b"PAR1" + b"\x00" * 64}, ("t.parquet",), None),
    "parquet-nan": ({}, ("t.parquet",), parquet_case("t.parquet", nan=True)),
    "parquet-missing-column": ({}, ("t.parquet",), parquet_case("t.parquet", drop="metric")),
    "lm-eval-truncated": ({"results_2025.json": lm_eval_results()[:60]}, ("results_2025.json",), None),
    "lm-eval-nan": ({"results_2025.json": lm_eval_results("NAN")}, ("results_2025.json",), None),
    "lm-eval-results-list": ({"results_2025.json": lm_eval_results(results=[1, 2])}, ("results_2025.json",), None),
    "lm-eval-metric-word": ({"results_2025.json": lm_eval_results("high")}, ("results_2025.json",), None),
    "lm-eval-deep-json": ({"results_2025.json": "[" * 100000 + "]" * 100000}, ("results_2025.json",), None),
    "lm-eval-top-list": ({"results_2025.json": "[1, 2, 3]"}, ("results_2025.json",), None),
    "samples-broken-line": ({"samples_arc_easy_2025.jsonl": '{"doc_id": 0, "acc": 1.0}\n{"doc_id": \n'},
                            ("--model", "m", "samples_arc_easy_2025.jsonl"), None),
    "format-unknown": ({"t.csv": tidy(ROW.format(seed=0, value=0.6))}, ("--format", "xml", "t.csv"), None),
}


# ---- corrupted and mistyped run directories ------------------------------------------------
def corrupt(how: str) -> Callable[[Path], None]:
    def build(d: Path) -> None:
        run = d / "run"
        run.mkdir()
        db = run / "results.sqlite"
        if how == "garbage":
            db.write_bytes(b"not a database at all\n" * 200)
        elif how == "truncated":
            good = sqlite3.connect(db)
            good.execute("CREATE TABLE results (model TEXT, value REAL)")
            good.executemany("INSERT INTO results VALUES (?, ?)", [("m", float(i)) for i in range(2000)])
            good.commit()
            good.close()
            db.write_bytes(db.read_bytes()[:5000])
        elif how == "header-only":
            db.write_bytes(b"SQLite format 3\x00" + b"\xff" * 84 + b"\x00" * 4000)
        elif how == "wrong-schema":
            other = sqlite3.connect(db)
            other.execute("CREATE TABLE results (x TEXT)")
            other.execute("CREATE TABLE jobs (y TEXT)")
            other.commit()
            other.close()
        elif how == "directory":
            db.mkdir()
    return build


def damaged_tables(summary: str, probes_run: str = "") -> Callable[[Path], None]:
    """A run whose database is fine but whose tables or run record are not (a partial copy, another tool)."""
    def build(d: Path) -> None:
        run = d / "run"
        (run / "tables").mkdir(parents=True)
        (run / "tables" / "summary.json").write_text(summary)
        if probes_run:
            db = sqlite3.connect(run / "results.sqlite")
            db.execute("CREATE TABLE probe_results (model TEXT, source_model TEXT, algorithm TEXT, layer INTEGER, "
                       "trained_on TEXT, evaluated_on TEXT, split TEXT, metric TEXT, value REAL, n INTEGER, "
                       "ci_low REAL, ci_high REAL)")
            db.execute("INSERT INTO probe_results VALUES ('m', 'm', 'dim', 1, 'a', 'a', 'validation', 'acc', 0.5, "
                       "10, 0.4, 0.6)")
            db.commit()
            db.close()
            (run / "tables" / "summary.json").unlink()
            (run / "probes_run.json").write_text(probes_run)
    return build


def store_cases() -> list[Case]:
    cases = []
    commands = {"results-show": ("results", "show", "{d}/run"), "results-jobs": ("results", "jobs", "{d}/run"),
                "results-export": ("results", "export", "{d}/run", "{d}/out.csv"), "report": ("report", "{d}/run"),
                "probes-report": ("probes", "report", "{d}/run"),
                "probes-export": ("probes", "export", "{d}/run", "{d}/out.csv"),
                "results-import": ("results", "import", "{d}/run", "{d}/t.csv")}
    files: Files = {"t.csv": tidy(ROW.format(seed=0, value=0.6))}
    for how in ("garbage", "truncated", "header-only", "wrong-schema", "directory"):
        for name, args in commands.items():
            if how in ("truncated", "header-only", "directory") and name in ("probes-export", "results-export"):
                continue
            cases.append(Case(f"store-{how}-{name}", "store", args, files, corrupt(how)))
    for name, summary in (("empty-summary", "{}"), ("broken-summary", "[1"), ("list-summary", "[1, 2]")):
        for command in (("report", "{d}/run"), ("translation", "report", "{d}/run")):
            cases.append(Case(f"tables-{name}-{command[0]}", "store", command, setup=damaged_tables(summary)))
    for name, record in (("broken-run-record", "{"), ("list-run-record", "[]")):
        for command in (("probes", "report", "{d}/run"), ("report", "{d}/run")):
            cases.append(Case(f"probes-{name}-{command[0]}", "store", command, setup=damaged_tables("", record)))
    for name, args in {**commands, "translation-report": ("translation", "report", "{d}/run"),
                       "results-rebuild": ("results", "rebuild", "{d}/run")}.items():
        if name == "results-import":
            continue
        cases.append(Case(f"wrong-dir-{name}", "store", tuple(a.replace("/run", "/rnu") for a in args)))
    return cases


# ---- command-line arguments: declared types and bounds -------------------------------------
CLI_BAD = {
    "train-rank-zero": ("train", "cities", "--out", "{d}/a", "--rank", "0"),
    "train-rank-float": ("train", "cities", "--out", "{d}/a", "--rank", "8.5"),
    "train-modules-empty": ("train", "cities", "--out", "{d}/a", "--target-modules", ","),
    "train-lr-negative": ("train", "cities", "--out", "{d}/a", "--learning-rate", "-1"),
    "train-device-quantum": ("train", "cities", "--out", "{d}/a", "--device", "quantum"),
    "train-task-unknown": ("train", "citiez", "--out", "{d}/a"),
    "train-no-out": ("train", "cities"),
    "evaluate-limit-negative": ("evaluate", "cities", "--limit", "-5"),
    "evaluate-batch-zero": ("evaluate", "cities", "--batch-size", "0"),
    "evaluate-device-quantum": ("evaluate", "cities", "--device", "quantum", "--limit", "1"),
    "evaluate-split-unknown": ("evaluate", "cities", "--split", "validation"),
    "probes-limit-negative": ("probes", "run", "--limit", "-1", "--out", "{d}/p"),
    "probes-layers-word": ("probes", "run", "--layers", "middle", "--out", "{d}/p"),
    "probes-device-quantum": ("probes", "run", "--device", "quantum", "--out", "{d}/p"),
    "probes-dataset-limit-word": ("probes", "run", "--dataset-limit", "cities=x", "--out", "{d}/p"),
    "probes-source-no-equals": ("probes", "run", "--source", "nopath", "--out", "{d}/p"),
    "probes-batch-size-zero": ("probes", "run", "--batch-size", "0", "--out", "{d}/p"),
    "probes-threads-negative": ("probes", "run", "--threads", "-2", "--out", "{d}/p"),
    "models-info-unknown": ("models", "info", "no-such-model"),
    "models-info-dtype": ("models", "info", "smollm2-135m", "--dtype", "float8"),
    "tasks-show-unknown": ("tasks", "show", "citiez"),
    "unknown-command": ("trian", "cities"),
    "run-no-spec": ("run",),
    "report-no-run": ("report",),
    "translation-flag-missing": ("translation", "flag", "{d}/nowhere.csv", "--out", "{d}/f.csv"),
}


def corpus() -> list[Case]:
    cases = []
    for kind, bad in (("spec-transfer", TRANSFER_BAD), ("spec-probes", PROBES_BAD),
                      ("spec-translation", TRANSLATION_BAD)):
        for name, text in bad.items():
            cases.append(Case(f"{kind}-{name}", kind, ("run", "{d}/spec.yaml", "--dry-run"), {"spec.yaml": text}))
    cases += [Case("spec-not-utf8", "spec-transfer", ("run", "{d}/spec.yaml", "--dry-run"),
                   {"spec.yaml": b"models: [\xff\xfe]\n"}),
              Case("spec-missing", "spec-transfer", ("run", "{d}/nowhere.yaml", "--dry-run")),
              Case("spec-is-directory", "spec-transfer", ("run", "{d}/specs", "--dry-run"), {"specs/.keep": ""})]
    for name, text in TASK_BAD.items():
        shown = next(iter(re.findall(r"^name: (t-[\w-]+)$", text, re.M)), "t-any")
        cases.append(Case(f"task-{name}", "task", ("tasks", "show", shown, "--include", "{d}/task.yaml"),
                          {"task.yaml": text, **TASK_DATA}))
    cases += [Case("task-not-utf8", "task", ("tasks", "show", "x", "--include", "{d}/task.yaml"),
                   {"task.yaml": b"name: \xff\xfe\n"}),
              Case("task-file-missing", "task", ("tasks", "show", "x", "--include", "{d}/nowhere.yaml")),
              Case("task-file-directory", "task", ("tasks", "show", "x", "--include", "{d}/tdir"), {"tdir/.keep": ""}),
              Case("task-preview-bad-template", "task", ("tasks", "preview", "t-prev", "--include", "{d}/task.yaml"),
                   {"task.yaml": task("t-prev", prompt="\"{{ 'x' * 10**9 }}\""), **TASK_DATA}),
              Case("task-preview-split-unknown", "task", ("tasks", "preview", "cities", "--split", "validation")),
              Case("task-preview-n-negative", "task", ("tasks", "preview", "cities", "--n", "-1"))]
    for name, (files, paths, setup) in IMPORT_BAD.items():
        args = ("results", "import", "{d}/run", *(p if p.startswith("-") or p in ("xml", "m") else "{d}/" + p
                                                  for p in paths))
        cases.append(Case(f"import-{name}", "import", args, files, setup))
    cases += [Case(f"cli-{name}", "cli", args) for name, args in CLI_BAD.items()]
    return cases + store_cases()


def controls() -> list[Case]:
    """The well-formed twin of each family: accepted (exit 0), so the corpus's errors come from what
    each case breaks, not from its base. A name where a list is expected is a one-element list, and
    aliases within the limits load as usual."""
    dry = ("run", "{d}/spec.yaml", "--dry-run")
    return [
        Case("ok-transfer", "control", dry, {"spec.yaml": TRANSFER + "learners:\n  - &base {name: a, type: lora, "
                                                                     "target_modules: q_proj}\n"
                                                                     "  - {<<: *base, name: b, rank: 4}\n"}),
        Case("ok-grpo", "control", dry, {"spec.yaml": GENERATE + LEARNER.format(type="grpo", field="group_size: 4")}),
        Case("ok-probes", "control", dry, {"spec.yaml": PROBES}),
        Case("ok-task", "control", ("tasks", "show", "t-ok", "--include", "{d}/task.yaml"),
             {"task.yaml": task("t-ok", stop="'###'", target="'{{ text | upper }}'"), **TASK_DATA}),
        Case("ok-import", "control", ("results", "import", "{d}/run", "{d}/t.csv"),
             {"t.csv": tidy(ROW.format(seed=0, value=0.6))}),
    ]
