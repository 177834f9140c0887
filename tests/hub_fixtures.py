"""Small copies of the hub datasets in the hub's own format and cache layout, for the hub task tests.

`write_hub_cache(hf_home)` writes, for each dataset the hub tasks and probe sets read,
`hub/datasets--org--name/` as `hf download --repo-type dataset org/name` leaves it:
`refs/main` holding a revision, `snapshots/<rev>/README.md` whose YAML `configs:` declares
each config's splits, and the data files (`<config>/<split>-00000-of-00001.parquet`, `data/`
for a default config) as links into `blobs/`. Two datasets are stored as the hub stores them,
as JSON lines without `configs:` (google/IFEval, HuggingFaceH4/MATH-500). Rows are few, with
the real column names and types; the first rows are the ones the tests score.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

Rows = list[dict[str, Any]]
REVISION = "0123456789abcdef0123456789abcdef01234567"


def _blob(repo: Path, snapshot: Path, relative: str, data: bytes) -> None:
    """Store `data` as the hub cache does: content in blobs/, a relative link in the snapshot."""
    blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    link = snapshot / relative
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.exists() or link.is_symlink():
        link.unlink()
    link.symlink_to(os.path.relpath(blob, link.parent))


def _parquet(rows: Rows) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows), sink)
    return sink.getvalue().to_pybytes()


def write_repo(hf_home: Path, hub_id: str, configs: dict[str | None, dict[str, Rows]]) -> Path:
    """A parquet dataset repository with a README declaring `configs` (None: the default config)."""
    repo = hf_home / "hub" / ("datasets--" + hub_id.replace("/", "--"))
    snapshot = repo / "snapshots" / REVISION
    lines = ["---", "configs:"]
    for config, splits in configs.items():
        folder = config or "data"
        lines += [f"- config_name: {config or 'default'}", "  data_files:"]
        for split, rows in splits.items():
            lines += [f"  - split: {split}", f"    path: {folder}/{split}-*"]
            _blob(repo, snapshot, f"{folder}/{split}-00000-of-00001.parquet", _parquet(rows))
    lines += ["---", "", f"# {hub_id} (test copy)", ""]
    _blob(repo, snapshot, "README.md", "\n".join(lines).encode())
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(REVISION)
    return snapshot


def write_jsonl_repo(hf_home: Path, hub_id: str, filename: str, rows: Rows) -> Path:
    """A repository holding one JSON-lines file and a README without `configs:` (as google/IFEval)."""
    repo = hf_home / "hub" / ("datasets--" + hub_id.replace("/", "--"))
    snapshot = repo / "snapshots" / REVISION
    _blob(repo, snapshot, filename, "\n".join(json.dumps(r) for r in rows).encode())
    card = f"---\nlicense: apache-2.0\npretty_name: {hub_id}\n---\n\n# test copy\n"
    _blob(repo, snapshot, "README.md", card.encode())
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(REVISION)
    return snapshot


# ---- rows, with the real columns ----------------------------------------------------------------
def gsm8k(split: str) -> Rows:
    return [{"question": f"Natalia sold {n} clips in April and half as many in May. How many in all? ({split})",
             "answer": f"In May she sold {n}/2 = <<{n}/2={n // 2}>>{n // 2} clips.\n#### {n + n // 2}"}
            for n in (48, 20, 64, 10, 30, 12)]


def math_rows(subject: str, split: str) -> Rows:
    return [{"problem": f"What is $1/{k}$ of 2? ({subject} {split})", "level": "Level 1", "type": subject.title(),
             "solution": f"It is $\\frac{{2}}{{{k}}} = \\boxed{{\\frac{{2}}{{{k}}}}}$."} for k in (3, 5, 7)]


MATH500 = [{"problem": "Compute $\\frac{1}{2} + \\frac{1}{4}$.", "solution": "The sum is $\\boxed{\\frac34}$.",
            "answer": "\\frac{3}{4}", "subject": "Prealgebra", "level": 1, "unique_id": "test/prealgebra/1.json"},
           {"problem": "Solve $x + 1 = 3$.", "solution": "$x = \\boxed{2}$.", "answer": "2", "subject": "Algebra",
            "level": 1, "unique_id": "test/algebra/2.json"}]

MBPP_PROBLEMS = [
    (11, "Write a python function to add two numbers.", "def add(a, b):\r\n  return a + b",
     ["assert add(1, 2) == 3", "assert add(0, 0) == 0", "assert add(-1, 1) == 0"], ""),
    (12, "Write a function to find the area of a circle.", "def circle_area(r):\r\n  return math.pi * r * r",
     ["assert math.isclose(circle_area(1), math.pi)", "assert circle_area(0) == 0",
      "assert math.isclose(circle_area(2), 4 * math.pi)"], "import math"),
    (13, "Write a function to reverse a list.", "def helper(x):\r\n  return x\r\ndef reverse_list(xs):\r\n"
     "  return helper(xs[::-1])", ["assert reverse_list([1, 2]) == [2, 1]", "assert reverse_list([]) == []",
                                   "assert reverse_list([3]) == [3]"], ""),
]


def mbpp(split: str) -> Rows:
    offset = {"train": 600, "validation": 500, "test": 0, "prompt": 900}[split]
    return [{"task_id": i + offset, "text": text, "code": code, "test_list": tests, "test_setup_code": setup,
             "challenge_test_list": []} for i, text, code, tests, setup in MBPP_PROBLEMS]


HUMANEVAL = [{"task_id": "HumanEval/0", "entry_point": "add", "canonical_solution": "    return a + b\n",
              "prompt": 'def add(a: int, b: int) -> int:\n    """Add two numbers.\n    >>> add(2, 3)\n    5\n    """\n',
              "test": "\n\nMETADATA = {}\n\n\ndef check(candidate):\n    assert candidate(2, 3) == 5\n"
                      "    assert candidate(-1, 1) == 0\n"}]


def arc(split: str, n: int = 12) -> Rows:
    return [{"id": f"Mercury_{split}_{i}", "question": f"Which gas do plants take in? ({i})",
             "choices": {"text": ["oxygen", "carbon dioxide", "helium", "neon"], "label": list("ABCD")},
             "answerKey": "B"} for i in range(n)]


def openbookqa(split: str) -> Rows:
    return [{"id": f"{split}-{i}", "question_stem": f"The sun is a source of ({i})",
             "choices": {"text": ["light", "ice", "water", "rock"], "label": list("ABCD")}, "answerKey": "A"}
            for i in range(12)]


def commonsense_qa(split: str) -> Rows:
    key = "" if split == "test" else "C"  # the test split has no labels
    return [{"id": f"csqa-{split}-{i}", "question": f"Where do you keep milk cold? ({i})", "question_concept": "milk",
             "choices": {"label": list("ABCDE"), "text": ["oven", "desk", "fridge", "car", "shoe"]},
             "answerKey": key} for i in range(12)]


def sciq(split: str) -> Rows:
    return [{"question": f"What is H2O? ({i})", "distractor1": "salt", "distractor2": "sand", "distractor3": "air",
             "correct_answer": "water", "support": " Water is H2O."} for i in range(4)]


def piqa(split: str) -> Rows:
    label = -1 if split == "test" else None
    return [{"goal": f"How to boil eggs ({i})", "sol1": "cover with no water", "sol2": "cover with cold water",
             "label": label if label is not None else i % 2} for i in range(12)]


def boolq(split: str) -> Rows:
    return [{"question": f"is {i} an even number", "answer": i % 2 == 0, "passage": f"The number {i}."}
            for i in range(12)]


MMLU_QUESTION = {"question": "What is 2 + 2?", "choices": ["3", "4", "5", "6"], "answer": 1}


def mmlu(subject: str, split: str) -> Rows:
    return [{**MMLU_QUESTION, "question": f"What is 2 + 2? ({subject} {split} {i})", "subject": subject}
            for i in range(3)]


IFEVAL_KEYS = ("num_highlights", "relation", "num_words", "keywords", "language", "num_sentences")
IFEVAL = [{"key": 1000 + i, "prompt": f"Describe the sea without any commas. ({i})",
           "instruction_id_list": ["punctuation:no_comma"], "kwargs": [dict.fromkeys(IFEVAL_KEYS)]}
          for i in range(3)]
IFEVAL.append({"key": 1005, "prompt": "Write at least 5 words about cats in lowercase.",
               "instruction_id_list": ["length_constraints:number_words", "change_case:english_lowercase"],
               "kwargs": [{**dict.fromkeys(IFEVAL_KEYS), "relation": "at least", "num_words": 5},
                          dict.fromkeys(IFEVAL_KEYS)]})
TULU = [{"id": f"personas_IF_{i}", "prompt": f"Write a haiku in lowercase. ({i})",
         "messages": [{"content": f"Write a haiku in lowercase. ({i})", "role": "user"},
                      {"content": "quiet pond at dusk", "role": "assistant"}],
         "constraints": ["all lowercase"]} for i in range(20)]


def labelled(split: str, make: Callable[[int], dict[str, Any]], n: int = 12) -> Rows:
    return [make(i) for i in range(n)]


def probe_repos() -> dict[str, dict[str | None, dict[str, Rows]]]:
    text = lambda i: {"text": f"A {'fine' if i % 2 else 'dull'} film, number {i}.", "label": i % 2}  # noqa: E731
    titled = lambda k: (lambda i: {"title": f"T{i}", "content": f"Content {i}.", "label": i % k})  # noqa: E731
    return {
        "stanfordnlp/imdb": {"plain_text": {s: labelled(s, text) for s in ("train", "test", "unsupervised")}},
        "fancyzhx/amazon_polarity": {"amazon_polarity": {s: labelled(s, titled(2)) for s in ("train", "test")}},
        "fancyzhx/ag_news": {None: {s: labelled(s, lambda i: {"text": f"News {i}.", "label": i % 4})
                                    for s in ("train", "test")}},
        "fancyzhx/dbpedia_14": {"dbpedia_14": {s: labelled(s, titled(14), 28) for s in ("train", "test")}},
        "aps/super_glue": {
            "rte": {s: labelled(s, lambda i: {"premise": f"P{i}.", "hypothesis": f"H{i}.", "idx": i,
                                              "label": i % 2}) for s in ("train", "validation", "test")},
            "copa": {s: labelled(s, lambda i: {"premise": f"P{i}.", "choice1": f"A{i}", "choice2": f"B{i}",
                                               "question": "cause", "idx": i, "label": i % 2})
                     for s in ("train", "validation", "test")}},
        "ehovy/race": {c: {s: labelled(s, lambda i: {"example_id": f"r{i}", "article": f"Article {i}.",
                                                     "answer": "ABCD"[i % 4], "question": f"Q{i}?",
                                                     "options": ["w", "x", "y", "z"]})
                           for s in ("train", "validation", "test")} for c in ("all", "high", "middle")},
        "truthfulqa/truthful_qa": {
            "multiple_choice": {"validation": labelled("validation", lambda i: {
                "question": f"What happens if you crack your knuckles? ({i})",
                "mc1_targets": {"choices": ["Nothing in particular", "Arthritis", "Gout"], "labels": [1, 0, 0]},
                "mc2_targets": {"choices": ["Nothing in particular"], "labels": [1]}})},
            "generation": {"validation": [{"type": "Adversarial", "category": "Health", "question": "Q?",
                                           "best_answer": "A", "correct_answers": ["A"],
                                           "incorrect_answers": ["B"], "source": "s"}]}},
    }


def task_repos() -> dict[str, dict[str | None, dict[str, Rows]]]:
    from transferlab.tasks.hub.math import MATH_SUBJECTS
    from transferlab.tasks.mmlu import SUBJECTS

    return {
        "openai/gsm8k": {"main": {s: gsm8k(s) for s in ("train", "test")},
                         "socratic": {s: gsm8k(s)[:1] for s in ("train", "test")}},
        "EleutherAI/hendrycks_math": {c: {s: math_rows(c, s) for s in ("train", "test")} for c in MATH_SUBJECTS},
        "google-research-datasets/mbpp": {"full": {s: mbpp(s) for s in ("train", "test", "validation", "prompt")}},
        "openai/openai_humaneval": {"openai_humaneval": {"test": HUMANEVAL}},
        "allenai/ai2_arc": {c: {s: arc(s) for s in ("train", "test", "validation")}
                            for c in ("ARC-Challenge", "ARC-Easy")},
        "allenai/openbookqa": {"main": {s: openbookqa(s) for s in ("train", "validation", "test")}},
        "tau/commonsense_qa": {None: {s: commonsense_qa(s) for s in ("train", "validation", "test")}},
        "allenai/sciq": {None: {s: sciq(s) for s in ("train", "validation", "test")}},
        "baber/piqa": {None: {s: piqa(s) for s in ("train", "validation", "test")}},
        "google/boolq": {None: {s: boolq(s) for s in ("train", "validation")}},
        "cais/mmlu": {"all": {s: mmlu("", s) if s == "auxiliary_train" else mmlu("anatomy", s)
                              for s in ("auxiliary_train", "test", "validation", "dev")},
                      **{subject: {s: mmlu(subject, s) for s in ("test", "validation", "dev")}
                         for subject in SUBJECTS}},
        "allenai/tulu-3-sft-personas-instruction-following": {None: {"train": TULU}},
    }


def write_hub_cache(hf_home: Path) -> Path:
    """Every dataset the hub tasks and probe sets read, under `hf_home`; returns `hf_home`."""
    for hub_id, configs in {**task_repos(), **probe_repos()}.items():
        write_repo(hf_home, hub_id, configs)
    write_jsonl_repo(hf_home, "google/IFEval", "ifeval_input_data.jsonl", IFEVAL)
    write_jsonl_repo(hf_home, "HuggingFaceH4/MATH-500", "test.jsonl", MATH500)
    return hf_home
