"""HumanEval: the data, the prompt, and a scorer that recovers the program from any sane answer."""

from __future__ import annotations

import textwrap
import time

import pytest

from transferlab.sandbox import isolation
from transferlab.tasks import SPLITS, Example, get_task, split_of
from transferlab.tasks.humaneval import HumanEvalTask, candidate_program, extract_code, strip_demos

FENCE = "```"
# Scoring runs generated code, which needs the sandbox (bubblewrap; `make setup` installs it).
needs_sandbox = pytest.mark.skipif(not isolation().isolated, reason=f"no sandbox here: {isolation().problem}")


@pytest.fixture(scope="module")
def task() -> HumanEvalTask:
    task = get_task("humaneval")
    assert isinstance(task, HumanEvalTask)
    return task


@pytest.fixture(scope="module")
def examples(task: HumanEvalTask) -> list[Example]:
    return task.all_examples()


def by_id(examples: list[Example], task_id: str) -> Example:
    return next(e for e in examples if e.uid == task_id)


def fenced(code: str, lang: str = "python") -> str:
    return f"{FENCE}{lang}\n{code}{FENCE}"


def test_all_164_problems_load_with_what_scoring_needs(examples: list[Example]) -> None:
    assert len(examples) == 164
    assert len({e.uid for e in examples}) == 164
    first = examples[0]
    assert first.uid == "HumanEval/0"
    assert set(first.meta) >= {"entry_point", "code_prompt", "test", "canonical_solution"}


def test_the_task_is_a_code_generation_task(task: HumanEvalTask) -> None:
    assert task.name == "humaneval" and task.domain == "code"
    assert task.output_type == "generate"
    assert task.metrics == ("pass@1",) and task.primary_metric == "pass@1"
    assert task.max_new_tokens == 384


def test_splits_hash_the_task_id_with_the_task_defaults(task: HumanEvalTask, examples: list[Example]) -> None:
    for e in examples:
        assert e.key == e.meta["task_id"]
    seen = []
    for split in SPLITS:
        chosen = task.examples(split)
        assert chosen, split
        assert all(split_of(e.meta["task_id"], task.split_fractions) == split for e in chosen)
        seen += [e.uid for e in chosen]
    assert sorted(seen) == sorted(e.uid for e in examples)


def test_the_prompt_asks_for_the_function_and_the_target_is_the_whole_function(examples: list[Example]) -> None:
    e = examples[0]
    code = e.meta["code_prompt"]
    assert "Complete the following Python function" in e.prompt
    assert f"{FENCE}python\n{code.strip()}\n{FENCE}" in e.prompt
    assert e.target == f"{FENCE}python\n{(code + e.meta['canonical_solution']).strip()}\n{FENCE}"


@needs_sandbox
def test_every_canonical_solution_passes_in_every_form(task: HumanEvalTask, examples: list[Example]) -> None:
    """All 164 problems, three ways a model may answer, scored as one batch: in seconds."""
    forms = {
        "whole function, fenced": [e.target for e in examples],
        "body only, raw": [e.meta["canonical_solution"] for e in examples],
        "body only, dedented, fenced": [fenced(textwrap.dedent(e.meta["canonical_solution"])) for e in examples],
    }
    start = time.monotonic()
    results = task.check_many(examples * len(forms), [c for completions in forms.values() for c in completions])
    elapsed = time.monotonic() - start
    for i, form in enumerate(forms):
        chunk = results[i * len(examples): (i + 1) * len(examples)]
        failed = [(e.uid, r.status, r.reason) for e, r in zip(examples, chunk) if not r.passed]
        assert not failed, f"{form}: canonical solutions failed: {failed}"
    print(f"{len(results)} canonical answers passed in {elapsed:.1f} s")
    assert elapsed < 120


@needs_sandbox
def test_each_verdict_says_what_protected_it_and_why_it_failed(task: HumanEvalTask, examples: list[Example]) -> None:
    e = examples[0]
    right, wrong = task.check_many([e, e], [e.target, "    return False\n"])
    assert right.passed and right.calls > 0 and right.protections == isolation().protections()
    assert wrong.status == "failed" and "AssertionError" in wrong.reason
    assert task.summary()["sandbox"] == list(isolation().protections())


@needs_sandbox
def test_a_wrong_solution_fails(task: HumanEvalTask, examples: list[Example]) -> None:
    e = examples[0]
    assert task.score(e, fenced(e.meta["code_prompt"] + "    return False\n")) == {"pass@1": 0.0}
    assert task.score(e, "    return True\n") == {"pass@1": 0.0}
    assert task.score(e, "I don't know.") == {"pass@1": 0.0}
    assert task.score(e, "") == {"pass@1": 0.0}


