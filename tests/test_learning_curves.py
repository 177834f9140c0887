"""Learning curves: off by default with unchanged keys, points at the right steps when on, the same
weights either way, copied into the run's store (reused adapters too) and drawn by the report."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from test_report import tidy_table
from tiny_models import TinyLoaded
from toy_tasks import Comparison, Echo
from transferlab.engine.adapter_jobs import run_train, train_key
from transferlab.engine.curves import CURVE_COLUMNS, read_curves, record_curves, trained_on_of
from transferlab.engine.jobs import Job, Runtime
from transferlab.engine.spec import SpecError
from transferlab.engine.store import Store
from transferlab.errors import TransferlabError
from transferlab.learn.curve import curve_steps
from transferlab.learn.grpo import GRPOConfig, train_grpo
from transferlab.learn.sft import TrainConfig, train_lora
from transferlab.tasks import stable_hash
from transferlab.tasks.registry import TASKS
from transferlab.transfer.report import write_report
from transferlab.transfer.spec import parse_spec

SFT = TrainConfig(steps=7, batch_size=8, learning_rate=5e-3, seed=1, dropout=0.1)  # dropout: the RNG matters


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models run faster on one thread (conftest)


def _weights(where) -> dict[str, torch.Tensor]:
    return load_file(str(where / "adapter_model.safetensors"))


# ---- keys ------------------------------------------------------------------------------------
def test_a_config_without_a_curve_keeps_the_key_it_had_before_curves_existed():
    # Hashes computed before the curve fields were added: stores and artifacts made then stay valid.
    assert stable_hash(TrainConfig().to_dict()) == "981566e553076beb"
    assert stable_hash(GRPOConfig().to_dict()) == "50c9c998054dbcc1"
    config = {**TrainConfig(steps=40, learning_rate=1e-3).to_dict(), "seed": 1, "method": "lora"}
    assert train_key("tiny-llama", "fp", config, 320) == "9e3629dd4a6732a8"
    assert "eval_every" not in TrainConfig(eval_examples=8).to_dict()  # off: eval_examples is ignored too


def test_a_config_with_a_curve_has_its_own_key_and_round_trips():
    on = TrainConfig(eval_every=5, eval_examples=16)
    assert on.to_dict()["eval_every"] == 5 and on.to_dict()["eval_examples"] == 16
    assert stable_hash(on.to_dict()) != stable_hash(TrainConfig().to_dict())
    assert TrainConfig(**on.to_dict()) == on  # what a train job rebuilds from its params
    rl = GRPOConfig(eval_every=2)
    assert GRPOConfig(**rl.to_dict()) == rl and stable_hash(rl.to_dict()) != stable_hash(GRPOConfig().to_dict())


# ---- the curve while training --------------------------------------------------------------
def test_curve_steps_are_zero_every_k_and_the_last():
    assert curve_steps(7, 3) == [0, 3, 6, 7]
    assert curve_steps(6, 3) == [0, 3, 6]
    assert curve_steps(7, 0) == [] and curve_steps(2, 10) == [0, 2]


def test_sft_records_points_at_the_right_steps_and_the_same_weights_as_without(tmp_path):
    task = Comparison()
    on = train_lora(TinyLoaded(), task, task.examples("train"), TrainConfig(**{**SFT.to_dict(), "eval_every": 3,
                                                                             "eval_examples": 12}), tmp_path / "on")
    off = train_lora(TinyLoaded(), task, task.examples("train"), SFT, tmp_path / "off")
    points = on.curve["points"]
    assert [p["step"] for p in points] == [0, 3, 6, 7]
    assert on.curve["metric"] == "acc" and all(p["n"] == 12 for p in points)
    assert points[0]["train_loss"] is None and points[0]["tokens_seen"] == 0 and points[0]["dev_change"] == 0
    assert points[-1]["tokens_seen"] == on.tokens
    assert points[1]["train_loss"] == pytest.approx(sum(on.losses[:3]) / 3)  # the mean since the last point
    assert all(p["dev_loss"] > 0 and p["dev_ci_low"] <= p["dev_score"] <= p["dev_ci_high"] for p in points)
    assert points[-1]["dev_loss"] < points[0]["dev_loss"]  # the tiny model learns the answers' tokens
    # Evaluating in between moves neither the random state nor the train/eval mode: same adapter.
    assert on.losses == off.losses
    a, b = _weights(tmp_path / "on"), _weights(tmp_path / "off")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert "curve" not in off.to_json() and on.to_json()["curve"]["points"] == points


def test_grpo_records_reward_and_dev_score_with_the_same_weights_as_without(tmp_path):
    task = Echo()
    config = GRPOConfig(steps=2, prompts_per_step=2, group_size=4, learning_rate=5e-2, seed=0)
    on = train_grpo(TinyLoaded(), task, task.examples("train"), GRPOConfig(**{**config.to_dict(), "eval_every": 1}),
                    tmp_path / "on")
    off = train_grpo(TinyLoaded(), task, task.examples("train"), config, tmp_path / "off")
    points = on.curve["points"]
    assert [p["step"] for p in points] == [0, 1, 2] and on.curve["metric"] == "exact_match"
    assert [p["train_reward"] for p in points[1:]] == on.rewards and points[0]["dev_loss"] is None
    assert on.rewards == off.rewards
    a, b = _weights(tmp_path / "on"), _weights(tmp_path / "off")
    assert all(torch.equal(a[k], b[k]) for k in a)


# ---- the store -----------------------------------------------------------------------------
@pytest.fixture
def runtime(tmp_path, monkeypatch):
    monkeypatch.setitem(TASKS._factories, "toy-compare", Comparison)
    rt = Runtime(Store(tmp_path / "run", artifacts=tmp_path / "shared"))
    rt.loaded["tiny"] = TinyLoaded()
    return rt


def _job(key: str, **train) -> Job:
    return Job("train", key, {"model": "tiny", "task": "toy-compare", "train_examples": 32, "learner": "lora",
                              "train": {"method": "lora", "steps": 4, "batch_size": 8, "learning_rate": 1e-2,
                                        "seed": 3, **train}})


def test_train_jobs_keep_the_curve_and_every_run_sharing_the_adapter_gets_it(runtime, tmp_path):
    summary = run_train(_job("on", eval_every=2, eval_examples=8), runtime, lambda *a: None)
    run_train(_job("off"), runtime, lambda *a: None)
    assert "dev_acc" in summary and "->" in summary["dev_acc"]
    training = json.loads((runtime.store.path("adapter", "on") / "training.json").read_text())
    assert [p["step"] for p in training["curve"]["points"]] == [0, 2, 4]
    jobs = [_job("on", eval_every=2, eval_examples=8), _job("off")]
    assert record_curves(runtime.store, jobs) == 3  # the adapter without a curve adds no rows
    frame = read_curves(runtime.store)
    assert list(frame.columns) == list(CURVE_COLUMNS) and list(frame["step"]) == [0, 2, 4]
    assert set(frame["trained_on"]) == {"toy-compare"} and set(frame["seed"]) == {3}
    # A second run reusing the shared adapter (no job ran in it) gets the same curve.
    other = Store(tmp_path / "other", artifacts=tmp_path / "shared")
    record_curves(other, jobs)
    assert read_curves(other).equals(frame)
    assert read_curves(Store(tmp_path / "empty")).empty


def test_paired_trainings_are_named_as_the_results_table_names_them(runtime):
    run_train(_job("first"), runtime, lambda *a: None)
    assert trained_on_of(runtime.store, {"task": "b", "joint_with": ["a"]}) == "a+b"
    assert trained_on_of(runtime.store, {"task": "b", "init_adapter": "first"}) == "toy-compare>b"


# ---- the spec ------------------------------------------------------------------------------
SPEC = """\
models: [smollm2-135m]
tasks: [cities]
learners:
  - name: lora
    type: lora
    eval_every: {value}
