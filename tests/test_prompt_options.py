"""Prompts stated exactly: chat template, start token and separator, per task and per run.

The defaults must render byte for byte what was rendered before the options existed (and keep
every fingerprint); `chat_template off, start_token off, separator " "` must give
lm-evaluation-harness's request for an MMLU row: context "<description>\\n\\n<question>\\nA. ..
\\nAnswer:" and continuation " A", token for token (lm-eval's `_encode_pair`).
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tiny_models import make_tokenizer
from toy_tasks import Comparison, Echo
from transferlab.errors import TransferlabError
from transferlab.evaluate import encode, evaluate_task, loglikelihood
from transferlab.tasks.base import stable_hash
from transferlab.tasks.prompts import (TEMPLATES, PromptOptions, choice_requests, get_template, parse_separator,
                                       render, render_context)
from transferlab.tasks.yaml_task import load_task_file


class Shots(Comparison):
    """A choice task with a system prompt and few-shot turns: every part an option could touch."""

    name = "toy-compare-shots"
    system_prompt = "Compare the numbers."
    num_fewshot = 2


class PlainShots(Shots):
    """The same task declaring lm-eval's plain-text format itself (task-level options)."""

    name = "toy-compare-plain"
    chat_template = "off"
    start_token = "off"
    separator = " "


def before_options(task, example, tokenizer, template="default") -> str:
    """`render_context` as it was before the prompt options (copied from the previous version)."""
    frame = get_template(template).frame
    shots = [s for s in task.fewshot_examples() if s.uid != example.uid]
    if getattr(tokenizer, "chat_template", None):
        messages = []
        if task.system_prompt:
            messages.append({"role": "system", "content": task.system_prompt})
        for shot in shots:
            messages.append({"role": "user", "content": frame(shot.prompt)})
            messages.append({"role": "assistant", "content": shot.target})
        messages.append({"role": "user", "content": frame(example.prompt)})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    parts = [task.system_prompt] if task.system_prompt else []
    parts += [f"{frame(s.prompt)}\n{s.target}\n" for s in shots]
    parts.append(f"{frame(example.prompt)}\n")
    return (getattr(tokenizer, "bos_token", None) or "") + "\n".join(parts)


def tokenizers() -> dict:
    """Chat and plain, each with and without a start token; `bos-chat` writes its own, as SmolLM2's does."""
    out = {}
    for kind in ("chat", "plain", "bos-chat", "bos-plain", "bos-chat-writes"):
        tok = make_tokenizer()
        if kind.startswith("bos"):
            tok.add_special_tokens({"bos_token": "<s>"})
        if kind == "bos-chat-writes":
            tok.chat_template = "<s>" + tok.chat_template
        if "plain" in kind:
            tok.chat_template = None
        out[kind] = tok
    return out


TOKENIZERS = tokenizers()


# ---- the defaults are what was rendered before -------------------------------------------
@pytest.mark.parametrize("template", list(TEMPLATES))
@pytest.mark.parametrize("kind", list(TOKENIZERS))
@pytest.mark.parametrize("task", [Shots(), Comparison(), Echo()], ids=lambda t: t.name)
def test_defaults_render_byte_for_byte_what_was_rendered_before(task, kind, template):
    tokenizer = TOKENIZERS[kind]
    for example in task.examples("test")[:4]:
        old = before_options(task, example, tokenizer, template)
        for options in (None, PromptOptions(), PromptOptions("auto", "auto", None)):
            assert render_context(task, example, tokenizer, template, options) == old
        if task.output_type == "multiple_choice":  # each choice scored alone after that context
            assert choice_requests(task, example, tokenizer, template) == [(old, c) for c in example.choices]


