"""Code from the hub: MBPP (google-research-datasets/mbpp, full) and HumanEval (openai/openai_humaneval).

Both are scored pass@1 in our sandbox exactly as the offline `humaneval` is: the answer's
program runs in one bubblewrap sandbox, the dataset's tests in another that sees the
answer's return values as plain data only (`transferlab.sandbox.judge`). MBPP's tests are
its `test_list` asserts, run inside `check(candidate)` after its `test_setup_code`; the
function under test is the one the asserts call that the reference code defines. The
MBPP prompt is lm-eval's `mbpp_instruct` (task, then the three tests); HumanEval's is the
offline task's own, so `hub-humaneval` and `humaneval` differ only in taking all 164
problems as test (train on MBPP).

Limitation: a test that passes an object of a class the answer defines (a few MBPP
problems) fails, since only plain data crosses between the sandboxes.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from transferlab.sandbox import CheckResult, isolation, run_checked_many
from transferlab.tasks.base import Example, OutputType
from transferlab.tasks.humaneval import candidate_program, checker_program, render_prompt, render_target
from transferlab.tasks.hub.source import HubSplit
from transferlab.tasks.hub.task import HubTask, splits

MBPP = "google-research-datasets/mbpp"
MBPP_COLUMNS = ("task_id", "text", "code", "test_list", "test_setup_code")
HUMANEVAL = "openai/openai_humaneval"


def entry_point(code: str, tests: Sequence[str]) -> str:
    """The function the tests call that the reference code defines (the first one called)."""
    defined = {n.name for n in ast.parse(code).body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    for test in tests:
        for node in ast.walk(ast.parse(test)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in defined:
                return node.func.id
    raise ValueError(f"field 'test_list' calls none of the functions field 'code' defines "
                     f"({', '.join(sorted(defined))})")


def mbpp_checker(setup: str, tests: Sequence[str]) -> str:
    """The trusted side: the setup code, then `check(candidate)` running every assert."""
    body = "\n".join(f"    {t.strip()}" for t in tests)
    return f"{setup.strip()}\n\n\ndef check(candidate):\n{body}\n"


class HubCodeTask(HubTask):
    """Python problems with unit tests, pass@1 from one answer per problem."""

    output_type: ClassVar[OutputType] = "generate"
    max_new_tokens = 512
    metrics = ("pass@1",)
    primary_metric = "pass@1"
    timeout_s = 10.0
    memory_mb = 1024
    workers: int | None = None
    allow_unsafe_code: bool | None = None  # None: TRANSFERLAB_ALLOW_UNSAFE_CODE decides

    def example(self, row: Mapping[str, Any], source: HubSplit) -> Example:
        if source.hub_id == MBPP:
            return self._mbpp(row)
        meta = {"entry_point": str(row["entry_point"]), "code_prompt": str(row["prompt"]),
                "test": str(row["test"])}
        meta["checker"] = checker_program(meta)
        return Example(uid="", prompt=render_prompt(meta["code_prompt"]),
                       target=render_target(meta["code_prompt"], str(row["canonical_solution"])), meta=meta)

    def _mbpp(self, row: Mapping[str, Any]) -> Example:
        code = str(row["code"]).replace("\r\n", "\n").strip()
        tests = [str(t) for t in row["test_list"]]
        if not tests:
            raise ValueError("field 'test_list' is empty")
        setup = str(row["test_setup_code"] or "").replace("\r\n", "\n")
        prompt = ("You are an expert Python programmer, and here is your task:\n"
                  f"{str(row['text']).strip()}\nYour code should pass these tests:\n" + "\n".join(tests))
        meta = {"entry_point": entry_point(code, tests), "code_prompt": setup.strip() + "\n" if setup.strip() else "",
                "checker": mbpp_checker(setup, tests), "reference": code}
        return Example(uid="", prompt=prompt, target=f"```python\n{code}\n```", meta=meta)

    def row_id(self, row: Mapping[str, Any], source: HubSplit) -> str:
        return str(row["task_id"])

    def score(self, example: Example, completion: str) -> dict[str, float]:
        return self.score_many([example], [completion])[0]

    def score_many(self, examples: Sequence[Example], completions: Sequence[str]) -> list[dict[str, float]]:
        return [{"pass@1": float(r.passed)} for r in self.check_many(examples, completions)]

    def check_many(self, examples: Sequence[Example], completions: Sequence[str]) -> list[CheckResult]:
        """The full verdict of each answer, as `HumanEvalTask.check_many` gives it."""
        if len(examples) != len(completions):
            raise ValueError(f"{len(examples)} examples but {len(completions)} completions")
        jobs = [(candidate_program(e.meta["code_prompt"], c, e.meta["entry_point"]), e.meta["checker"],
                 e.meta["entry_point"]) for e, c in zip(examples, completions)]
        return run_checked_many(jobs, workers=self.workers, timeout_s=self.timeout_s, memory_mb=self.memory_mb,
                                allow_unsafe=self.allow_unsafe_code)

    def summary(self) -> dict[str, Any]:
        return {**super().summary(), "sandbox": list(isolation().protections())}


def factories() -> dict[str, Any]:
    mbpp = (HubSplit("train", MBPP, "full", "train", 374, MBPP_COLUMNS),
            HubSplit("train", MBPP, "full", "prompt", 10, MBPP_COLUMNS),
            HubSplit("dev", MBPP, "full", "validation", 90, MBPP_COLUMNS),
            HubSplit("test", MBPP, "full", "test", 500, MBPP_COLUMNS))
    return {
        "hub-mbpp": lambda: HubCodeTask(
            "hub-mbpp", sources=mbpp, domain="code",
            description="MBPP from the hub (google-research-datasets/mbpp, full): 374 train + 10 prompt / "
                        "90 dev / 500 test Python problems, pass@1 in the sandbox"),
        "hub-humaneval": lambda: HubCodeTask(
            "hub-humaneval", sources=splits(HUMANEVAL, "openai_humaneval", ("task_id", "prompt", "canonical_solution",
                                                                            "test", "entry_point"),
                                            test=("test", 164)),
            domain="code", offline_twin="humaneval",
            description="HumanEval from the hub (openai/openai_humaneval): all 164 problems as test (train on "
                        "hub-mbpp); offline twin humaneval hash-splits the same 164"),
    }
