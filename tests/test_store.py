"""The store: atomic content-addressed artifacts, corruption detection, the tidy results table."""

from __future__ import annotations

import pandas as pd
import pytest

from transferlab.errors import TransferlabError
from transferlab.engine.store import RESULT_COLUMNS, ResultRow, Store, check_writable, export_results, import_results


def row(**kw) -> ResultRow:
    base = dict(model="m", learner="lora", trained_on="a", evaluated_on="b", condition="transfer", seed=0,
                metric="acc", value=0.5, n=10, ci_low=0.2, ci_high=0.8)
    return ResultRow(**{**base, **kw})


def test_artifact_is_written_atomically_and_verified(tmp_path):
    store = Store(tmp_path)
    with store.writing("adapter", "k1") as out:
        (out / "weights.bin").write_bytes(b"abc")
    assert store.has("adapter", "k1")
    with pytest.raises(RuntimeError):
        with store.writing("adapter", "k2") as out:
            (out / "weights.bin").write_bytes(b"partial")
            raise RuntimeError("crash mid-job")
    assert not store.has("adapter", "k2")
    assert not list((tmp_path / "artifacts" / "adapter").glob(".*tmp"))  # no half-written leftovers


def test_corrupted_artifact_is_detected_and_removed(tmp_path):
    store = Store(tmp_path)
    with store.writing("evaluation", "k") as out:
        (out / "evaluation.json").write_text('{"scores": [1, 0, 1]}')
    (store.path("evaluation", "k") / "evaluation.json").write_text('{"scores": [1, 1, 1]}')  # bit rot / tampering
    assert not store.has("evaluation", "k")
    assert not store.path("evaluation", "k").exists()  # gone, so the job runs again


def test_results_upsert_export_and_import_roundtrip(tmp_path):
    store = Store(tmp_path / "run")
    store.add_results([row(), row(metric="acc_norm", value=0.4)])
    store.add_results([row(value=0.6)])  # same key: replaced, not duplicated
    frame = store.results()
    assert len(frame) == 2 and list(frame.columns) == list(RESULT_COLUMNS)
    assert frame.loc[frame.metric == "acc", "value"].item() == 0.6
    for suffix in (".csv", ".parquet"):
        path = tmp_path / f"out{suffix}"
        assert export_results(store, path) == 2
        other = Store(tmp_path / f"other{suffix}")
        assert import_results(other, path) == 2
        pd.testing.assert_frame_equal(other.results(), frame)


def test_import_checks_columns_and_rows(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("model,value\nm,1\n")
    with pytest.raises(TransferlabError, match="lacks the columns"):
        import_results(Store(tmp_path / "s"), bad)
    broken = tmp_path / "broken.csv"
    broken.write_text(",".join(RESULT_COLUMNS) + "\nm,l,a,b,transfer,zero,acc,0.5,10,,\n")
    with pytest.raises(TransferlabError, match="row 2"):
        import_results(Store(tmp_path / "s"), broken)


def test_unwritable_output_fails_before_work(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        import os

        if os.geteuid() == 0:
            pytest.skip("root can write anywhere")
        with pytest.raises(TransferlabError, match="cannot write"):
            check_writable(locked / "run")
    finally:
        locked.chmod(0o700)


def test_full_disk_fails_before_work(tmp_path):
    with pytest.raises(TransferlabError, match="free"):
        check_writable(tmp_path, need_bytes=1 << 60)


def test_job_records(tmp_path):
    store = Store(tmp_path)
    store.record_job("k", "train", "failed", "loss became nan")
    assert store.job_status("k") == "failed" and store.jobs()[0]["detail"] == "loss became nan"


def test_labels_methods_and_similarity_tables(tmp_path):
    store = Store(tmp_path)
    store.set_labels({"gsm8k": "math", "alpaca_gpt4": "instruction_following"})
    store.set_labels({"gsm8k": "numeric"})  # a re-run with a new label replaces the old one
    store.set_learner_methods({"lora": "sl", "grpo": "rl"})
    store.add_similarity(pd.DataFrame({"task_a": ["a", "b"], "task_b": ["b", "a"], "kind": ["vocabulary"] * 2,
                                       "similarity": [0.25, 0.25]}))
    again = Store(tmp_path)
    assert again.labels() == {"gsm8k": "numeric", "alpaca_gpt4": "instruction_following"}
    assert again.learner_methods() == {"lora": "sl", "grpo": "rl"}
    assert list(again.similarity()["similarity"]) == [0.25, 0.25]


def test_shared_artifacts_directory(tmp_path):
    one, two = Store(tmp_path / "one", artifacts=tmp_path / "shared"), Store(tmp_path / "two", artifacts=tmp_path / "shared")
    with one.writing("adapter", "k1") as out:
        (out / "w.bin").write_bytes(b"weights")
    assert two.has("adapter", "k1") and not (tmp_path / "one" / "artifacts").exists()