def test_default_options_leave_fingerprints_and_keys_alone():
    task = Shots()
    data = stable_hash([(e.uid, e.prompt, e.target, e.choices, e.answer) for e in task.all_examples()])
    before = stable_hash(task.name, task.version, task.system_prompt, task.num_fewshot, task.max_new_tokens,
                         task.stop, task.split_fractions, data)  # the fingerprint as it was computed before
    assert task.fingerprint() == before
    assert PromptOptions().to_json() == {} and PromptOptions().is_default
    changed = {PlainShots().fingerprint()}
    for field, value in (("chat_template", "off"), ("start_token", "on"), ("separator", " "), ("separator", "")):
        variant = Shots()
        setattr(variant, field, value)
        changed.add(variant.fingerprint())
    assert before not in changed and len(changed) == 5  # every non-default setting is a new fingerprint


# ---- each option --------------------------------------------------------------------------
def test_chat_template_off_renders_plain_text_and_on_needs_a_template():
    task, tok = Shots(), TOKENIZERS["chat"]
    e = task.examples("test")[0]
    assert render_context(task, e, tok, options=PromptOptions(chat_template="off")) == \
        before_options(task, e, TOKENIZERS["plain"])
    assert render_context(task, e, tok, options=PromptOptions(chat_template="on")) == before_options(task, e, tok)
    with pytest.raises(TransferlabError, match="chat_template on: this model's tokenizer has no chat template"):
        render(task, e, TOKENIZERS["plain"], options=PromptOptions(chat_template="on"))


@pytest.mark.parametrize("kind", ["bos-plain", "bos-chat", "bos-chat-writes"])
def test_start_token_on_is_exactly_one_and_off_is_none(kind):
    task, tok = Comparison(), TOKENIZERS[kind]
    e = task.examples("test")[0]
    on = render_context(task, e, tok, options=PromptOptions(start_token="on"))
    off = render_context(task, e, tok, options=PromptOptions(start_token="off"))
    assert on.startswith("<s>") and not on.startswith("<s><s>") and not off.startswith("<s>")
    assert on == "<s>" + off
    assert encode(tok, on)[0] == tok.bos_token_id and tok.bos_token_id not in encode(tok, off)
    with pytest.raises(TransferlabError, match="start_token on: this model's tokenizer has no start"):
        render(task, e, TOKENIZERS["plain"], options=PromptOptions(start_token="on"))


def test_separator_leads_each_choice_ends_generation_contexts_and_joins_shots():
    tok = TOKENIZERS["plain"]
    task, gen = Shots(), Echo()
    e = task.examples("test")[0]
    requests = choice_requests(task, e, tok, options=PromptOptions(separator=" "))
    context = requests[0][0]
    assert [c for _, c in requests] == [" True", " False"] and context.endswith(e.prompt)
    shots = [s for s in task.fewshot_examples() if s.uid != e.uid]
    assert context == "\n".join([task.system_prompt, *(f"{s.prompt} {s.target}\n" for s in shots), e.prompt])
    g = gen.examples("test")[0]
    assert render_context(gen, g, tok, options=PromptOptions(separator=" => ")) == f"{g.prompt} => "
    chat = render(task, e, TOKENIZERS["chat"], options=PromptOptions(separator=" "))
    assert chat.context == before_options(task, e, TOKENIZERS["chat"]) and chat.continuations(["A"]) == [" A"]


def test_run_options_win_over_the_task_and_auto_keeps_the_task():
    task, tok = PlainShots(), TOKENIZERS["bos-chat"]
    e = task.examples("test")[0]
    lm_eval_style = choice_requests(task, e, tok)  # the task's own: plain, no BOS, " " separator
    assert not lm_eval_style[0][0].startswith("<s>") and "<|user|>" not in lm_eval_style[0][0]
    assert lm_eval_style[0][1] == " True"
    back = choice_requests(task, e, tok, options=PromptOptions(chat_template="on", start_token="auto"))
    assert "<|user|>" in back[0][0] and not back[0][0].startswith("<s>")  # start_token: the task's off stays
    assert back[0][1] == " True"  # the separator stays the task's


