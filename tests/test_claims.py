"""Job claims: two workers never run one job, and a dead worker's claim does not block it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.workers import assert_each_job_ran_once, run_workers
from transferlab.engine import claims


def write_claim(directory: Path, key: str, pid: int, host: str | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / key
    path.write_text(json.dumps({"host": host or socket.gethostname(), "pid": pid}))
    return path


def test_a_claim_is_exclusive_until_released(tmp_path):
    first = claims.take(tmp_path, "job")
    assert first is not None and json.loads(first.read_text())["pid"] == os.getpid()
    assert claims.take(tmp_path, "job") is None, "this process holds it and is alive"
    claims.release(first)
    assert claims.take(tmp_path, "job") is not None


def test_a_live_worker_keeps_its_claim_and_a_dead_one_loses_it(tmp_path):
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_claim(tmp_path, "held", worker.pid)
        assert claims.take(tmp_path, "held") is None
    finally:
        worker.kill()
        worker.wait()
    assert claims.take(tmp_path, "held") is not None, "the holder is gone: its claim is stale"


def test_a_claim_from_another_host_counts_as_held(tmp_path):
    write_claim(tmp_path, "remote", pid=1, host="some-other-machine")
    assert claims.take(tmp_path, "remote") is None


SPEC = """\
name: two-workers
models: [smollm2-135m]
tasks: [cities, larger_than]
learners:
  - {{name: lora, type: lora, rank: 4, steps: 2, batch_size: 4, learning_rate: 1.0e-3}}
budgets: {{train_examples: 8, eval_examples: 8}}
similarity: []
bootstrap: 100
output: {output}
"""


@pytest.mark.integration
def test_two_workers_on_one_spec_run_each_job_once(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(output=tmp_path / "run"))
    total = 2 + 2 + 4  # 2 trainings, 2 base evaluations, 2 x 2 adapter evaluations
    assert_each_job_ran_once(run_workers(spec), total, tmp_path / "run" / "artifacts" / "claims")
