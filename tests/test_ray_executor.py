"""The Ray executor: a real two-node Ray cluster gives the local executor's results, a killed worker
costs one retried job, a machine without Ray gets one line; and the parts that need no cluster
(the `executor:` field, the worker's store) on their own.

The cluster runs in `tests/ray_scenarios.py`, inside a network namespace that has only `lo`:
Ray binds every node to 127.0.0.1 and no traffic leaves the machine.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from transferlab.engine.executors import ExecutorConfig, Resources, choose, parse_memory, spec_executor
from transferlab.engine.jobs import Job, Runtime
from transferlab.engine.ray_worker import WorkerStore, replay
from transferlab.engine.spec import SpecError
from transferlab.engine.store import ResultRow, Store
from transferlab.errors import TransferlabError

SCENARIOS = Path(__file__).with_name("ray_scenarios.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One run of the cluster scenario (local run, Ray run with a kill, translate tasks): its record."""
    out = tmp_path_factory.mktemp("ray-cluster")
    command = f"ip link set lo up && exec {sys.executable} {SCENARIOS} cluster {out}"
    proc = subprocess.run(["unshare", "-n", "sh", "-c", command], capture_output=True, text=True, env=ENV,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads((out / "cluster.json").read_text())


def test_a_two_node_cluster_gives_the_local_export_byte_for_byte(cluster):
    assert cluster["ray_csv"] == cluster["local_csv"]
    assert len(cluster["local_csv"].splitlines()) > 100, "the export holds the whole study's rows"
    nodes = set(re.findall(r"node\s+([0-9a-f]{8})", cluster["console"]))
    assert len(nodes) == 2, f"jobs ran on both nodes: {nodes}"
    assert len(re.findall(r"(?m)^done train", cluster["console"])) == 3
    assert all(j["status"] == "done" for j in cluster["jobs"]) and len(cluster["jobs"]) == 15
    assert not cluster["claims_left"], "every claim is released"


def test_a_killed_worker_costs_one_retried_job_and_nothing_finished_runs_again(cluster):
    kill, after = cluster["kill"], cluster["after"]
    assert kill.get("killed"), "the watcher killed a training in flight"
    retried = [j["key"] for j in cluster["jobs"] if "retr" in j["detail"]]
    assert retried == [kill["killed"]], "only the killed job ran again"
    assert next(j for j in cluster["jobs"] if j["key"] == kill["killed"])["detail"].endswith("(after 1 retry)")
    assert kill["before"], "some jobs had finished when the worker died"
    assert {k: after[k] for k in kill["before"]} == kill["before"], "no finished artifact was made again"
    assert after[f"adapter/{kill['killed']}"] > kill["at"], "the killed training was made by its retry"
    assert not cluster["temporaries_left"], "what the dead worker half wrote is removed"
    assert len(after) == 15 and len(re.findall(r"(?m)^done ", cluster["console"])) == 15
    assert cluster["console"].count("retrying") == 1 and "its worker died" in cluster["console"]


def test_jobs_that_name_no_model_are_ray_tasks_and_fail_and_skip_as_locally(cluster):
    local, ray = cluster["translations"]["local"], cluster["translations"]["ray"]
    assert local["done"] == ray["done"] == ["ridge"] and local["files"] == ray["files"]
    assert local["failed"] == ray["failed"] and "needs at least 3 anchor pairs" in ray["failed"]["too-few"]
    assert local["skipped"] == ray["skipped"] == {"after-failed": "depends on failed job too-few"}
    assert local["jobs"] == ray["jobs"] == {"ridge": "done", "too-few": "failed", "after-failed": "skipped"}
    assert re.search(r"done translate global_ridge for task7 \(\d+ s, task pid \d+", cluster["translate_console"])
    assert "retrying" not in cluster["translate_console"], "an error that is not transient is not retried"


def test_a_job_no_node_can_hold_is_refused_before_anything_runs(cluster):
    assert cluster["infeasible"] == ("executor.resources.translate asks for 1 CPU, 1 GPU, which no node of the Ray "
                                     "cluster has (largest: CPU 1): lower it or add a node that has it")
    assert set(cluster["gpu_run_made"]) <= {"results.sqlite", "artifacts", "artifacts/claims"}, "no job ran, no claim left"


def test_missing_ray_is_one_line_naming_the_install_command(tmp_path):
    proc = subprocess.run([sys.executable, str(SCENARIOS), "no-ray", str(tmp_path)], capture_output=True, text=True,
                          env=ENV, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert lines == ["error: the ray executor (--executor ray) needs the package 'ray', which is not installed: "
                     "run `pip install 'transferlab[cluster]'`"]
    assert not (tmp_path / "run").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]


# ---- without a cluster -----------------------------------------------------------------------------
def write_spec(tmp_path: Path, executor: str, name: str = "spec.yaml") -> Path:
    spec = tmp_path / name
    spec.write_text(f"models: [smollm2-135m]\ntasks: [cities]\n{executor}\n")
    return spec


def test_the_executor_field_is_read_with_its_resources(tmp_path):
    spec = write_spec(tmp_path, "executor:\n  kind: ray\n  address: head.example:6379\n  max_retries: 3\n"
                                "  transient: [ConnectionError]\n  resources:\n    default: {num_cpus: 2}\n"
                                "    train: {num_gpus: 1, memory: 8GiB}")
    config = spec_executor(spec)
    assert (config.kind, config.address, config.max_retries, config.transient) == (
        "ray", "head.example:6379", 3, ("ConnectionError",))
    assert config.resources_for("train") == Resources(num_cpus=1, num_gpus=1, memory=8 * 2**30)
    assert config.resources_for("evaluate") == Resources(num_cpus=2)
    assert config.where["train"].endswith("spec.yaml:10")
    assert spec_executor(write_spec(tmp_path, "executor: ray")).kind == "ray"
    assert spec_executor(write_spec(tmp_path, "")) == ExecutorConfig()


@pytest.mark.parametrize(("field", "message"), [
    ("executor: {kind: rey}", r"spec.yaml:3: executor.kind: kind must be one of local, ray, got 'rey': did you mean"),
    ("executor: {kind: ray, retries: 2}",
     r"spec.yaml:3: executor.retries: unknown field 'retries': did you mean 'max_retries'"),
    ("executor: {kind: ray, address: 'http://head'}", r"executor.address: address must be auto, HOST:PORT"),
    ("executor: {resources: {train: {num_gpus: -1}}}", r"executor.resources.train.num_gpus: num_gpus must be a "
                                                       r"number in \[0, 1024\], got -1"),
    ("executor: {resources: {train: {memory: lots}}}", r"executor.resources.train.memory: memory must be a number "
                                                       r"of bytes or a size such as 8GiB"),
    ("executor: {resources: {train: 2}}", r"executor.resources.train: expected a mapping"),
    ("executor: {max_retries: 1.5}", r"executor.max_retries: max_retries must be an integer in \[0, 100\]"),
])
def test_a_bad_executor_field_is_an_error_at_its_line(tmp_path, field, message):
    with pytest.raises(SpecError, match=message):
        spec_executor(write_spec(tmp_path, field))


def test_every_study_accepts_the_executor_field(tmp_path):
    from transferlab.transfer.spec import parse_spec

    text = "models: [smollm2-135m]\ntasks: [cities]\nexecutor: {kind: ray}\n"
    assert parse_spec(text, str(tmp_path / "s.yaml")).models == ("smollm2-135m",)


def test_the_command_line_wins_over_the_spec(tmp_path):
    spec = write_spec(tmp_path, "executor: {kind: ray, address: auto, max_retries: 4}")
    assert choose(spec, "local", None).kind == "local"
    joined = choose(write_spec(tmp_path, "", "plain.yaml"), None, "10.0.0.1:6379")
    assert (joined.kind, joined.address) == ("ray", "10.0.0.1:6379"), "--address means the ray executor"
    assert choose(spec, None, None).max_retries == 4
    with pytest.raises(TransferlabError, match="--address names a Ray cluster: use it with --executor ray"):
        choose(spec, "local", "auto")
    with pytest.raises(TransferlabError, match="--executor must be one of local, ray, got 'rey'"):
        choose(spec, "rey", None)


def test_memory_sizes():
    assert parse_memory("8GiB") == parse_memory("8G") == 8 * 2**30
    assert parse_memory("512MB") == 512 * 10**6 and parse_memory(1024) == 1024
    for bad in ("-1GB", "8 parsecs", True, -5):
        with pytest.raises(TransferlabError):
            parse_memory(bad)


def test_resources_for_an_unknown_job_kind_fail_before_anything_runs(tmp_path):
    from transferlab.engine.ray_executor import RayExecutor

    config = ExecutorConfig(kind="ray", resources={"trian": Resources()}, where={"trian": "spec.yaml:7"})
    job = Job("train", "k", {"model": "m"})
    with pytest.raises(TransferlabError, match=r"spec.yaml:7: executor.resources.trian: not a job kind: did you mean "
                                               r"'train'"):
        RayExecutor(config).run([job], Runtime(Store(tmp_path / "run")))
    assert not (tmp_path / "run" / "artifacts").exists()


def test_only_errors_declared_transient_are_retried(tmp_path):
    from transferlab.engine.execute import attempt
    from transferlab.engine.ray_executor import is_transient

    job = Job("evaluate", "k", {"model": "m", "task": "no-such-task", "split": "test", "eval_examples": 1})
    outcome = attempt(job, Runtime(Store(tmp_path)), lambda *a: None)
    assert not outcome.ok and outcome.summary.startswith("unknown ")  # its task or model: a user error
    assert "TransferlabError" in outcome.error_types and "transferlab.errors.TransferlabError" in outcome.error_types
    assert not is_transient(outcome, ()) and not is_transient(outcome, ("ConnectionError",))
    assert is_transient(outcome, ("transferlab.errors.TransferlabError",))
    assert is_transient(dataclasses.replace(outcome, transient=True), ())


def test_a_worker_store_journals_rows_for_the_driver_and_never_opens_the_database(tmp_path):
    root = tmp_path / "run"
    worker = WorkerStore(root, root / "artifacts")
    row = ResultRow("m", "lora", "a", "b", "transfer", 0, "acc", 0.5, 10, 0.4, 0.6)
    assert worker.add_results(iter([row])) == 1
    worker.set_labels({"a": "math"})
    with worker.writing("evaluation", "k") as out:  # artifacts are written as the driver would
        (out / "evaluation.json").write_text("{}")
    assert worker.has("evaluation", "k") and not (root / "results.sqlite").exists()
    with pytest.raises(TransferlabError, match="only the driver opens"):
        worker.results()
    driver = Store(root)
    replay(worker.journal, driver)
    assert driver.results().value.tolist() == [0.5] and driver.labels() == {"a": "math"}
    with pytest.raises(TransferlabError, match="unknown database write"):
        replay([("record_job", ("k",))], driver)