def test_bad_values_are_one_line_errors():
    for bad, message in (({"chat_template": "sometimes"}, "chat_template must be one of auto, on, off"),
                         ({"start_token": 1}, "start_token must be one of auto, on, off"),
                         ({"separator": 3}, "separator must be a string"),
                         ({"seperator": " "}, "did you mean 'separator'")):
        with pytest.raises(TransferlabError, match=message):
            PromptOptions.from_json(bad)
    assert PromptOptions.from_json({"chat_template": False, "start_token": True}).to_json() == {
        "chat_template": "off", "start_token": "on"}  # YAML 1.1's off / on
    assert parse_separator("\\n") == "\n" and parse_separator(" ") == " " and parse_separator("a\\\\b") == "a\\b"


def test_spec_prompt_field_parses_and_errors_point_at_the_line():
    from transferlab.engine.spec import SpecError
    from transferlab.transfer.spec import parse_spec

    base = "name: t\nmodels: [smollm2-135m]\ntasks: [cities, larger_than]\nsimilarity: []\n"
    assert parse_spec(base, "s.yaml").prompt.is_default
    spec = parse_spec(base + "prompt: {chat_template: off, start_token: off, separator: ' '}\n", "s.yaml")
    assert spec.prompt == PromptOptions("off", "off", " ")
    with pytest.raises(SpecError, match=r"s.yaml:6: prompt.separater: unknown field 'separater'"):
        parse_spec(base + "prompt:\n  separater: ' '\n", "s.yaml")
    with pytest.raises(SpecError, match=r"s.yaml:6: prompt.chat_template: chat_template must be one of"):
        parse_spec(base + "prompt:\n  chat_template: never\n", "s.yaml")


def test_yaml_task_options(tmp_path):
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"q": f"{i} > 3?", "y": int(i > 3)}) + "\n" for i in range(9)))
    path = tmp_path / "t.yaml"
    path.write_text('name: yes-no\nsource: {path: d.jsonl}\nprompt: "{{ q }}\\nAnswer:"\nchoices: ["no", "yes"]\n'
                    'answer: y\nchat_template: off\nstart_token: off\nseparator: " "\n')
    task = load_task_file(path)
    assert (task.chat_template, task.start_token, task.separator) == ("off", "off", " ")
    e = task.all_examples()[0]
    assert choice_requests(task, e, TOKENIZERS["bos-chat"]) == [("0 > 3?\nAnswer:", " no"), ("0 > 3?\nAnswer:", " yes")]
    path.write_text(path.read_text().replace("start_token: off", "start_token: maybe"))
    with pytest.raises(TransferlabError, match=r"t.yaml: start_token must be one of auto, on, off, got 'maybe'"):
        load_task_file(path)


# ---- the options reach scoring and generation ---------------------------------------------
def test_evaluation_scores_and_records_the_exact_requests(tiny):
    options = PromptOptions(chat_template="off", separator=" ")
    task = Comparison()
    examples = task.examples("test")[:6]
    result = evaluate_task(tiny.model, tiny.tokenizer, task, examples, prompt=options)
    requests = [choice_requests(task, e, tiny.tokenizer, options=options) for e in examples]
    assert result.contexts == [r[0][0] for r in requests]
    assert result.continuations == [[c for _, c in r] for r in requests]
    expected = loglikelihood(tiny.model, tiny.tokenizer, [p for r in requests for p in r])
    assert [lp for lps in result.choice_logprobs for lp in lps] == pytest.approx(expected, abs=1e-5)
    record = result.to_json()
    assert record["prompt"] == {"chat_template": "off", "separator": " "}
    assert record["targets"] == [e.target for e in examples] and record["answers"] == [e.answer for e in examples]
    default = evaluate_task(tiny.model, tiny.tokenizer, task, examples).to_json()
    assert "prompt" not in default and default["contexts"][0].startswith("<|user|>")
    echo = Echo()
    gen = evaluate_task(tiny.model, tiny.tokenizer, echo, echo.examples("test")[:3], prompt=options)
    assert gen.contexts == [f"{e.prompt} " for e in echo.examples("test")[:3]]
    assert gen.to_json()["targets"] == [e.target for e in echo.examples("test")[:3]] and "answers" not in gen.to_json()


