"""Resumable training: a run killed part-way and restarted ends with the adapter, losses, rewards
and learning curve of a run that was never stopped, and does not repeat the updates it had done."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from test_rl import Digits
from tiny_models import TinyLoaded
from toy_tasks import Comparison
from transferlab.learn.grpo import GRPOConfig, train_grpo
from transferlab.learn.resume import STATE, Checkpoints
from transferlab.learn.sft import TrainConfig, train_lora

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.filterwarnings("ignore::FutureWarning")]


class Killed(Exception):
    """Stands in for the kill at the end of a session."""


def killed_at(step_to_die: int, seen: list[int]):
    def progress(step: int, _value: float) -> None:
        seen.append(step)
        if step == step_to_die:
            raise Killed
    return progress


def weights(directory) -> dict[str, torch.Tensor]:
    return load_file(str(directory / "adapter_model.safetensors"))


def interrupted_then_resumed(train, task, config, tmp_path, die_at: int) -> tuple[object, list[int]]:
    """Train until `die_at` updates, killed there; then again from the checkpoints, on a fresh model."""
    checkpoints = tmp_path / "resume"
    with pytest.raises(Killed):
        train(TinyLoaded(), task, task.examples("train"), config, tmp_path / "killed",
              progress=killed_at(die_at, []), resume=Checkpoints(checkpoints, every_seconds=0))
    assert (checkpoints / STATE).is_file()
    seen: list[int] = []
    resume = Checkpoints(checkpoints, every_seconds=0)
    result = train(TinyLoaded(), task, task.examples("train"), config, tmp_path / "resumed",
                   progress=killed_at(-1, seen), resume=resume)
    assert resume.resumed_at == die_at - 1  # the kill came before the checkpoint of its own step
    return result, seen


def test_a_killed_sft_run_resumes_to_the_same_adapter_and_curve(tmp_path):
    task = Comparison()
    config = TrainConfig(steps=8, batch_size=4, learning_rate=5e-3, dropout=0.1, seed=3, eval_every=3,
                         eval_examples=8)  # dropout draws from the global generator: it must be restored
    whole = train_lora(TinyLoaded(), task, task.examples("train"), config, tmp_path / "whole")
    resumed, seen = interrupted_then_resumed(train_lora, task, config, tmp_path, die_at=5)
    assert seen == [5, 6, 7, 8]  # steps 1-4 came from the checkpoint
    assert resumed.losses == whole.losses and resumed.tokens == whole.tokens
    assert resumed.processed_tokens == whole.processed_tokens
    assert resumed.curve["points"] == whole.curve["points"]  # those before the kill kept, not re-scored
    a, b = weights(tmp_path / "whole"), weights(tmp_path / "resumed")
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_a_killed_grpo_run_resumes_with_the_same_samples_and_adapter(tmp_path):
    task = Digits()
    config = GRPOConfig(steps=5, prompts_per_step=4, group_size=4, learning_rate=5e-2, kl_coef=0.05, seed=0)
    whole = train_grpo(TinyLoaded(), task, task.examples("train"), config, tmp_path / "whole")
    resumed, seen = interrupted_then_resumed(train_grpo, task, config, tmp_path, die_at=3)
    assert seen == [3, 4, 5]
    assert resumed.rewards == whole.rewards  # the sampler's generator was restored: the same completions
    assert resumed.losses == whole.losses and resumed.details["kl"] == whole.details["kl"]
    assert resumed.zero_variance_share == whole.zero_variance_share
    a, b = weights(tmp_path / "whole"), weights(tmp_path / "resumed")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_checkpoint_of_another_schedule_is_not_continued(tmp_path):
    task = Comparison()
    short = TrainConfig(steps=4, batch_size=4, learning_rate=5e-3, seed=0)
    with pytest.raises(Killed):
        train_lora(TinyLoaded(), task, task.examples("train"), short, tmp_path / "a", progress=killed_at(3, []),
                   resume=Checkpoints(tmp_path / "resume", every_seconds=0))
    longer = TrainConfig(steps=6, batch_size=4, learning_rate=5e-3, seed=0)
    seen: list[int] = []
    resume = Checkpoints(tmp_path / "resume", every_seconds=0)
    train_lora(TinyLoaded(), task, task.examples("train"), longer, tmp_path / "b", progress=killed_at(-1, seen),
               resume=resume)
    assert resume.resumed_at == 0 and seen == [1, 2, 3, 4, 5, 6]


def test_a_checkpoint_of_another_adapter_shape_is_removed_and_training_starts_over(tmp_path):
    task = Comparison()
    with pytest.raises(Killed):
        train_lora(TinyLoaded(), task, task.examples("train"), TrainConfig(steps=4, batch_size=4, rank=4, seed=0),
                   tmp_path / "a", progress=killed_at(3, []), resume=Checkpoints(tmp_path / "resume", every_seconds=0))
    resume = Checkpoints(tmp_path / "resume", every_seconds=0)
    result = train_lora(TinyLoaded(), task, task.examples("train"), TrainConfig(steps=4, batch_size=4, rank=8, seed=0),
                        tmp_path / "b", resume=resume)
    assert resume.resumed_at == 0 and len(result.losses) == 4


def test_a_damaged_checkpoint_means_a_fresh_start(tmp_path):
    (tmp_path / "resume").mkdir()
    (tmp_path / "resume" / STATE).write_bytes(b"not a checkpoint")
    task = Comparison()
    resume = Checkpoints(tmp_path / "resume", every_seconds=0)
    result = train_lora(TinyLoaded(), task, task.examples("train"), TrainConfig(steps=3, batch_size=4, seed=0),
                        tmp_path / "a", resume=resume)
    assert resume.resumed_at == 0 and len(result.losses) == 3


def test_the_training_job_continues_from_its_checkpoint_and_then_removes_it(tmp_path, monkeypatch):
    """Engine level: a train job killed mid-way leaves its checkpoint in the store; the next run of the
    same job resumes from it, records where, and removes it once the adapter is stored."""
    from transferlab.engine.adapter_jobs import run_train
    from transferlab.engine.jobs import Job, Runtime
    from transferlab.engine.store import Store
    from transferlab.learn import resume as resume_module
    import transferlab.tasks

    task = Comparison()
    monkeypatch.setattr(transferlab.tasks, "get_task", lambda name: task)
    monkeypatch.setattr(resume_module, "EVERY_SECONDS", 0.0)
    store = Store(tmp_path / "run")
    runtime = Runtime(store)
    runtime.loaded["tiny"] = TinyLoaded()
    params = {"model": "tiny", "task": task.name, "train_examples": 0,
              "train": {"method": "lora", "steps": 6, "batch_size": 4, "learning_rate": 5e-3, "seed": 0}}
    job = Job(key="k1", kind="train", params=params)

    def die(step, total, note):
        if step == 4:
            raise Killed
    with pytest.raises(Killed):
        run_train(job, runtime, die)
    assert (store.resume_dir("k1") / STATE).is_file() and not store.has("adapter", "k1")
    summary = run_train(job, runtime, lambda *a: None)
    assert summary["resumed_at_step"] == 3
    assert json.loads((store.path("adapter", "k1") / "training.json").read_text())["resumed_at_step"] == 3
    assert not store.resume_dir("k1").exists()
