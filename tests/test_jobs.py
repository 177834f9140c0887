"""Train jobs dispatch on the learner's method: SFT LoRA or GRPO, same adapter format either way."""

from __future__ import annotations

import json

import pytest
import torch
from tiny_models import TinyLoaded
from test_rl import Digits

from transferlab.errors import TransferlabError
from transferlab.engine.adapter_jobs import run_train
from transferlab.engine.jobs import Job, Runtime
from transferlab.engine.store import Store
from transferlab.tasks.registry import TASKS


@pytest.fixture
def runtime(tmp_path, monkeypatch):
    monkeypatch.setitem(TASKS._factories, "toy-digits", Digits)
    rt = Runtime(Store(tmp_path))
    rt.loaded["tiny"] = TinyLoaded()
    torch.set_num_threads(1)
    return rt


def _job(key: str, method: str, **train) -> Job:
    return Job("train", key, {"model": "tiny", "task": "toy-digits", "train_examples": 16, "learner": method,
                              "train": {"method": method, "steps": 1, "learning_rate": 1e-2, **train}})


def test_grpo_and_lora_jobs_write_the_same_adapter_format(runtime):
    ticks = []
    rl = run_train(_job("rl", "grpo", prompts_per_step=2, group_size=4), runtime, lambda *a: ticks.append(a))
    sft = run_train(_job("sft", "lora", batch_size=4), runtime, lambda *a: None)
    assert "final_reward" in rl and "zero_variance_share" in rl and "final_reward" not in sft
    assert ticks and "reward" in ticks[-1][2]
    for key in ("rl", "sft"):
        where = runtime.store.path("adapter", key)
        assert runtime.store.has("adapter", key) and (where / "adapter_config.json").exists()
        assert json.loads((where / "training.json").read_text())["steps"] == 1


def test_unknown_methods_are_clear_errors_and_write_nothing(runtime):
    with pytest.raises(TransferlabError, match="unknown training method 'ppo'"):
        run_train(_job("p", "ppo"), runtime, lambda *a: None)
    assert not runtime.store.has("adapter", "p")