def tiny_model_dir(tmp_path):
    from transferlab.models import tiny_llama

    tokenizer = make_tokenizer()
    tiny_llama(vocab_size=len(tokenizer), seed=0).save_pretrained(tmp_path / "tiny", safe_serialization=True)
    tokenizer.save_pretrained(tmp_path / "tiny")
    return tmp_path / "tiny"


def test_evaluate_command_takes_the_options(tmp_path, one_thread):
    from transferlab.cli import app

    model = tiny_model_dir(tmp_path)
    saved = tmp_path / "e.json"
    result = CliRunner().invoke(app, ["evaluate", "larger_than", "--model", str(model), "--limit", "4",
                                      "--device", "cpu", "--chat-template", "off", "--separator", " ",
                                      "--bootstrap", "20", "--save", str(saved)])
    assert result.exit_code == 0, result.output
    record = json.loads(saved.read_text())
    assert record["prompt"] == {"chat_template": "off", "separator": " "}
    assert all(not c.startswith("<|") and not c.endswith("\n") for c in record["contexts"])
    assert all(c[0] == " " for conts in record["continuations"] for c in conts)
    bad = CliRunner().invoke(app, ["evaluate", "larger_than", "--model", str(model), "--limit", "2", "--device", "cpu",
                                   "--start-token", "on"])
    assert bad.exit_code != 0 and "start_token on: this model's tokenizer has no start (BOS) token" in str(bad.exception)


# ---- lm-eval's MMLU request, string for string and token for token ------------------------
LM_EVAL_MMLU_PROMPT = ("The following are multiple choice questions (with answers) about {{ topic }}.\\n\\n"
                       "{{ question.strip() }}\\nA. {{ answer_a }}\\nB. {{ answer_b }}\\nC. {{ answer_c }}\\n"
                       "D. {{ answer_d }}\\nAnswer:")


def mmlu_rows(n: int = 20) -> list[dict]:
    from transferlab.packages import package_file
    from transferlab.tasks.mmlu import DATA_FILE, DISTRIBUTION, INSTALL

    rows = []
    with package_file(DISTRIBUTION, DATA_FILE, INSTALL).open(encoding="utf-8") as lines:
        for text in lines:
            row = json.loads(text)
            if row.get("question") != "question" and row["topic"] == "anatomy":
                rows.append(row)
            if len(rows) == n:
                return rows
    return rows


def lm_eval_request(row: dict) -> tuple[str, list[str]]:
    """lm-eval 0.4's mmlu_anatomy, zero-shot: description + doc_to_text, then target_delimiter + choice
    (`lm_eval/tasks/mmlu/default/_default_template_yaml` and `mmlu_anatomy.yaml`)."""
    description = f"The following are multiple choice questions (with answers) about {row['topic']}.\n\n"
    text = (f"{row['question'].strip()}\nA. {row['answer_a']}\nB. {row['answer_b']}\nC. {row['answer_c']}\n"
            f"D. {row['answer_d']}\nAnswer:")
    return description + text, [" A", " B", " C", " D"]


def lm_eval_encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-eval's HFLM._encode_pair: trailing context spaces move to the continuation, the pair is
    encoded whole and split at the context's length (no special tokens for a causal model)."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    return ctx, whole[len(ctx):]


def mmlu_task(tmp_path, options: str = ""):
    rows = mmlu_rows()
    (tmp_path / "anatomy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "anatomy.yaml").write_text(f'name: lm-eval-anatomy\nsource: {{path: anatomy.jsonl}}\n'
                                           f'prompt: "{LM_EVAL_MMLU_PROMPT}"\nchoices: [A, B, C, D]\n'
                                           f'answer: correct_answer\n{options}')
    return load_task_file(tmp_path / "anatomy.yaml"), rows


