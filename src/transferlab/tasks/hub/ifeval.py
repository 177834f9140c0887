"""IFEval from the hub (google/IFEval: 541 prompts, all as test) with an instruction-tuning train set.

The test prompts are scored by the same offline checkers as the offline `ifeval`
(`tasks.ifeval_checks`, the google-research reference code), with the same metrics and
instruction-weighted aggregation. IFEval itself has no train split and no reference
answers; the train split here is Tülu 3's persona instruction-following SFT set
(allenai/tulu-3-sft-personas-instruction-following, 29,980 prompts with 1-3 constraints
from IFEval's taxonomy, each with an assistant answer that satisfies them). Its answers
cannot be scored by IFEval's checkers (their constraints are prose, not checker ids), so
this task has no dev split: learning curves need another task's dev split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from transferlab.tasks import ifeval_checks
from transferlab.tasks.base import Example, OutputType
from transferlab.tasks.hub.source import HubSplit
from transferlab.tasks.hub.task import HubTask
from transferlab.tasks.ifeval import INSTRUCTION_METRICS, IFEvalTask, aggregate

IFEVAL = "google/IFEval"
TRAIN = "allenai/tulu-3-sft-personas-instruction-following"


class HubIFEvalTask(HubTask):
    """Instruction following: IFEval's 541 prompts to test, Tülu 3 persona-IF answers to train on."""

    output_type: ClassVar[OutputType] = "generate"
    max_new_tokens = 512
    metrics = IFEvalTask.metrics
    primary_metric = IFEvalTask.primary_metric

    def example(self, row: Mapping[str, Any], source: HubSplit) -> Example:
        if source.hub_id == TRAIN:
            answers = [m["content"] for m in row["messages"] if m["role"] == "assistant"]
            if not answers or not str(answers[-1]).strip():
                raise ValueError("field 'messages' holds no assistant answer")
            return Example(uid="", prompt=str(row["prompt"]), target=str(answers[-1]), meta={"source": TRAIN})
        ids = [str(i) for i in row["instruction_id_list"]]
        kwargs = [ifeval_checks.clean_kwargs(k or {}) for k in row["kwargs"]]
        if len(ids) != len(kwargs):
            raise ValueError(f"{len(ids)} instructions but {len(kwargs)} argument sets in field 'kwargs'")
        ifeval_checks.require_supported(ids)
        for instruction_id, args in zip(ids, kwargs):
            ignored = ifeval_checks.arguments_not_honoured(instruction_id, args)
            if ignored:
                raise ValueError(f"the {instruction_id!r} checker would draw {', '.join(ignored)} at random")
        return Example(uid="", prompt=str(row["prompt"]), target="",
                       meta={"key": row["key"], "instruction_id_list": ids, "kwargs": kwargs, "source": IFEVAL})

    def row_id(self, row: Mapping[str, Any], source: HubSplit) -> str:
        return str(row["key"] if source.hub_id == IFEVAL else row["id"])

    def carves_dev(self) -> bool:
        return False  # train answers cannot be scored by IFEval's checkers: no dev split

    def score(self, example: Example, completion: str) -> dict[str, float]:
        """The offline task's metrics: strict and loose, prompt- and instruction-level."""
        ids = example.meta["instruction_id_list"]
        strict, loose = ifeval_checks.follows(example.prompt, ids, example.meta["kwargs"], completion)
        return {"prompt_strict": float(all(strict)), "inst_strict": sum(strict) / len(strict),
                "prompt_loose": float(all(loose)), "inst_loose": sum(loose) / len(loose)}

    def example_weight(self, example: Example, metric: str) -> float:
        return float(len(example.meta["instruction_id_list"])) if metric in INSTRUCTION_METRICS else 1.0

    def aggregate(self, scores: Sequence[Mapping[str, float]], examples: Sequence[Example]) -> dict[str, float]:
        return aggregate(scores, examples)


def factories() -> dict[str, Any]:
    sources = (HubSplit("train", TRAIN, None, "train", 29980, ("id", "prompt", "messages")),
               HubSplit("test", IFEVAL, None, "train", 541, ("key", "prompt", "instruction_id_list", "kwargs")))
    return {"hub-ifeval": lambda: HubIFEvalTask(
        "hub-ifeval", sources=sources, domain="instruction_following", offline_twin="ifeval",
        description="IFEval from the hub (google/IFEval): all 541 prompts as test; train: 29,980 Tülu 3 persona "
                    "instruction-following answers (allenai/tulu-3-sft-personas-instruction-following)")}
