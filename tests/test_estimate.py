"""The plan's time estimate: proportional to the work, calibrated by finished jobs."""

from __future__ import annotations

import pytest

from transferlab.engine.estimate import estimate_plan, job_work, model_parameters
from transferlab.engine.jobs import Job
from transferlab.engine.store import Store


def _train(key: str, steps: int, model: str = "smollm2-135m") -> Job:
    return Job("train", key, {"model": model, "task": "cities", "train_examples": 64,
                              "train": {"steps": steps, "batch_size": 8, "max_seq_len": 256}})


def _evaluate(key: str, task: str, n: int) -> Job:
    return Job("evaluate", key, {"model": "smollm2-135m", "task": task, "split": "test", "eval_examples": n,
                                 "max_new_tokens": 64, "batch_size": 16})


def test_work_grows_with_steps_examples_and_model_size():
    assert job_work(_train("a", 40)) == pytest.approx(2 * job_work(_train("b", 20)))
    assert job_work(_evaluate("c", "cities", 100)) > job_work(_evaluate("d", "cities", 10))
    assert job_work(_evaluate("e", "gsm8k", 16)) > job_work(_evaluate("f", "cities", 16))  # decoding costs more
    assert model_parameters("gemma3-270m") == 2 * model_parameters("smollm2-135m")
    assert estimate_plan([_train("g", 10, "gemma3-270m")]).seconds == pytest.approx(
        2 * estimate_plan([_train("h", 10)]).seconds)


def test_finished_jobs_calibrate_the_rest_and_are_not_counted(tmp_path):
    jobs = [_train("t1", 10), _train("t2", 10)]
    store = Store(tmp_path)
    default = estimate_plan(jobs, store)
    assert default.source == "default CPU rates"
    store.record_job("t1", "train", "done", seconds=3 * job_work(jobs[0]))  # really 3x slower than the default
    calibrated = estimate_plan(jobs, store)
    assert "1 finished jobs" in calibrated.source
    assert calibrated.seconds == pytest.approx(3 * job_work(jobs[1]))
    assert "min" in calibrated.describe() and "rough" in calibrated.describe()
