"""Probe datasets: offline truth sets and MMLU rows, and every hub-format family read from local files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from transferlab.errors import TransferlabError
from transferlab.probes import datasets as D
from transferlab.probes.rows import SPLITS


def test_truth_sets_keep_the_task_splits_and_pairs():
    ds = D.load_dataset("cities", limit=30)
    counts = ds.counts()
    assert counts == {"train": 60, "hparams": 30, "validation": 60}
    assert ds.grouped("train") and ds.grouped("validation")
    by_group = {}
    for r in ds.rows:
        by_group.setdefault(r.group, set()).add(r.split)
    assert all(len(s) == 1 for s in by_group.values()), "a city never straddles splits"
    assert D.load_dataset("cities", limit=30).fingerprint() == ds.fingerprint()
    smaller = D.load_dataset("cities", limit=10)
    assert {r.group for r in smaller.rows} <= {r.group for r in ds.rows}, "a smaller limit keeps a subset"
    conj = D.load_dataset("cities_conj", limit=20)
    assert not conj.grouped(), "one statement per city: row accuracy applies"


def test_mmlu_rows_are_repe_style_one_per_option():
    ds = D.load_dataset("mmlu-math", limit=5, max_chars=400)
    assert ds.family == "mmlu" and ds.grouped()
    first = [r for r in ds.rows if r.group == ds.rows[0].group]
    assert len(first) == 4 and sum(r.label for r in first) == 1
    assert first[0].text.startswith("Consider the correctness of the answer")
    assert all(len(r.text) <= 400 for r in ds.rows)


def test_one_class_dataset_is_a_clear_error():
    row = D.Row("x", 1, "g", "statement", "train")
    with pytest.raises(TransferlabError, match="one class only"):
        D.ProbeDataset("bad", "got", (row, row))


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in records))
    return path


HUB_RECORDS = {
    "imdb": [{"text": f"Movie {i} was {'great' if i % 2 else 'awful'}.", "label": i % 2} for i in range(40)],
    "amazon_polarity": [{"title": f"T{i}", "content": f"Item {i}", "label": i % 2} for i in range(40)],
    "ag_news": [{"text": f"News {i}", "label": i % 4} for i in range(40)],
    "dbpedia_14": [{"title": f"T{i}", "content": f"Entity {i}", "label": i % 14} for i in range(40)],
    "rte": [{"premise": f"P{i}", "hypothesis": f"H{i}", "idx": i, "label": i % 2} for i in range(40)]
    + [{"premise": "hidden", "hypothesis": "test", "idx": 99, "label": -1}],
    "copa": [{"premise": f"P{i}", "choice1": f"A{i}", "choice2": f"B{i}", "question": "cause", "idx": i,
              "label": i % 2} for i in range(40)],
    "boolq": [{"question": f"is {i} even", "answer": i % 2 == 0, "passage": f"Number {i}."} for i in range(40)],
    "piqa": [{"goal": f"G{i}", "sol1": f"S{i}a", "sol2": f"S{i}b", "label": i % 2} for i in range(40)],
    "arc_easy": [{"id": str(i), "question": f"Q{i}?", "choices": {"text": ["a", "b", "c", "d"],
                                                                   "label": ["A", "B", "C", "D"]},
                  "answerKey": "ABCD"[i % 4]} for i in range(40)],
    "commonsense_qa": [{"id": str(i), "question": f"Q{i}?", "question_concept": "x",
                        "choices": {"label": list("ABCDE"), "text": list("vwxyz")}, "answerKey": "C"}
                       for i in range(40)],
    "openbookqa": [{"id": str(i), "question_stem": f"Q{i}", "choices": {"text": ["a", "b", "c", "d"],
                                                                          "label": list("ABCD")},
                    "answerKey": "B"} for i in range(40)],
    "race": [{"example_id": str(i), "article": f"Article {i}.", "question": f"Q{i}?",
              "options": ["w", "x", "y", "z"], "answer": "D"} for i in range(40)],
    "truthful_qa": [{"question": f"Q{i}?", "mc1_targets": {"choices": ["t", "f1", "f2"], "labels": [1, 0, 0]},
                     "mc2_targets": {"choices": ["t"], "labels": [1]}} for i in range(40)],
}


@pytest.mark.parametrize("name", sorted(HUB_RECORDS))
def test_hub_families_from_local_jsonl(name, tmp_path):
    path = write_jsonl(tmp_path / f"{name}.jsonl", HUB_RECORDS[name])
    ds = D.load_dataset(name, source=path)
    assert ds.family == D.family_of(name)
    assert ds.grouped("train") or ds.grouped("validation")
    for group in {r.group for r in ds.rows}:
        labels = [r.label for r in ds.rows if r.group == group]
        assert sum(labels) == 1 and len(labels) >= 2
    assert set(ds.splits) <= set(SPLITS)
    if name == "imdb":
        assert {r.answer_type for r in ds.rows} == {"negative", "positive"}
        true_text = next(r.text for r in ds.rows if r.label == 1 and "Movie 1 " in r.text)
        assert true_text.endswith("positive")


def test_parquet_and_save_to_disk_sources(tmp_path):
    import datasets
    import pandas as pd

    records = HUB_RECORDS["piqa"]
    pd.DataFrame(records).to_parquet(tmp_path / "piqa.parquet")
    from_parquet = D.load_dataset("piqa", source=tmp_path / "piqa.parquet")
    datasets.DatasetDict({"validation": datasets.Dataset.from_list(records)}).save_to_disk(tmp_path / "piqa_disk")
    from_disk = D.load_dataset("piqa", source=tmp_path / "piqa_disk")
    assert from_parquet.fingerprint() == from_disk.fingerprint()


def test_loader_errors_are_one_line(tmp_path):
    with pytest.raises(TransferlabError, match="lack the column"):
        D.load_dataset("imdb", source=write_jsonl(tmp_path / "x.jsonl", [{"review": "a", "label": 1}]))
    with pytest.raises(TransferlabError, match="no such file"):
        D.load_dataset("imdb", source=tmp_path / "missing.jsonl")
    with pytest.raises(TransferlabError, match="did you mean 'imdb'"):
        D.load_dataset("imbd")
    with pytest.raises(TransferlabError, match="no rows"):
        D.load_dataset("imdb", source=write_jsonl(tmp_path / "none.jsonl", [{"text": "a", "label": 7}]))
