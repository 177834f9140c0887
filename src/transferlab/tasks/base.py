"""What a task is: examples, a prompt, a scorer and deterministic hash splits.

A task never depends on the order its data arrives in: the split of an example is a
hash of its `split_key`, so adding or removing other examples never moves it.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from transferlab.errors import TransferlabError

SPLITS = ("train", "dev", "test")
OutputType = Literal["multiple_choice", "generate"]


@dataclass(frozen=True)
class Example:
    """One task example.

    `prompt` is the user turn before chat templating; `target` is the reference
    completion used for supervised training. Multiple-choice examples also carry
    `choices` (continuations scored by log-likelihood) and the index of the `answer`.
    `meta` holds what a scorer needs (unit tests, instruction ids, the numeric answer).
    """

    uid: str
    prompt: str
    target: str
    choices: tuple[str, ...] = ()
    answer: int | None = None
    split_key: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def key(self) -> str:
        """What decides this example's split (the uid unless a task groups examples)."""
        return self.split_key or self.uid


def stable_hash(*parts: Any) -> str:
    """A short hex digest of JSON-serialisable parts, stable across runs and machines."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def split_of(key: str, fractions: Sequence[float] = (0.5, 0.1, 0.4), salt: str = "") -> str:
    """The split ('train', 'dev' or 'test') a key hashes into, for the given fractions."""
    digest = hashlib.sha256(f"{salt}{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    edge = 0.0
    for name, fraction in zip(SPLITS, fractions):
        edge += fraction
        if u < edge:
            return name
    return SPLITS[-1]


class UnknownSplit(TransferlabError, ValueError):
    """A split name that is not train, dev or test (a ValueError too, as it always was)."""


class Task(ABC):
    """A named, versioned evaluation and training unit.

    Subclasses set the class attributes and implement `load`; generation tasks also
    implement `score`. Bump `version` whenever prompts, data or scoring change:
    it is part of every cache key.
    """

    name: str = ""
    domain: str = "general"
    description: str = ""
    output_type: ClassVar[OutputType] = "multiple_choice"
    version: int = 1
    system_prompt: str | None = None
    num_fewshot: int = 0
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ("acc", "acc_norm")
    primary_metric: str = "acc"
    split_fractions: tuple[float, float, float] = (0.5, 0.1, 0.4)
    chance: float | None = None  # the score of guessing; None = derived (see `chance_level`)
    # How a rendered example reaches the model (`tasks.prompts.PromptOptions`; a run's own
    # setting wins): chat template and start token on / off / auto, and the text between the
    # context and the answer (None = auto). Only settings other than auto enter `fingerprint`.
    chat_template: str = "auto"
    start_token: str = "auto"
    separator: str | None = None

    _cache: list[Example] | None = None

    def generation_length(self, cap: int | None = None) -> int:
        """How many tokens a generation may run: the task's own length, shortened by a run's cap
        (`budgets.max_new_tokens`), never lengthened: a budget sized for long answers must not
        let a one-word task ramble."""
        return min(cap, self.max_new_tokens) if cap else self.max_new_tokens

    @abstractmethod
    def load(self) -> list[Example]:
        """Every example of the task, read from its source."""

    def all_examples(self) -> list[Example]:
        if self._cache is None:
            self._cache = self.load()
        return self._cache

    def examples(self, split: str) -> list[Example]:
        """The examples of one split, ordered by uid hash (so a prefix is a fair sample)."""
        if split not in SPLITS:
            raise UnknownSplit(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
        chosen = [e for e in self.all_examples() if split_of(e.key, self.split_fractions) == split]
        return sorted(chosen, key=lambda e: stable_hash("order", e.uid))

    def fewshot_examples(self) -> list[Example]:
        """The few-shot demonstrations: always from the train split, never from the evaluated one."""
        return self.examples("train")[: self.num_fewshot] if self.num_fewshot else []

    def score(self, example: Example, completion: str) -> dict[str, float]:
        """Metrics for one generated completion (generation tasks only)."""
        raise NotImplementedError(f"task {self.name!r} has no generation scorer")

    def example_weight(self, example: Example, metric: str) -> float:
        """How much an example counts in a metric's mean (1 unless a metric is defined per sub-item).

        IFEval's instruction-level accuracy, for one, is a mean over instructions, so an
        example counts as many times as it has instructions.
        """
        return 1.0

    def chance_level(self, examples: Sequence[Example] | None = None) -> float:
        """The score a model gets by guessing: the declared `chance`, else for multiple choice the
        mean of 1 / (number of choices) over `examples` (default: the test split), else 0 (a
        generated answer that ignores the question scores nothing). A ratio whose denominator is
        within noise of this is NA: it would measure nothing."""
        if self.chance is not None:
            return float(self.chance)
        if self.output_type != "multiple_choice":
            return 0.0
        sizes = [len(e.choices) for e in (self.examples("test") if examples is None else examples) if e.choices]
        return sum(1 / k for k in sizes) / len(sizes) if sizes else 0.0

    def fingerprint(self) -> str:
        """Identity of the task for cache keys: name, version, prompt settings and data."""
        data = stable_hash([(e.uid, e.prompt, e.target, e.choices, e.answer) for e in self.all_examples()])
        return stable_hash(
            self.name, self.version, self.system_prompt, self.num_fewshot, self.max_new_tokens,
            self.stop, self.split_fractions, data, *self._prompt_settings(),
        )

    def _prompt_settings(self) -> tuple[tuple[str, dict[str, str]], ...]:
        """The prompt options that are not auto, for the fingerprint (nothing for the defaults,
        so tasks keep the fingerprints they had before the options existed)."""
        settings = {k: v for k, v in (("chat_template", self.chat_template), ("start_token", self.start_token))
                    if v != "auto"}
        if self.separator is not None:
            settings["separator"] = self.separator
        return (("prompt", settings),) if settings else ()

    def summary(self) -> dict[str, Any]:
        counts = {s: len(self.examples(s)) for s in SPLITS}
        return {
            "name": self.name, "domain": self.domain, "type": self.output_type,
            "version": self.version, "metrics": list(self.metrics), "primary": self.primary_metric,
            **counts, "description": self.description,
        }


def score_choices(example: Example, logprobs: Sequence[float]) -> dict[str, float]:
    """Accuracy and length-normalised accuracy from the log-likelihood of each choice.

    Length normalisation divides by the choice's length in characters, as
    lm-evaluation-harness does, so it does not depend on the tokenizer.
    """
    if example.answer is None or len(logprobs) != len(example.choices):
        raise ValueError(f"example {example.uid} has {len(example.choices)} choices, got {len(logprobs)} scores")
    best = max(range(len(logprobs)), key=lambda i: logprobs[i])
    normed = [lp / max(1, len(c)) for lp, c in zip(logprobs, example.choices)]
    best_norm = max(range(len(normed)), key=lambda i: normed[i])
    return {"acc": float(best == example.answer), "acc_norm": float(best_norm == example.answer)}