@needs_sandbox
def test_an_infinite_loop_times_out_and_scores_zero(examples: list[Example]) -> None:
    quick = HumanEvalTask(timeout_s=1.0)
    e = examples[0]
    start = time.monotonic()
    assert quick.score(e, "    while True:\n        pass\n") == {"pass@1": 0.0}
    assert time.monotonic() - start < 5


@needs_sandbox
def test_exiting_early_with_status_zero_does_not_pass(task: HumanEvalTask, examples: list[Example]) -> None:
    e = examples[0]
    cheat = "    import os\n    os._exit(0)\n"
    assert task.score(e, cheat) == {"pass@1": 0.0}


def test_score_many_checks_lengths(task: HumanEvalTask, examples: list[Example]) -> None:
    with pytest.raises(ValueError):
        task.score_many(examples[:2], ["x"])
    assert task.score_many([], []) == []


# How answers are read: each case is a way chat models are seen to answer.

def test_a_fenced_block_is_taken_from_prose_and_the_defining_block_wins() -> None:
    answer = (
        "Sure! Usage:\n\n```python\nprint(add(1, 2))\n```\n\nHere is the function:\n\n"
        "```python\ndef add(a, b):\n    return a + b\n```\n\nIt adds the numbers."
    )
    assert extract_code(answer, "add") == "def add(a, b):\n    return a + b\n"


def test_an_answer_cut_off_inside_its_fence_is_still_read() -> None:
    assert extract_code("```python\ndef add(a, b):\n    return a + b\n", "add") == "def add(a, b):\n    return a + b\n"


@needs_sandbox
def test_unfenced_code_wrapped_in_prose_is_trimmed_to_the_code(task: HumanEvalTask, examples: list[Example]) -> None:
    e = examples[2]  # truncate_number
    answer = "Here you go:\n\ndef truncate_number(number: float) -> float:\n    return number % 1.0\n\nThis keeps the fraction."
    assert task.score(e, answer) == {"pass@1": 1.0}


@needs_sandbox
def test_a_stray_closing_fence_after_a_body_is_ignored(task: HumanEvalTask, examples: list[Example]) -> None:
    e = examples[2]
    assert task.score(e, "    return number % 1.0\n```") == {"pass@1": 1.0}


@needs_sandbox
def test_helpers_and_imports_from_the_prompt_are_available(task: HumanEvalTask, examples: list[Example]) -> None:
    e = by_id(examples, "HumanEval/32")  # find_zero needs the prompt's poly() and `import math`
    answer = fenced(
        "def find_zero(xs: list):\n"
        "    lo, hi = -1.0, 1.0\n"
        "    while poly(xs, lo) * poly(xs, hi) > 0:\n"
        "        lo, hi = lo * 2, hi * 2\n"
        "    while hi - lo > 1e-10:\n"
        "        mid = (lo + hi) / 2\n"
        "        if poly(xs, mid) * poly(xs, lo) > 0:\n"
        "            lo = mid\n"
        "        else:\n"
        "            hi = mid\n"
        "    return lo\n"
    )
    assert task.score(e, answer) == {"pass@1": 1.0}


@needs_sandbox
def test_the_models_own_demos_are_dropped(task: HumanEvalTask, examples: list[Example]) -> None:
    e = examples[2]
    answer = fenced(
        "def truncate_number(number: float) -> float:\n"
        "    return number % 1.0\n"
        "\n"
        "assert truncate_number(3.5) == 0.25  # the model's own example, wrong\n"
        "print(truncate_number(input()))\n"
        "if __name__ == '__main__':\n"
        "    import unittest\n"
        "    unittest.main()\n"
    )
    assert task.score(e, answer) == {"pass@1": 1.0}


def test_strip_demos_keeps_definitions_and_setup() -> None:
    program = "import sys\nsys.setrecursionlimit(10000)\nX = 1\ndef f():\n    print(X)\nf()\nassert f() is None\n"
    assert strip_demos(program) == "import sys\nsys.setrecursionlimit(10000)\nX = 1\ndef f():\n    print(X)\n"


def test_a_body_only_answer_continues_the_prompt() -> None:
    prompt = 'def f(x):\n    """Double x."""\n'
    assert candidate_program(prompt, "    return 2 * x\n", "f") == prompt + "    return 2 * x\n"
    assert candidate_program(prompt, fenced("return 2 * x\n"), "f") == prompt + "    return 2 * x\n"
