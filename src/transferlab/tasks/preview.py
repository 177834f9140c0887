"""`transferlab tasks preview`: the exact string and tokens a model sees (registered by `cli`).

    transferlab tasks preview mmlu-anatomy --n 1                       # the task's prompt, choices, target
    transferlab tasks preview mmlu-anatomy --model smollm2-135m        # rendered as the model sees it
    transferlab tasks preview my-mmlu -I my-mmlu.yaml --model smollm2-135m \\
        --chat-template off --start-token off --separator ' '          # lm-eval's plain-text request
    transferlab tasks preview cities --model smollm2-135m --json       # one JSON record per example

With a model, each example shows its context (as text, JSON-escaped so every space and
newline is visible, token ids and tokens) and each scored continuation the same way, or
for a generation task the context the model continues. Only the tokenizer is loaded.
The prompt options (`--chat-template`, `--start-token`, `--separator`, shared with
`transferlab evaluate`) are those of `tasks.prompts.PromptOptions`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from transferlab.errors import TransferlabError
from transferlab.tasks.prompts import PromptOptions, parse_separator

ChatTemplateOpt = typer.Option(None, "--chat-template", help="on, off or auto: wrap the prompt in the model's chat "
                                                            "template [default: the task's, else auto].")
StartTokenOpt = typer.Option(None, "--start-token", help="on, off or auto: the start-of-text (BOS) token at the "
                                                        "start [default: the task's, else auto].")
SeparatorOpt = typer.Option(None, "--separator", help="The text between the context and the answer, scored with "
                                                      "each choice, e.g. ' ' (\\n and \\t are read as newline and "
                                                      "tab) [default: the task's, else auto].")


def options_from_cli(chat_template: str | None, start_token: str | None, separator: str | None) -> PromptOptions:
    """The run's prompt options from the command line (unset options stay auto)."""
    return PromptOptions(chat_template or "auto", start_token or "auto", parse_separator(separator))


def load_tokenizer(model: str) -> Any:
    """A model's tokenizer alone (no weights), as `models.load` sets it up."""
    from transformers import AutoTokenizer

    from transferlab.models import model_dir, resolve

    ref = resolve(model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir(ref))
    except OSError as err:
        raise TransferlabError(f"cannot load the tokenizer of {ref.name!r}: {str(err).splitlines()[0]}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _tokens(tokenizer: Any, text: str) -> dict[str, Any]:
    from transferlab.evaluate import encode

    ids = encode(tokenizer, text)
    return {"text": text, "ids": ids, "tokens": tokenizer.convert_ids_to_tokens(ids)}


def preview_record(task: Any, example: Any, tokenizer: Any, options: PromptOptions,
                   template: str = "default") -> dict[str, Any]:
    """What the model sees for one example: the context and each continuation, as text, ids and tokens."""
    from transferlab.tasks.prompts import effective_options, render

    rendered = render(task, example, tokenizer, template, options)
    record: dict[str, Any] = {"uid": example.uid, "prompt_options": effective_options(task, options).to_json()}
    if task.output_type == "multiple_choice":
        record["context"] = _tokens(tokenizer, rendered.context)
        record["continuations"] = [_tokens(tokenizer, c) for c in rendered.continuations(example.choices)]
        record["answer"] = example.answer
    else:
        record["context"] = _tokens(tokenizer, rendered.generation_context)
        record["continuations"] = []
    record["target"] = example.target
    return record


def _print(out: Console, record: dict[str, Any]) -> None:
    def show(label: str, part: dict[str, Any]) -> None:
        out.print(f"{label}: {json.dumps(part['text'], ensure_ascii=False)}", markup=False, highlight=False,
                  soft_wrap=True)
        out.print(f"  ids ({len(part['ids'])}): {part['ids']}", markup=False, highlight=False, soft_wrap=True)
        out.print(f"  tokens: {part['tokens']}", markup=False, highlight=False, soft_wrap=True)

    context = record["context"]
    out.print(f"context as text ({len(context['text'])} characters, {len(context['ids'])} tokens):", markup=False)
    out.print(context["text"], markup=False, highlight=False)
    show("context", context)
    for i, part in enumerate(record["continuations"]):
        show(f"continuation {i}{' (answer)' if i == record.get('answer') else ''}", part)
    out.print(f"target: {record['target']!r}", markup=False, highlight=False)


def tasks_preview(name: str, split: str = typer.Option("test", help="train, dev or test."),
                  n: int = typer.Option(2, min=0, help="How many examples."),
                  model: Optional[str] = typer.Option(None, help="Render as this model sees it: its chat template "
                                                                 "and tokenizer (token ids and tokens)."),
                  chat_template: Optional[str] = ChatTemplateOpt, start_token: Optional[str] = StartTokenOpt,
                  separator: Optional[str] = SeparatorOpt,
                  template: str = typer.Option("default", help="The prompt template framing each question."),
                  as_json: bool = typer.Option(False, "--json", help="One JSON record per example (needs --model)."),
                  include: Optional[list[Path]] = typer.Option(None, "--include", "-I",
                                                               help="A YAML task file to register (repeatable).")
                  ) -> None:
    """Show the first examples of a split as the model sees them: exact text and tokens."""
    from transferlab.tasks import get_task
    from transferlab.tasks.prompts import get_template
    from transferlab.tasks.yaml_task import register_task_file

    options = options_from_cli(chat_template, start_token, separator)
    get_template(template)
    if not model and (not options.is_default or as_json or template != "default"):
        raise TransferlabError("the rendering depends on the model's tokenizer: give --model with --chat-template, "
                               "--start-token, --separator, --template or --json")
    for path in include or []:
        register_task_file(path)
    task = get_task(name)
    out = Console()
    tokenizer = load_tokenizer(model) if model else None
    for e in task.examples(split)[:n]:
        if tokenizer is None:
            out.rule(f"{name} / {split} / {e.uid}")
            out.print(e.prompt, markup=False, highlight=False)
            if e.choices:
                out.print(f"choices: {list(e.choices)}  answer: {e.answer}", markup=False)
            out.print(f"target: {e.target!r}", markup=False, highlight=False)
            continue
        record = preview_record(task, e, tokenizer, options, template)
        if as_json:
            typer.echo(json.dumps(record, ensure_ascii=False))
        else:
            out.rule(f"{name} / {split} / {e.uid}")
            _print(out, record)
