"""Evaluations in chunks (`engine.evaluation_chunks`): the chunks concatenate to the whole
evaluation, a kill loses only the chunk in flight, and the engine's evaluate job resumes from
its chunks (alone and as the leader of a grouped pass) and removes them when it is stored."""

from __future__ import annotations

import pytest

from test_evaluate_groups import _jobs, _runtime, _store_adapter, assert_same_record, made, toy_tasks  # noqa: F401
from tiny_models import TinyLoaded
from toy_tasks import Comparison, Echo
from transferlab.engine import evaluation_chunks
from transferlab.engine.adapter_jobs import run_evaluate
from transferlab.engine.evaluate_groups import own_params
from transferlab.engine.evaluation_chunks import concatenate, from_json, in_chunks
from transferlab.engine.jobs import Job
from transferlab.evaluate import TaskEvaluation, evaluate_task

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.filterwarnings("ignore::FutureWarning")]


class Killed(Exception):
    pass


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(evaluation_chunks, "CHUNK", 4)


@pytest.mark.parametrize("task", [Comparison(), Echo()], ids=["multiple choice", "generation"])
def test_chunks_concatenate_to_the_whole_evaluation(task, tmp_path, small_chunks):
    tiny = TinyLoaded()
    examples = task.examples("test")[:10]
    whole = evaluate_task(tiny.model, tiny.tokenizer, task, examples, batch_size=4, max_new_tokens=4)
    calls = []

    def evaluate(chunk):
        calls.append(len(chunk))
        return [evaluate_task(tiny.model, tiny.tokenizer, task, chunk, batch_size=4, max_new_tokens=4)]
    (chunked,) = in_chunks(examples, [tmp_path / "chunks"], evaluate)
    assert calls == [4, 4, 2]
    assert_same_record(chunked.to_json(), whole.to_json())
    assert from_json(chunked.to_json()) == chunked  # the saved form reads back whole


def test_a_kill_loses_only_the_chunk_in_flight(tmp_path, small_chunks):
    tiny, task = TinyLoaded(), Comparison()
    examples = task.examples("test")[:10]
    calls: list[list[str]] = []

    def evaluate(chunk, die_at=None):
        calls.append([e.uid for e in chunk])
        if len(calls) == die_at:
            raise Killed
        return [evaluate_task(tiny.model, tiny.tokenizer, task, chunk, batch_size=4)] * 2  # two members
    dirs = [tmp_path / "a", tmp_path / "b"]
    with pytest.raises(Killed):
        in_chunks(examples, dirs, lambda chunk: evaluate(chunk, die_at=3))
    for directory in dirs:  # each member keeps its own share of every finished chunk
        assert sorted(p.name for p in directory.iterdir()) == ["chunk-0000.json", "chunk-0001.json"]
    calls.clear()
    skipped = []
    first, second = in_chunks(examples, dirs, evaluate, skipped=skipped.append)
    assert calls == [[e.uid for e in examples[8:]]] and [len(c) for c in skipped] == [4, 4]
    assert first.uids == [e.uid for e in examples] == second.uids
    calls.clear()
    in_chunks(examples, [tmp_path / "a", tmp_path / "c"], evaluate)  # a member without chunks: scored again
    assert len(calls) == 3
    (tmp_path / "a" / "chunk-0001.json").write_text("{not json")  # a damaged chunk is scored again
    calls.clear()
    in_chunks(examples, [tmp_path / "a", tmp_path / "c"], evaluate)
    assert [c[0] for c in calls] == [examples[4].uid]


def test_weights_of_chunks_that_leave_them_out_are_ones():
    def part(uids, weights):
        return TaskEvaluation("t", "test", uids, {"acc": [1.0] * len(uids)}, weights=weights)
    joined = concatenate([part(["a", "b"], {}), part(["c"], {"acc": [2.0]})])
    assert joined.weights == {"acc": [1.0, 1.0, 2.0]} and joined.uids == ["a", "b", "c"]


def test_the_evaluate_job_resumes_from_its_chunks_alone_and_leading_a_pass(made, small_chunks):
    rt = _runtime(made)
    for name in ("a1", "a2"):
        _store_adapter(rt, name, made / "made" / name)
    base, a1, a2 = _jobs([None, "a1", "a2"])  # a grouped pass of three, 8 examples = 2 chunks
    model = rt.loaded["tiny"].model
    original, forwards = model.forward, []

    def dying(*args, **kwargs):
        if (rt.store.resume_dir(base.key) / "chunk-0000.json").exists():  # in the second chunk
            raise Killed
        forwards.append(1)
        return original(*args, **kwargs)
    model.forward = dying
    with pytest.raises(Killed):
        run_evaluate(base, rt, lambda *a: None)
    for job in (base, a1, a2):  # the leader and both peers each keep the first chunk
        assert [p.name for p in rt.store.resume_dir(job.key).iterdir()] == ["chunk-0000.json"]
    per_chunk, resumed = len(forwards), []
    model.forward = lambda *args, **kwargs: (resumed.append(1), original(*args, **kwargs))[1]
    assert run_evaluate(base, rt, lambda *a: None)["one_pass_with"] == 2
    assert len(resumed) == per_chunk  # only the second chunk was scored
    assert not rt.store.resume_dir(base.key).exists()
    assert rt.store.resume_dir(a1.key).is_dir()  # a peer's chunks stay until its own evaluation is stored
    for job in (a1, a2):
        run_evaluate(job, rt, lambda *a: None)
        assert not rt.store.resume_dir(job.key).exists()
    model.forward = original
    for job in (base, a1, a2):  # the resumed pass equals each evaluated alone, in one go
        alone_rt = _runtime(made / f"alone-{job.key}")
        for key in filter(None, [job.params.get("adapter")]):
            _store_adapter(alone_rt, key, made / "made" / key)
        run_evaluate(Job(job.kind, job.key, own_params(job.params), job.deps), alone_rt, lambda *a: None)
        assert_same_record(rt.store.read_json("evaluation", job.key, "evaluation.json"),
                           alone_rt.store.read_json("evaluation", job.key, "evaluation.json"))


def test_a_run_drops_the_resume_dirs_of_stored_jobs_and_stale_temporaries(tmp_path):
    import os
    import time

    from transferlab.engine.integrity import clean_orphans
    from transferlab.engine.store import Store

    store = Store(tmp_path / "run")
    with store.writing("evaluation", "done") as out:
        (out / "evaluation.json").write_text("{}")
    for key in ("done", "open"):
        store.resume_dir(key).mkdir(parents=True)
        (store.resume_dir(key) / "chunk-0000.json").write_text("{}")
    stale, fresh = store.resume_dir("open") / ".state.pt.1.tmp", store.resume_dir("open") / ".state.pt.2.tmp"
    stale.write_text("x")
    fresh.write_text("x")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    clean_orphans(store)
    assert not store.resume_dir("done").exists()  # stored: its chunks are no longer needed
    assert sorted(p.name for p in store.resume_dir("open").iterdir()) == [".state.pt.2.tmp", "chunk-0000.json"]