@pytest.mark.parametrize("where", ["run", "task"])
def test_plain_no_start_token_space_separator_is_lm_evals_mmlu_request(tmp_path, where):
    task, rows = mmlu_task(tmp_path, "chat_template: off\nstart_token: off\nseparator: ' '\n" if where == "task" else "")
    options = PromptOptions("off", "off", " ") if where == "run" else None
    by_question = {r["question"].strip(): r for r in rows}
    examples = task.all_examples()
    assert len(examples) == len(rows) == 20
    for e in examples:
        row = by_question[e.prompt.split("\n\n", 1)[1].split("\nA. ")[0]]
        context, continuations = lm_eval_request(row)
        assert choice_requests(task, e, TOKENIZERS["bos-chat"], options=options) == [(context, c) for c in continuations]
    assert choice_requests(task, examples[0], TOKENIZERS["bos-chat"])[0][1] == ("A" if where == "run" else " A")


@pytest.mark.integration
def test_smollm2_sees_lm_evals_tokens(tmp_path):
    from transferlab.tasks.preview import load_tokenizer

    task, rows = mmlu_task(tmp_path)
    tokenizer = load_tokenizer("smollm2-135m")
    options = PromptOptions("off", "off", " ")
    differs_by_default = 0
    for e in task.all_examples():
        for context, continuation in choice_requests(task, e, tokenizer, options=options):
            assert (encode(tokenizer, context), encode(tokenizer, continuation)) == \
                lm_eval_encode_pair(tokenizer, context, continuation)
        context, continuation = choice_requests(task, e, tokenizer)[0]  # defaults: the chat template
        differs_by_default += encode(tokenizer, context)[0] == tokenizer.bos_token_id and "<|im_start|>user" in context
    assert differs_by_default == 20
    from transferlab.cli import app

    shown = CliRunner().invoke(app, ["tasks", "preview", "lm-eval-anatomy", "-I", str(tmp_path / "anatomy.yaml"),
                                     "--model", "smollm2-135m", "--chat-template", "off", "--start-token", "off",
                                     "--separator", " ", "--json", "--n", "1", "--split", "test"])
    assert shown.exit_code == 0, shown.output
    record = json.loads(shown.output.splitlines()[0])
    example = next(e for e in task.examples("test"))
    context, continuations = lm_eval_request(by_prompt(rows, example))
    assert record["context"]["text"] == context
    assert record["context"]["ids"] == lm_eval_encode_pair(tokenizer, context, " A")[0]
    assert [c["text"] for c in record["continuations"]] == continuations
    assert record["continuations"][0]["tokens"] == ["ĠA"] and record["continuations"][0]["ids"] == \
        lm_eval_encode_pair(tokenizer, context, " A")[1]


def by_prompt(rows: list[dict], example) -> dict:
    question = example.prompt.split("\n\n", 1)[1].split("\nA. ")[0]
    return next(r for r in rows if r["question"].strip() == question)


def test_preview_prints_exact_text_and_tokens(tmp_path):
    from transferlab.cli import app

    model = tiny_model_dir(tmp_path)
    runner = CliRunner()
    shown = runner.invoke(app, ["tasks", "preview", "larger_than", "--model", str(model), "--n", "1",
                                "--chat-template", "off", "--separator", " "])
    assert shown.exit_code == 0, shown.output
    assert "context: " in shown.output and "continuation 0" in shown.output and "tokens: [" in shown.output
    as_json = runner.invoke(app, ["tasks", "preview", "larger_than", "--model", str(model), "--n", "2", "--json"])
    records = [json.loads(line) for line in as_json.output.splitlines()]
    tok = make_tokenizer()
    from transferlab.tasks import get_task

    task = get_task("larger_than")
    for record, e in zip(records, task.examples("test")[:2]):
        assert record["context"]["text"] == render_context(task, e, tok)  # the defaults: chat template
        assert record["context"]["ids"] == encode(tok, record["context"]["text"])
        assert [c["text"] for c in record["continuations"]] == list(e.choices)
    needs_model = runner.invoke(app, ["tasks", "preview", "larger_than", "--separator", " "])
    assert needs_model.exit_code != 0 and "give --model" in str(needs_model.exception)


