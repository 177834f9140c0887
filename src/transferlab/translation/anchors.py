"""Anchor adapters: one LoRA per (model, anchor task), trained once with the same recipe on
model X and model Y, stored in the content-addressed store and reused by every experiment.

Training goes through the existing job machinery (the `train` job kind of `engine.adapter_jobs`, run
by the engine's executor). An anchor's key is a hash of the model identity, the task's fingerprint,
the recipe and the number of training examples, so every experiment, and every later run
with the same output directory, reuses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from transferlab.errors import TransferlabError
from transferlab.engine import adapter_jobs
from transferlab.engine.jobs import Job
from transferlab.engine.store import Store
from transferlab.learn.sft import TrainConfig
from transferlab.translation.features import LoraAdapter, load_adapter


@dataclass(frozen=True)
class Anchor:
    """The adapter of one task on one model: where it is in the store and how it was made."""

    model: str
    task: str
    key: str
    job: Job


def train_settings(config: TrainConfig) -> dict:
    """The anchor recipe as a transfer study's LoRA learner states it (`transfer.plan`), so an
    anchor and a transfer study's adapter made the same way are one artifact under shared
    `artifacts:`."""
    return {**config.to_dict(), "method": "lora"}


def train_key(identity: str, task_fingerprint: str, config: TrainConfig, train_examples: int) -> str:
    """The store key of an anchor adapter: everything that determines it."""
    return adapter_jobs.train_key(identity, task_fingerprint, train_settings(config), train_examples)


def anchor_set(model: str, identity: str, tasks: Sequence[str], fingerprints: dict[str, str], config: TrainConfig,
               train_examples: int) -> dict[str, Anchor]:
    """An anchor (and the job that trains it) for each task on one model."""
    out = {}
    for task in tasks:
        key = train_key(identity, fingerprints[task], config, train_examples)
        job = Job("train", key, {"model": model, "task": task, "train": train_settings(config), "learner": "anchor",
                                 "train_examples": train_examples},
                  label=f"train anchor {task} on {model}")
        out[task] = Anchor(model, task, key, job)
    return out


def load_anchors(store: Store, anchors: Sequence[Anchor], base_model: str) -> list[LoraAdapter]:
    """The stored adapters of trained anchors, named by their task (errors say which is missing)."""
    out = []
    for anchor in anchors:
        if not store.has("adapter", anchor.key):
            raise TransferlabError(f"anchor adapter {anchor.task} on {anchor.model} is not trained yet "
                                   f"(store key {anchor.key}): its training job failed or did not run")
        out.append(load_adapter(store.path("adapter", anchor.key), name=anchor.task, expect_base=base_model))
    return out
