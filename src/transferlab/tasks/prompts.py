"""Turn a task example into model input, chat-template aware.

The same rendering serves evaluation (context, then a choice or a generation) and
training (context, then the target and the end-of-turn token), so a model is trained on
exactly the format it is evaluated in.
"""

from __future__ import annotations

from typing import Any

from transferlab.tasks.base import Example, Task


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render_context(task: Task, example: Example, tokenizer: Any) -> str:
    """The text the model sees before its answer: system prompt, few-shot turns, the question."""
    shots = [s for s in task.fewshot_examples() if s.uid != example.uid]
    if has_chat_template(tokenizer):
        messages: list[dict[str, str]] = []
        if task.system_prompt:
            messages.append({"role": "system", "content": task.system_prompt})
        for shot in shots:
            messages.append({"role": "user", "content": shot.prompt})
            messages.append({"role": "assistant", "content": shot.target})
        messages.append({"role": "user", "content": example.prompt})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    # Without a chat template (a base model), plain text; models such as Gemma need their
    # BOS token, which a chat template would have written itself.
    parts = [task.system_prompt] if task.system_prompt else []
    parts += [f"{s.prompt}\n{s.target}\n" for s in shots]
    parts.append(f"{example.prompt}\n")
    return (getattr(tokenizer, "bos_token", None) or "") + "\n".join(parts)


def end_of_turn(tokenizer: Any) -> str:
    """What closes an assistant answer: the end-of-turn token, so trained models learn to stop."""
    return tokenizer.eos_token or ""