def test_generation_uses_the_separator(tiny):
    task = Echo()
    examples = task.examples("test")[:2]
    options = PromptOptions(chat_template="off", separator=": ")
    out = evaluate_task(tiny.model, tiny.tokenizer, task, examples, prompt=options, max_new_tokens=3)
    from transferlab.evaluate import generate

    direct = generate(tiny.model, tiny.tokenizer, [f"{e.prompt}: " for e in examples], max_new_tokens=3)
    assert out.outputs == direct and out.contexts == [f"{e.prompt}: " for e in examples]


def test_mixed_adapter_pass_takes_the_options(tiny):
    from transferlab.multi_adapter import evaluate_many

    options = PromptOptions(chat_template="off", separator=" ")
    for task in (Comparison(), Echo()):
        examples = task.examples("test")[:4]
        (many,) = evaluate_many(tiny.model, tiny.tokenizer, task, examples, [None], prompt=options, max_new_tokens=3)
        alone = evaluate_task(tiny.model, tiny.tokenizer, task, examples, prompt=options, max_new_tokens=3)
        assert many.contexts == alone.contexts and many.continuations == alone.continuations
        assert many.prompt == alone.prompt == options.to_json() and many.outputs == alone.outputs
        for a, b in zip(many.choice_logprobs, alone.choice_logprobs):
            assert a == pytest.approx(b, abs=1e-5)


# ---- a spec's `prompt:` reaches every evaluation, its key and the record -------
def test_spec_prompt_reaches_the_plan_the_key_and_the_record(tmp_path, one_thread):
    from transferlab.engine.adapter_jobs import evaluate_key
    from transferlab.engine.store import Store
    from transferlab.transfer.plan import plan_transfer
    from transferlab.transfer.spec import parse_spec
    from transferlab.transfer.study import run_study

    parts = ("model@abc", "adapter1", "fp123", "test", 40, 64)
    assert evaluate_key(*parts, prompt={}) == evaluate_key(*parts) == stable_hash("evaluate", *parts)
    assert evaluate_key(*parts, prompt={"separator": " "}) != evaluate_key(*parts)
    model = tiny_model_dir(tmp_path)
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"q": f"{i} > 3?", "y": int(i > 3)}) + "\n" for i in range(30)))
    (tmp_path / "yn.yaml").write_text('name: spec-yes-no\nsource: {path: d.jsonl}\nprompt: "{{ q }}\\nAnswer:"\n'
                                      'choices: ["no", "yes"]\nanswer: y\n')
    text = (f"name: p\nmodels: [{model}]\ntasks: [spec-yes-no]\ntask_files: [yn.yaml]\nconditions: [baseline]\n"
            f"similarity: []\nbootstrap: 20\ndevice: cpu\noutput: {tmp_path / 'run'}\n")
    plain = plan_transfer(parse_spec(text, str(tmp_path / "s.yaml")))
    spec = parse_spec(text + "prompt: {chat_template: off, separator: ' '}\n", str(tmp_path / "s.yaml"))
    stated = plan_transfer(spec)
    assert all("prompt" not in j.params for j in plain.jobs)
    assert [j.params["prompt"] for j in stated.jobs] == [{"chat_template": "off", "separator": " "}]
    assert {j.key for j in stated.jobs}.isdisjoint(j.key for j in plain.jobs)
    _, report, where = run_study(spec, quiet=True)
    assert not report.failed
    record = Store(where).read_json("evaluation", stated.jobs[0].key, "evaluation.json")
    assert record["prompt"] == {"chat_template": "off", "separator": " "}
    assert all(c.endswith("\nAnswer:") for c in record["contexts"])
    assert record["continuations"][0] == [" no", " yes"]
