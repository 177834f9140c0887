"""Math from the hub: GSM8K (openai/gsm8k), MATH (EleutherAI/hendrycks_math) and MATH-500.

Prompts are lm-evaluation-harness's (`gsm8k.yaml`: "Question: ...\\nAnswer:";
`hendrycks_math`: "Problem: ...\\nAnswer:"), asked zero-shot. GSM8K is scored like the
offline `gsm8k` (strict `#### n` and flexible last-number match); MATH by the final answer
(the last `\\boxed{}`, else lm-eval's `$...$` rule) under MATH's equivalence (`math_answers`).
Reference answers are checked when rows load, so a broken one fails loudly, never scores 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from transferlab.tasks.base import Example, OutputType
from transferlab.tasks.gsm8k import score as gsm8k_score
from transferlab.tasks.gsm_text import answer_line, strip_calculations
from transferlab.tasks.hub.math_answers import answer_of, boxed_answer, equivalent
from transferlab.tasks.hub.source import HubSplit
from transferlab.tasks.hub.task import HubTask, splits

GSM8K = "openai/gsm8k"
MATH = "EleutherAI/hendrycks_math"
MATH500 = "HuggingFaceH4/MATH-500"
# MATH's seven subjects (its configs): published (train, test) rows, 7,500 and 5,000 in all.
MATH_SUBJECTS: dict[str, tuple[int, int]] = {
    "algebra": (1744, 1187), "counting_and_probability": (771, 474), "geometry": (870, 479),
    "intermediate_algebra": (1295, 903), "number_theory": (869, 540), "prealgebra": (1205, 871),
    "precalculus": (746, 546),
}


class HubGSM8KTask(HubTask):
    """GSM8K (main): 7,473 train / 1,319 test; dev is 5% of train."""

    output_type: ClassVar[OutputType] = "generate"
    max_new_tokens = 256
    metrics = ("exact_match_strict", "exact_match_flexible")
    primary_metric = "exact_match_flexible"

    def example(self, row: Mapping[str, Any], source: HubSplit) -> Example:
        solution = str(row["answer"])
        gold = answer_line(solution)
        if gold is None:
            raise ValueError(f"field 'answer' has no '#### <number>' line: {solution[-80:]!r}")
        return Example(uid="", prompt=f"Question: {str(row['question']).strip()}\nAnswer:",
                       target=strip_calculations(solution).strip(), meta={"answer": gold})

    def score(self, example: Example, completion: str) -> dict[str, float]:
        return gsm8k_score(example, completion)


class HubMathTask(HubTask):
    """Competition math: a worked solution ending in a boxed answer, scored by the final answer."""

    output_type: ClassVar[OutputType] = "generate"
    max_new_tokens = 512
    metrics = ("exact_match",)
    primary_metric = "exact_match"

    def example(self, row: Mapping[str, Any], source: HubSplit) -> Example:
        solution = str(row["solution"])
        gold = str(row["answer"]) if "answer" in source.columns else boxed_answer(solution)
        if not gold:
            raise ValueError("field 'solution' has no \\boxed{} final answer")
        meta = {"answer": gold, "level": row.get("level"), "subject": row.get("type", row.get("subject"))}
        return Example(uid="", prompt=f"Problem: {str(row['problem']).strip()}\nAnswer:", target=solution.strip(),
                       meta=meta)

    def row_id(self, row: Mapping[str, Any], source: HubSplit) -> str:
        return str(row["unique_id"]) if "unique_id" in source.columns else super().row_id(row, source)

    def score(self, example: Example, completion: str) -> dict[str, float]:
        return {"exact_match": float(equivalent(answer_of(completion), example.meta["answer"]))}


def math_sources(subjects: tuple[str, ...]) -> tuple[HubSplit, ...]:
    columns = ("problem", "level", "type", "solution")
    return tuple(s for subject in subjects for s in splits(
        MATH, subject, columns, train=("train", MATH_SUBJECTS[subject][0]), test=("test", MATH_SUBJECTS[subject][1])))


def factories() -> dict[str, Any]:
    out: dict[str, Any] = {
        "hub-gsm8k": lambda: HubGSM8KTask(
            "hub-gsm8k", sources=splits(GSM8K, "main", ("question", "answer"), train=("train", 7473),
                                        test=("test", 1319)),
            domain="math", offline_twin="gsm8k",
            description="GSM8K from the hub (openai/gsm8k, main), full size: 7,473 train / 1,319 test; "
                        "offline twin gsm8k is a 100-problem package subset"),
        "hub-math": lambda: HubMathTask(
            "hub-math", sources=math_sources(tuple(MATH_SUBJECTS)), domain="math",
            description="MATH competition problems from the hub (EleutherAI/hendrycks_math, 7 subjects): "
                        "7,500 train / 5,000 test, boxed final answer"),
        "hub-math500": lambda: HubMathTask(
            "hub-math500", sources=splits(MATH500, None, ("problem", "solution", "answer", "subject", "level",
                                                           "unique_id"), test=("test", 500)),
            domain="math", description="MATH-500 from the hub (HuggingFaceH4/MATH-500): 500 test problems of "
                                       "MATH's test set (evaluation only; train on hub-math)"),
    }
    for subject in MATH_SUBJECTS:
        name = f"hub-math-{subject.replace('_', '-')}"
        out[name] = lambda n=name, s=subject: HubMathTask(
            n, sources=math_sources((s,)), domain="math",
            description=f"MATH {s.replace('_', ' ')} from the hub (EleutherAI/hendrycks_math, {s})")
    return out
