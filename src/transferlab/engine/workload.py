"""How much data a task has and how long its examples are, for plans and estimates.

An offline task is loaded and measured (seconds, from files in installed packages). A hub
task (`tasks.hub`: it has `hub_id` and `split_sizes`) is never loaded for this: a dry run must
work before its data is downloaded. Its split sizes are the published ones, and its example
lengths come from `TOKEN_FIGURES`: measured on the offline twin where one exists (gsm8k,
humaneval, mmlu, ifeval share their data with the hub tasks), else typical lengths of the
published dataset plus our prompt framing. Lengths are in characters; tokens are characters / 4
plus 20 for the chat template, the same rule for both kinds.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from transferlab.tasks import get_task

CHARS_PER_TOKEN = 4.0
TEMPLATE_TOKENS = 20  # the chat template around a prompt


@dataclass(frozen=True)
class Lengths:
    """Mean characters of an example's prompt, its reference answer, and all its choices together."""

    prompt: float
    target: float
    choices: float = 0.0


# Hub task name (or prefix, for `hub-mmlu-<subject>`) -> mean lengths. Offline twins measured with
# `get_task(name).all_examples()`: gsm8k 419/252, humaneval 596/643, mmlu 574/43/168, ifeval 211/0,
# alpaca_gpt4 165/2049. The rest: the published datasets' typical lengths, framed like the twins.
TOKEN_FIGURES: dict[str, Lengths] = {
    "hub-gsm8k": Lengths(419, 252),
    "hub-math500": Lengths(370, 550),
    "hub-math": Lengths(370, 550),
    "hub-mbpp": Lengths(480, 200),
    "hub-humaneval": Lengths(596, 643),
    "hub-arc_easy": Lengths(300, 25, 100),
    "hub-arc_challenge": Lengths(340, 30, 120),
    "hub-openbookqa": Lengths(240, 25, 100),
    "hub-commonsense_qa": Lengths(200, 10, 50),
    "hub-sciq": Lengths(200, 12, 48),
    "hub-piqa": Lengths(320, 100, 200),
    "hub-boolq": Lengths(690, 3, 5),
    "hub-mmlu": Lengths(574, 43, 168),
    "hub-ifeval": Lengths(211, 0),
    "hub-ifeval:train": Lengths(400, 1500),  # its train source: instruction-following SFT conversations
}
DEFAULT_FIGURES = {"generate": Lengths(300, 300), "multiple_choice": Lengths(300, 20, 80),
                   "instruction": Lengths(165, 2049)}  # an instruction-tuning source: alpaca_gpt4's lengths
# Our split names -> the names hub datasets publish them under, in order of preference.
SPLIT_NAMES = {"train": ("train", "auxiliary_train"), "dev": ("dev", "validation", "val"),
               "test": ("test", "validation")}


def is_hub_task(task: Any) -> bool:
    """A task whose data comes from the Hugging Face hub (and may not be downloaded yet)."""
    return bool(getattr(task, "hub_id", None)) and isinstance(getattr(task, "split_sizes", None), dict)


def hub_split_size(task: Any, split: str) -> int:
    """Examples in one of our splits of a hub task, from its published split sizes (a dev split
    carved from train by hash, `dev_fraction` of it, when the dataset keeps none apart)."""
    sizes = task.split_sizes
    carved = "dev" not in sizes and "train" in sizes and getattr(task, "carves_dev", lambda: False)()
    if carved and split in ("train", "dev"):
        dev = round(sizes["train"] * getattr(task, "dev_fraction", 0.0))
        return dev if split == "dev" else int(sizes["train"]) - dev
    for name in SPLIT_NAMES.get(split, (split,)):
        if name in sizes:
            return int(sizes[name])
    return 0


def split_count(name: str, split: str, load: bool = True) -> int:
    """How many examples a split has: counted after loading, or for a hub task with `load` false
    (a dry run, an estimate) its published size."""
    task = get_task(name)
    if is_hub_task(task) and not load:
        return hub_split_size(task, split)
    return len(task.examples(split))


def hub_lengths(name: str, task: Any, split: str) -> Lengths:
    """A hub task's figures: for this split, else for the task, else for the longest name prefix
    (`hub-mmlu` for `hub-mmlu-anatomy`), else a default for its kind."""
    if f"{name}:{split}" in TOKEN_FIGURES:
        return TOKEN_FIGURES[f"{name}:{split}"]
    for key in sorted((k for k in TOKEN_FIGURES if ":" not in k), key=len, reverse=True):
        if name == key or name.startswith(key + "-"):
            return TOKEN_FIGURES[key]
    if task.output_type == "generate" and not hub_split_size(task, "test"):
        return DEFAULT_FIGURES["instruction"]  # a train-only generation source
    return DEFAULT_FIGURES.get(task.output_type, DEFAULT_FIGURES["generate"])


def _measured(name: str, split: str) -> Lengths:
    examples = get_task(name).examples(split)[:50]
    if not examples:
        return Lengths(0.0, 0.0, 0.0)
    return Lengths(statistics.fmean(len(e.prompt) for e in examples), statistics.fmean(len(e.target) for e in examples),
                   statistics.fmean(sum(len(c) for c in e.choices) for e in examples))


def lengths(name: str, split: str) -> Lengths:
    """Mean lengths of a split's examples (the first 50 of a loaded task; the figures of a hub task)."""
    task = get_task(name)
    if is_hub_task(task):
        return hub_lengths(name, task, split)
    return _measured(name, split)


def mean_tokens(name: str, split: str, with_target: bool) -> float:
    """Tokens of an example with its reference answer (training) or with its choices (scoring)."""
    size = lengths(name, split)
    if not (size.prompt or size.target or size.choices):
        return 0.0
    chars = size.prompt + (size.target if with_target else size.choices)
    return chars / CHARS_PER_TOKEN + TEMPLATE_TOKENS


def train_steps(train: dict[str, Any], train_examples: int, available: int) -> int:
    """Optimizer steps of an SFT run: its `steps`, else `epochs` passes over the examples it gets."""
    if train.get("steps"):
        return int(train["steps"])
    rows = min(train_examples, available) if train_examples else available
    return max(1, math.ceil(train.get("epochs", 1.0) * rows / train.get("batch_size", 8)))


def curve_points(steps: int, eval_every: int) -> int:
    """Learning-curve evaluations of a run: at step 0, every `eval_every` steps and after the last."""
    if not eval_every:
        return 0
    return 1 + steps // eval_every + (1 if steps % eval_every else 0)
