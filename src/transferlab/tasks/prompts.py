"""Turn a task example into model input, chat-template aware, stated exactly.

The same rendering serves evaluation (context, then a choice or a generation) and
training (context, then the target and the end-of-turn token), so a model is trained on
exactly the format it is evaluated in.

Evaluation can also frame each question in one of a few named prompt templates
(`TEMPLATES`: `default`, `qa`, `instruct`), so a study can ask whether a result survives a
change of wording (seed 002's "robustness to prompt variations"). Training always uses
`default`, the task's own prompt, unchanged.

Three `PromptOptions` say how the text reaches the model, per task (task attributes / YAML
fields) and per run (a spec's `prompt:`, `transferlab evaluate --chat-template ...`; a run's
setting wins over the task's): `chat_template` and `start_token` (on, off, auto) and the
`separator` between the context and the answer. `auto` everywhere is what was rendered
before the options existed, byte for byte; docs/prompts.md shows every case.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from transferlab.errors import TransferlabError, closest
from transferlab.tasks.base import Example, Task


@dataclass(frozen=True)
class PromptTemplate:
    """A named framing of a task's question: `prefix + prompt + suffix`.

    The frame wraps the question of the user turn (and each few-shot question the same
    way); the system prompt, the few-shot answers and whatever follows the context (the
    scored choices, or the generation) are untouched, so a template works the same for
    multiple-choice and generation tasks, with or without a chat template. Plain-text
    contexts still end in a newline (with the default separator), so every choice is
    scored after the same boundary.
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


AUTO = "auto"
SWITCH = ("auto", "on", "off")
OPTION_FIELDS = ("chat_template", "start_token", "separator")
MAX_SEPARATOR = 200  # characters: a separator is a delimiter, not a prompt


@dataclass(frozen=True)
class PromptOptions:
    """How a rendered example reaches the model, beyond the task's wording.

    Parameters
    ----------
    chat_template : {"auto", "on", "off"}, default="auto"
        Wrap the turns in the tokenizer's chat template. auto: when the tokenizer has one;
        on: always (an error for a tokenizer without one); off: plain text.
    start_token : {"auto", "on", "off"}, default="auto"
        The tokenizer's start-of-text (BOS) token at the start of the context. auto: plain
        text gets it when the tokenizer has one, a chat template writes what it writes; on:
        always exactly one (an error for a tokenizer without one); off: never.
    separator : str or None, default=None
        What stands between the context and the answer. None (auto): a plain-text context
        ends in a newline and a chat context in the assistant's generation prompt, and each
        choice is scored alone. A string: the context ends where the prompt ends, and the
        separator is scored as the start of every choice (lm-eval's `target_delimiter`, so
        " A" tokenises as in running text) and ends the context a generation continues.

    YAML reads `on`/`off` as true/false: both spellings are accepted.
    """

    chat_template: str = AUTO
    start_token: str = AUTO
    separator: str | None = None

    def __post_init__(self) -> None:
        for name in ("chat_template", "start_token"):
            value = getattr(self, name)
            if isinstance(value, bool):  # YAML 1.1: on / off
                object.__setattr__(self, name, "on" if value else "off")
            elif value not in SWITCH:
                raise TransferlabError(f"{name} must be one of auto, on, off, got {value!r}")
        if self.separator is not None and (not isinstance(self.separator, str) or len(self.separator) > MAX_SEPARATOR):
            raise TransferlabError(f"separator must be a string of at most {MAX_SEPARATOR} characters (leave it out "
                                   f"for auto), got {self.separator!r}")

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> PromptOptions:
        """Options from a mapping (a spec's `prompt:`, a job's params); unknown keys are errors."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise TransferlabError(f"prompt must be a mapping of {', '.join(OPTION_FIELDS)}, got {data!r}")
        for key in data:
            if key not in OPTION_FIELDS:
                near = closest(str(key), OPTION_FIELDS)
                raise TransferlabError(f"{key} is not a prompt option: " +
                                       (f"did you mean {near[0]!r}?" if near else f"use {', '.join(OPTION_FIELDS)}"))
        return cls(**dict(data))

    def to_json(self) -> dict[str, str]:
        """The settings that are not auto (empty for the defaults: nothing enters a key)."""
        out = {k: getattr(self, k) for k in ("chat_template", "start_token") if getattr(self, k) != AUTO}
        if self.separator is not None:
            out["separator"] = self.separator
        return out

    @property
    def is_default(self) -> bool:
        return not self.to_json()

    def over(self, base: PromptOptions) -> PromptOptions:
        """These options where they are set, `base`'s elsewhere (a run's over a task's)."""
        return PromptOptions(self.chat_template if self.chat_template != AUTO else base.chat_template,
                             self.start_token if self.start_token != AUTO else base.start_token,
                             self.separator if self.separator is not None else base.separator)


