"""Turn a task example into model input, chat-template aware.

The same rendering serves evaluation (context, then a choice or a generation) and
training (context, then the target and the end-of-turn token), so a model is trained on
exactly the format it is evaluated in.

Evaluation can also frame each question in one of a few named prompt templates
(`TEMPLATES`: `default`, `qa`, `instruct`), so a study can ask whether a result survives a
change of wording (seed 002's "robustness to prompt variations"). Training always uses
`default`, the task's own prompt, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transferlab.errors import TransferlabError
from transferlab.tasks.base import Example, Task


@dataclass(frozen=True)
class PromptTemplate:
    """A named framing of a task's question: `prefix + prompt + suffix`.

    The frame wraps the question of the user turn (and each few-shot question the same
    way); the system prompt, the few-shot answers and whatever follows the context (the
    scored choices, or the generation) are untouched, so a template works the same for
    multiple-choice and generation tasks, with or without a chat template. Plain-text
    contexts still end in a newline, so every choice is scored after the same boundary.
    """

    name: str
    description: str
    prefix: str = ""
    suffix: str = ""

    def frame(self, prompt: str) -> str:
        return f"{self.prefix}{prompt}{self.suffix}"


DEFAULT_TEMPLATE = "default"
TEMPLATES: dict[str, PromptTemplate] = {t.name: t for t in (
    PromptTemplate(DEFAULT_TEMPLATE, "the task's own prompt, unchanged (training always uses it)"),
    PromptTemplate("qa", "'Question: <prompt>' then a line 'Answer:'", prefix="Question: ", suffix="\nAnswer:"),
    PromptTemplate("instruct", "a terse instruction line before the prompt",
                   prefix="Respond to the following.\n\n"),
)}


def get_template(name: str) -> PromptTemplate:
    """The built-in template called `name`; an unknown name is an error listing the known ones."""
    if name not in TEMPLATES:
        raise TransferlabError(f"unknown prompt template {name!r}: known templates are {', '.join(TEMPLATES)}")
    return TEMPLATES[name]


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render_context(task: Task, example: Example, tokenizer: Any, template: str = DEFAULT_TEMPLATE) -> str:
    """The text the model sees before its answer: system prompt, few-shot turns, the question,
    each question framed by the prompt `template` (`default`: as the task wrote it)."""
    frame = get_template(template).frame
    shots = [s for s in task.fewshot_examples() if s.uid != example.uid]
    if has_chat_template(tokenizer):
        messages: list[dict[str, str]] = []
        if task.system_prompt:
            messages.append({"role": "system", "content": task.system_prompt})
        for shot in shots:
            messages.append({"role": "user", "content": frame(shot.prompt)})
            messages.append({"role": "assistant", "content": shot.target})
        messages.append({"role": "user", "content": frame(example.prompt)})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    # Without a chat template (a base model), plain text; models such as Gemma need their
    # BOS token, which a chat template would have written itself.
    parts = [task.system_prompt] if task.system_prompt else []
    parts += [f"{frame(s.prompt)}\n{s.target}\n" for s in shots]
    parts.append(f"{frame(example.prompt)}\n")
    return (getattr(tokenizer, "bos_token", None) or "") + "\n".join(parts)


def end_of_turn(tokenizer: Any) -> str:
    """What closes an assistant answer: the end-of-turn token, so trained models learn to stop."""
    return tokenizer.eos_token or ""
