"""Optional experiment tracking (`engine.tracking`): a run's curves, job outcomes and results
table in a real local MLflow store on SQLite and in W&B's offline files; nothing without the
spec field, and a spec error at its line."""

from __future__ import annotations

import json
import struct
import sys

import pandas as pd
import pytest

from transferlab.engine.curves import read_curves, record_curves
from transferlab.engine.jobs import Job
from transferlab.engine.spec import Located, SpecError
from transferlab.engine.store import ResultRow, Store
from transferlab.errors import TransferlabError
from transferlab.engine.tracking import MlflowTarget, Tracking, WandbTarget, log_run, metric_name, parse_tracking

CURVE = [{"step": 0, "tokens_seen": 0, "train_loss": 2.0, "dev_score": 0.40},
         {"step": 5, "tokens_seen": 640, "train_loss": 1.2, "dev_score": 0.55},
         {"step": 10, "tokens_seen": 1280, "train_loss": 0.7, "dev_score": 0.70}]


def finished_run(root) -> Store:
    """A store as a run leaves it: a trained adapter with a curve, job records, results."""
    store = Store(root)
    job = Job("train", "k1", {"model": "smollm2-135m", "task": "cities", "learner": "lora", "train": {"seed": 0}})
    with store.writing("adapter", "k1") as tmp:
        (tmp / "training.json").write_text(json.dumps({"curve": {"metric": "acc", "points": CURVE}}))
    assert record_curves(store, [job]) == 3
    store.record_job("k1", "train", "done", seconds=12.0)
    store.record_job("k2", "evaluate", "done", seconds=3.0)
    store.record_job("k3", "evaluate", "failed", detail="CUDA out of memory", seconds=1.0)
    store.add_results([ResultRow("smollm2-135m", "-", "-", "cities", "baseline", 0, "acc", 0.5, 100, 0.4, 0.6),
                       ResultRow("smollm2-135m", "lora", "cities", "cities", "direct", 0, "gain:acc", 0.2, 100, 0.1, 0.3),
                       ResultRow("smollm2-135m", "lora", "cities", "cities", "direct", 0, "relative:acc", float("nan"), 100)])
    return store


def spec(text: str):
    data = __import__("yaml").safe_load(text)
    return parse_tracking(data.get("tracking"), Located("spec.yaml", text))


def test_the_spec_field_is_checked_at_its_line():
    assert spec("name: x\n") is None
    tracking = spec("name: x\ntracking:\n  mlflow: {uri: 'sqlite:///m.db'}\n  wandb: {mode: offline, project: p}\n")
    assert tracking == Tracking(MlflowTarget("sqlite:///m.db"), WandbTarget("offline", "p"))
    with pytest.raises(SpecError, match=r"spec.yaml:3: tracking.mlfow: unknown field 'mlfow': did you mean 'mlflow'"):
        spec("name: x\ntracking:\n  mlfow: {uri: x}\n")
    with pytest.raises(SpecError, match=r"spec.yaml:3: tracking.wandb.mode: unknown mode 'cloud'"):
        spec("name: x\ntracking:\n  wandb: {mode: cloud}\n")
    with pytest.raises(SpecError, match="needs uri"):
        spec("name: x\ntracking:\n  mlflow: {experiment: e}\n")


def test_nothing_is_logged_unless_asked(tmp_path, monkeypatch):
    store = finished_run(tmp_path / "run")
    for name in ("mlflow", "mlflow.entities", "mlflow.tracking", "wandb"):
        monkeypatch.setitem(sys.modules, name, None)  # any import of them would fail
    assert log_run(store, None, "run") == [] and log_run(store, Tracking(), "run") == []
    with pytest.raises(TransferlabError, match=r"needs the package 'mlflow-skinny'.*pip install 'transferlab\[tracking\]'"):
        log_run(store, Tracking(mlflow=MlflowTarget(f"sqlite:///{tmp_path / 'm.db'}")), "run")
    assert not (tmp_path / "m.db").exists()
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["artifacts", "results.sqlite"]