def parse_separator(text: str | None) -> str | None:
    """A separator typed on a command line: `\\n`, `\\t` and `\\\\` stand for newline, tab, backslash."""
    if text is None:
        return None
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in "nt\\":
            out.append({"n": "\n", "t": "\t", "\\": "\\"}[text[i + 1]])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def task_options(task: Task) -> PromptOptions:
    """The prompt options a task declares (its `chat_template`, `start_token`, `separator`)."""
    try:
        return PromptOptions(task.chat_template, task.start_token, task.separator)
    except TransferlabError as err:
        raise TransferlabError(f"task {task.name!r}: {err}") from None


def effective_options(task: Task, options: PromptOptions | None = None) -> PromptOptions:
    """A run's options over the task's own."""
    return (options or PromptOptions()).over(task_options(task))


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


@dataclass(frozen=True)
class Rendered:
    """One example as the model sees it: the context, and what separates it from an answer."""

    context: str
    separator: str = ""

    @property
    def generation_context(self) -> str:
        """What a generation (or a training target) continues: the context and the separator."""
        return self.context + self.separator

    def continuations(self, choices: Sequence[str]) -> list[str]:
        """The scored texts of the choices: each one after the separator."""
        return [self.separator + c for c in choices]


def _uses_chat_template(tokenizer: Any, setting: str) -> bool:
    if setting == "on" and not has_chat_template(tokenizer):
        raise TransferlabError("chat_template on: this model's tokenizer has no chat template: use chat_template "
                               "off or auto")
    return setting == "on" or (setting == AUTO and has_chat_template(tokenizer))


def _start(text: str, tokenizer: Any, setting: str, chat: bool) -> str:
    """`text` with the start token as `setting` says (auto: plain text gets it, a template decides)."""
    bos = getattr(tokenizer, "bos_token", None) or ""
    if setting == "on" and not bos:
        raise TransferlabError("start_token on: this model's tokenizer has no start (BOS) token: use start_token "
                               "off or auto")
    if setting == "off":
        return text[len(bos):] if bos and text.startswith(bos) else text
    if chat and (setting == AUTO or text.startswith(bos)):
        return text  # what the template wrote (on: it already starts with the token)
    return bos + text


def render(task: Task, example: Example, tokenizer: Any, template: str = DEFAULT_TEMPLATE,
           options: PromptOptions | None = None) -> Rendered:
    """The context of `example` (system prompt, few-shot turns, the question framed by `template`)
    and its separator, under the task's prompt options with the run's `options` over them."""
    frame = get_template(template).frame
    opts = effective_options(task, options)
    shots = [s for s in task.fewshot_examples() if s.uid != example.uid]
    chat = _uses_chat_template(tokenizer, opts.chat_template)
    if chat:
        messages: list[dict[str, str]] = []
        if task.system_prompt:
            messages.append({"role": "system", "content": task.system_prompt})
        for shot in shots:
            messages.append({"role": "user", "content": frame(shot.prompt)})
            messages.append({"role": "assistant", "content": shot.target})
        messages.append({"role": "user", "content": frame(example.prompt)})
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return Rendered(_start(text, tokenizer, opts.start_token, chat=True), opts.separator or "")
    # Without a chat template (a base model), plain text; models such as Gemma need their
    # BOS token, which a chat template would have written itself.
    sep = "\n" if opts.separator is None else opts.separator
    parts = [task.system_prompt] if task.system_prompt else []
    parts += [f"{frame(s.prompt)}{sep}{s.target}\n" for s in shots]
    parts.append(frame(example.prompt) + ("\n" if opts.separator is None else ""))
    return Rendered(_start("\n".join(parts), tokenizer, opts.start_token, chat=False), opts.separator or "")


def render_context(task: Task, example: Example, tokenizer: Any, template: str = DEFAULT_TEMPLATE,
                   options: PromptOptions | None = None) -> str:
    """The text the model sees before its answer (what a generation or a training target continues)."""
    return render(task, example, tokenizer, template, options).generation_context


def choice_requests(task: Task, example: Example, tokenizer: Any, template: str = DEFAULT_TEMPLATE,
                    options: PromptOptions | None = None) -> list[tuple[str, str]]:
    """(context, continuation) for every choice of a multiple-choice example: what log-likelihood scores."""
    rendered = render(task, example, tokenizer, template, options)
    return [(rendered.context, c) for c in rendered.continuations(example.choices)]


def end_of_turn(tokenizer: Any) -> str:
    """What closes an assistant answer: the end-of-turn token, so trained models learn to stop."""
    return tokenizer.eos_token or ""