"""


@pytest.mark.parametrize("value", ["-1", "ten", "2.5", "true"])
def test_a_bad_eval_every_is_a_one_line_error_at_its_line(value):
    with pytest.raises(SpecError) as err:
        parse_spec(SPEC.format(value=value), "s.yaml")
    message = str(err.value)
    assert "\n" not in message and message.startswith("s.yaml:6: learners.0.eval_every: eval_every must be a "
                                                      "non-negative integer")
    with pytest.raises(TransferlabError, match="eval_examples must be a positive integer"):
        TrainConfig(eval_every=1, eval_examples=0)


def test_the_spec_passes_the_curve_fields_to_the_learner():
    spec = parse_spec(SPEC.format(value=4) + "    eval_examples: 32\n", "s.yaml")
    assert spec.learners[0].train.eval_every == 4 and spec.learners[0].train.eval_examples == 32
    off = parse_spec(SPEC.format(value=0), "s.yaml")
    assert off.learners[0].train.to_dict() == TrainConfig().to_dict()


# ---- the report ----------------------------------------------------------------------------
def curve_table_by_hand() -> pd.DataFrame:
    rows = []
    for source, rise in (("cities", 0.3), ("larger_than", 0.0)):
        for seed in (0, 1):
            for step in (0, 5, 10):
                change = rise * step / 10
                low, high = (change - 0.1, change + 0.1) if step else (0.0, 0.0)
                rows.append(("m", "lora", source, seed, step, step * 100, None if step == 0 else 2.0 - step / 10,
                             None, 2.2 - step / 20, "acc", 0.5 + change, 0.4 + change, 0.6 + change, change, low,
                             high, 32))
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def test_the_report_draws_the_curves_and_the_first_and_last_dev_scores(tmp_path):
    written = {p.name for p in write_report(tidy_table(), tmp_path, "curves", curves=curve_table_by_hand())}
    assert "m_lora_curve.png" in written and (tmp_path / "m_lora_curve.png").stat().st_size > 10_000
    summary = (tmp_path / "summary.md").read_text()
    section = summary.split("## Learning curves")[1].split("\n## ")[0]
    assert summary.index("## Learning curves") < summary.index("## m — learner")  # read before the matrices
    assert "| cities | 1 | acc (32) | 1.500 → 1.000 | 0.500 (step 0) | 0.800 (step 10) | +0.300 [+0.200, +0.400]* |" \
        in section
    assert "| larger_than | 0 | acc (32) |" in section and "+0.000 [-0.100, +0.100] |" in section
    assert "moved significantly" in section and "in 2 of 4 runs" in section


def test_a_report_without_curves_says_how_to_record_them(tmp_path):
    write_report(tidy_table(), tmp_path, "no curves")
    section = (tmp_path / "summary.md").read_text().split("## Learning curves")[1].split("\n## ")[0]
    assert "set `eval_every: K` on a learner" in section and not (tmp_path / "m_lora_curve.png").exists()