def test_mlflow_sqlite_store_holds_curves_jobs_and_results(tmp_path):
    from mlflow.tracking import MlflowClient

    store = finished_run(tmp_path / "run")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    where = log_run(store, Tracking(mlflow=MlflowTarget(uri, "transferlab")), "cities run", {"spec": "x.yaml"})
    assert where[0].startswith("mlflow run ")
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("transferlab").experiment_id])
    assert run.info.run_name == "cities run" and run.info.status == "FAILED"  # a job failed
    assert run.data.params == {"spec": "x.yaml"}
    key = metric_name("curve", "smollm2-135m", "lora", "cities", "seed0", "train_loss")
    history = client.get_metric_history(run.info.run_id, key)
    assert [(m.step, m.value) for m in history] == [(p["step"], p["train_loss"]) for p in CURVE]
    assert run.data.metrics["jobs/done"] == 2 and run.data.metrics["jobs/failed"] == 1
    assert run.data.metrics["results/smollm2-135m/lora/cities/cities/direct/seed0/gain_acc"] == 0.2
    folder = client.download_artifacts(run.info.run_id, "", str(tmp_path / "down"))
    jobs = json.loads(open(f"{folder}/jobs.json").read())
    assert [j["status"] for j in jobs] == ["done", "done", "failed"]
    logged = pd.read_csv(f"{folder}/results.csv")
    pd.testing.assert_frame_equal(logged, store.results(), check_dtype=False)
    assert (tmp_path / "mlflow.db-artifacts").is_dir()  # artifacts beside the SQLite file, not in the cwd


def wandb_records(path):
    """The records of a W&B offline run file (`run-<id>.wandb`): a LevelDB-style log of
    32 KiB blocks after a 7-byte header, each record a CRC, length and type, then a Record proto."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:7] == b":W&B" + struct.pack("<HB", 0xBEE1, 0)
    pos, part, records = 7, b"", []
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:
            pos += 32768 - pos % 32768  # the block's tail is padding
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        part, pos = part + data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = pb.Record()
            record.ParseFromString(part)
            records.append(record)
            part = b""
    return records


def nested(items) -> dict:
    """History or summary items as the dict that was logged (a table's fields are nested keys)."""
    out: dict = {}
    for item in items:
        keys = list(item.nested_key) or [item.key]
        target = out
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        target[keys[-1]] = json.loads(item.value_json)
    return out


def test_wandb_offline_files_hold_curves_jobs_and_results(tmp_path, monkeypatch):
    for name in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "XDG_CACHE_HOME"):
        monkeypatch.setenv(name, str(tmp_path / "home" / name))  # nothing written outside tmp_path
    monkeypatch.setenv("WANDB_SILENT", "true")
    store = finished_run(tmp_path / "run")
    where = log_run(store, Tracking(wandb=WandbTarget("offline", "transferlab", str(tmp_path / "wb"))), "cities run")
    assert "(offline)" in where[0]
    (run_file,) = (tmp_path / "wb" / "wandb").glob("offline-run-*/run-*.wandb")
    records = wandb_records(run_file)
    history = [nested(r.history.item) for r in records if r.WhichOneof("record_type") == "history"]
    key = metric_name("curve", "smollm2-135m", "lora", "cities", "seed0", "train_loss")
    steps = key.rsplit("/", 1)[0] + "/step"
    seen = [(h[steps], h[key]) for h in history if key in h]
    assert seen == [(p["step"], p["train_loss"]) for p in CURVE], (  # what the file held, if it is not that
        f"records {[r.WhichOneof('record_type') for r in records]}; history keys {[sorted(h) for h in history]}")
    summary: dict = {}
    for r in records:
        if r.WhichOneof("record_type") == "summary":
            summary.update(nested(r.summary.update))
    assert summary["jobs/failed"] == 1 and summary["jobs/done"] == 2
    tables = {h["results"]["path"] for h in history if "results" in h}
    (table,) = [json.loads((run_file.parent / "files" / t).read_text()) for t in tables]
    logged = pd.DataFrame(table["data"], columns=table["columns"])
    assert len(logged) == 3 and set(logged.metric) == {"acc", "gain:acc", "relative:acc"}
    exit_code = [r.exit.exit_code for r in records if r.WhichOneof("record_type") == "exit"]
    assert exit_code == [1]  # a job failed
    assert read_curves(store).shape[0] == 3  # the store itself is untouched


def test_transfer_and_translation_specs_take_the_tracking_field(tmp_path):
    from transferlab.transfer.spec import parse_spec

    spec = parse_spec(f"name: t\nmodels: [smollm2-135m]\ntasks: [cities]\n"
                      f"tracking: {{wandb: {{mode: offline, dir: {tmp_path}}}}}\n", "t.yaml")
    assert isinstance(spec.tracking, Tracking) and spec.tracking.wandb is not None and spec.tracking.mlflow is None
    assert parse_spec("name: t\nmodels: [smollm2-135m]\ntasks: [cities]\n", "t.yaml").tracking is None
    with pytest.raises(SpecError, match=r"t.yaml:4"):
        parse_spec("name: t\nmodels: [smollm2-135m]\ntasks: [cities]\ntracking: {neptune: {}}\n", "t.yaml")
