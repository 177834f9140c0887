"""Seed 002's secondary metrics: compute efficiency (gain per training token and FLOP) and
robustness to prompt templates (spread of the gain, and whether its sign survives)."""

from __future__ import annotations

import json
import math

import pytest

from tiny_models import make_tokenizer
from toy_tasks import Comparison, Echo
from transferlab.engine.adapter_jobs import evaluate_key
from transferlab.engine.spec import SpecError
from transferlab.engine.store import POOLED, ResultRow, Store
from transferlab.errors import TransferlabError
from transferlab.tasks import stable_hash
from transferlab.tasks.prompts import TEMPLATES, get_template, render_context
from transferlab.transfer.efficiency import TrainingCost, efficiency_rows, training_cost
from transferlab.transfer.robustness import robustness_rows, same_direction, sign_survives
from transferlab.transfer.spec import parse_spec


class Shots(Comparison):
    """A choice task with a system prompt and few-shot turns: every part a template could touch."""

    name = "toy-compare-shots"
    system_prompt = "Compare the numbers."
    num_fewshot = 2


def _before_templates(task, example, tokenizer) -> str:
    """`render_context` as it was before templates existed (copied verbatim): the default must equal it."""
    shots = [s for s in task.fewshot_examples() if s.uid != example.uid]
    if getattr(tokenizer, "chat_template", None):
        messages = []
        if task.system_prompt:
            messages.append({"role": "system", "content": task.system_prompt})
        for shot in shots:
            messages.append({"role": "user", "content": shot.prompt})
            messages.append({"role": "assistant", "content": shot.target})
        messages.append({"role": "user", "content": example.prompt})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    parts = [task.system_prompt] if task.system_prompt else []
    parts += [f"{s.prompt}\n{s.target}\n" for s in shots]
    parts.append(f"{example.prompt}\n")
    return (getattr(tokenizer, "bos_token", None) or "") + "\n".join(parts)


def _tokenizers():
    chat = make_tokenizer()
    plain = make_tokenizer()
    plain.chat_template = None
    return {"chat": chat, "plain": plain}


# ---- templates -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["chat", "plain"])
@pytest.mark.parametrize("task", [Shots(), Comparison(), Echo()], ids=lambda t: t.name)
def test_default_template_renders_exactly_what_render_context_did(task, kind):
    tokenizer = _tokenizers()[kind]
    for example in task.examples("test")[:5]:
        old = _before_templates(task, example, tokenizer)
        assert render_context(task, example, tokenizer) == old
        assert render_context(task, example, tokenizer, "default") == old


@pytest.mark.parametrize("kind", ["chat", "plain"])
@pytest.mark.parametrize("task", [Shots(), Echo()], ids=lambda t: t.name)
def test_each_template_renders_differently_and_keeps_the_question(task, kind):
    tokenizer = _tokenizers()[kind]
    example = task.examples("test")[0]
    rendered = {name: render_context(task, example, tokenizer, name) for name in TEMPLATES}
    assert len(TEMPLATES) >= 3 and len(set(rendered.values())) == len(TEMPLATES)
    for text in rendered.values():
        assert example.prompt in text
        if task.system_prompt:
            assert text.count(task.system_prompt) == 1  # the system prompt is never framed
    # few-shot questions are framed like the evaluated one
    assert rendered["qa"].count("Question: ") == 1 + task.num_fewshot
    if kind == "plain":  # every choice is scored after the same boundary
        assert all(text.endswith("\n") for text in rendered.values())


def test_unknown_template_is_an_error_listing_the_known_ones():
    with pytest.raises(TransferlabError) as err:
        get_template("chatty")
    assert "chatty" in str(err.value) and all(name in str(err.value) for name in TEMPLATES)


def test_evaluate_key_is_unchanged_for_the_default_template():
    parts = ("model@abc", "adapter1", "fp123", "test", 40, 64)
    before = stable_hash("evaluate", *parts)  # the key evaluations were stored under before templates
    assert evaluate_key(*parts) == before
    assert evaluate_key(*parts, template="default") == before
    others = {evaluate_key(*parts, template=t) for t in TEMPLATES if t != "default"}
    assert before not in others and len(others) == len(TEMPLATES) - 1


SPEC = """\
name: t
models: [smollm2-135m]
tasks: [cities, larger_than]
similarity: []
"""


def test_bad_template_name_is_a_one_line_spec_error():
    with pytest.raises(SpecError) as err:
        parse_spec(SPEC + "prompt_templates: [default, qa, instrcut]\n", "s.yaml")
    message = str(err.value)
    assert "\n" not in message and "s.yaml:5" in message and "instrcut" in message
    assert all(name in message for name in TEMPLATES)


def test_templates_default_to_default_and_default_is_always_first():
    assert parse_spec(SPEC, "s.yaml").prompt_templates == ("default",)
    assert parse_spec(SPEC + "prompt_templates: [qa, instruct]\n", "s.yaml").prompt_templates == \
        ("default", "qa", "instruct")
    with pytest.raises(SpecError, match="once"):
        parse_spec(SPEC + "prompt_templates: [qa, qa]\n", "s.yaml")


# ---- sign survival ---------------------------------------------------------------------
def test_sign_survives_only_when_every_ci_excludes_zero_on_one_side():
    assert sign_survives([0.01, 0.2, 0.05], [0.3, 0.4, 0.2]) == 1
    assert sign_survives([-0.3, -0.4, -0.2], [-0.01, -0.2, -0.05]) == -1
    assert sign_survives([0.01, -0.02, 0.05], [0.3, 0.4, 0.2]) == 0  # one template's CI reaches zero
    assert sign_survives([0.01, -0.4], [0.3, -0.1]) == 0  # significant under both, opposite signs
    assert sign_survives([0.1, math.nan], [0.2, math.nan]) == 0
    assert same_direction([0.1, 0.02, 0.3]) and not same_direction([0.1, -0.02]) and not same_direction([0.0, 0.1])


def _gain(metric: str, value: float, low: float, high: float, seed: int = 0, trained_on: str = "a") -> ResultRow:
    return ResultRow("m", "lora", trained_on, "b", "transfer", seed, metric, value, 40, low, high)


def test_robustness_rows_give_the_spread_and_the_sign_verdict():
    rows = [_gain("gain:acc", 0.20, 0.10, 0.30), _gain("template:qa:gain:acc", 0.05, 0.01, 0.09),
            _gain("template:instruct:gain:acc", 0.15, 0.02, 0.28),
            _gain("gain:acc", 0.20, 0.10, 0.30, trained_on="c"), _gain("template:qa:gain:acc", -0.05, -0.2, 0.1,
                                                                       trained_on="c"),
            _gain("template:instruct:gain:acc", 0.15, 0.02, 0.28, trained_on="c"),
            _gain("gain:acc", 0.1, 0.0, 0.2, trained_on="d")]  # d lacks two templates: no verdict
    out = {(r.trained_on, r.metric): r for r in robustness_rows(rows)}
    assert out[("a", "template_spread:gain:acc")].value == pytest.approx(0.15)
    assert out[("a", "template_sign:gain:acc")].value == 1 and out[("a", "template_sign:gain:acc")].n == 3
    assert out[("c", "template_spread:gain:acc")].value == pytest.approx(0.25)
    assert out[("c", "template_sign:gain:acc")].value == 0
    assert not any(k[0] == "d" for k in out)
    assert robustness_rows([r for r in rows if not r.metric.startswith("template:")]) == []  # one template


# ---- compute efficiency ----------------------------------------------------------------
def _adapter(store: Store, key: str, record: dict, lora_shapes: dict | None = None) -> None:
    with store.writing("adapter", key) as out:
        (out / "training.json").write_text(json.dumps(record))
        if lora_shapes:  # a safetensors header is all the fallback reads
            header = json.dumps({k: {"dtype": "F32", "shape": s, "data_offsets": [0, 0]}
                                 for k, s in lora_shapes.items()}).encode()
            (out / "adapter_model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)


def test_gain_per_token_and_per_flop_equal_a_hand_computation(tmp_path):
    store = Store(tmp_path)
    record = {"steps": 3, "tokens": 900, "seconds": 1.0, "losses": [1.0], "processed_tokens": 4000,
              "forward_tokens": 500, "parameters": 1_000_000, "trainable_parameters": 2_000}
    _adapter(store, "ad1", record)
    cost = training_cost(store, "ad1", {}, "some-model")
    flops = 4000 * (4 * 1_000_000 + 6 * 2_000) + 500 * 2 * 1_000_000  # T·(4N + 6 N_lora) + T_fwd·2N
    assert cost.recorded and cost.train_tokens == 4000 and cost.flops == flops
    gain = _gain("gain:acc", 0.1, 0.02, 0.18)
    rows = {r.metric: r for r in efficiency_rows([gain, _gain("acc", 0.6, 0.5, 0.7)],
                                                 {("m", "lora", "a", "b", "transfer", 0): cost})}
    per_token, per_flop = rows["gain_per_mtoken:acc"], rows["gain_per_pflop:acc"]
    assert per_token.value == pytest.approx(0.1 / (4000 / 1e6))
    assert (per_token.ci_low, per_token.ci_high) == pytest.approx((0.02 / 0.004, 0.18 / 0.004))
    assert per_flop.value == pytest.approx(0.1 / (flops / 1e15))
    assert per_flop.ci_high == pytest.approx(0.18 / (flops / 1e15))
    assert rows["train_mtokens:acc"].value == pytest.approx(0.004) and "cost_fallback:acc" not in rows
    assert not any(m.startswith(("gain_per", "train_")) and m.endswith(":acc") and "gain:" in m for m in rows)


def test_old_artifacts_fall_back_to_loss_tokens_and_sequential_adds_its_first_stage(tmp_path):
    from transferlab.engine.estimate import model_parameters

    store = Store(tmp_path)
    _adapter(store, "old", {"steps": 3, "tokens": 900, "seconds": 1.0, "losses": [1.0]},
             {"q.lora_A.weight": [4, 64], "q.lora_B.weight": [64, 4]})
    old = training_cost(store, "old", {}, "smollm2-135m")
    assert not old.recorded and old.train_tokens == 900 and old.trainable == 512
    assert old.parameters == model_parameters("smollm2-135m")
    rows = {r.metric for r in efficiency_rows([_gain("gain:acc", 0.1, 0.0, 0.2)],
                                              {("m", "lora", "a", "b", "transfer", 0): old})}
    assert "cost_fallback:acc" in rows
    _adapter(store, "second", {"steps": 3, "tokens": 10, "seconds": 1.0, "losses": [1.0], "processed_tokens": 100,
                               "forward_tokens": 0, "parameters": 1000, "trainable_parameters": 10})
    _adapter(store, "first", {"steps": 3, "tokens": 20, "seconds": 1.0, "losses": [1.0], "processed_tokens": 300,
                              "forward_tokens": 0, "parameters": 1000, "trainable_parameters": 10})
    both = training_cost(store, "second", {"second": {"init_adapter": "first"}}, "m")
    assert both.train_tokens == 400 and both.flops == 400 * (4 * 1000 + 6 * 10)
    assert training_cost(store, "missing", {}, "m") is None


def test_pooled_gain_is_divided_by_the_mean_cost_of_the_seeds():
    costs = {("m", "lora", "a", "b", "transfer", s): TrainingCost(t, 0, 1000, 10) for s, t in ((0, 1000), (1, 3000))}
    pooled = _gain("gain:acc", 0.2, 0.1, 0.3, seed=POOLED)
    (row,) = [r for r in efficiency_rows([pooled], costs) if r.metric == "gain_per_mtoken:acc"]
    assert row.seed == POOLED and row.value == pytest.approx(0.2 / (2000 / 1e6))


def test_training_records_processed_tokens_and_parameter_counts(tiny, tmp_path):
    from transferlab.learn.sft import TrainConfig, tokenize, train_lora

    task = Comparison()
    examples = task.examples("train")[:8]
    config = TrainConfig(steps=2, batch_size=4, learning_rate=1e-3, rank=2)
    result = train_lora(tiny, task, examples, config, tmp_path / "a")
    rows = tokenize(task, examples, tiny.tokenizer, config.max_seq_len)
    lengths = {len(r[0]) for r in rows}
    assert result.processed_tokens > result.tokens > 0
    assert 2 * 4 * min(lengths) <= result.processed_tokens <= 2 * 4 * max(lengths)
    total = sum(p.numel() for p in tiny.model.parameters())
    assert result.parameters == total and result.trainable_parameters > 0
    record = result.to_json()
    assert record["processed_tokens"] == result.processed_tokens and record["parameters"] == total


# ---- a whole tiny study under three templates ------------------------------------------
TASK_YAML = """\
name: {name}
domain: {name}
output_type: multiple_choice
source: {{path: {name}.jsonl}}
prompt: "{{{{ q }}}}"
choices: ["Y", "N"]
answer: label
"""

STUDY = """\
name: robust
models: [{model}]
tasks: [rb-a, rb-b]
task_files: [rb-a.yaml, rb-b.yaml]
learners:
  - {{name: lora, type: lora, rank: 2, steps: 30, batch_size: 8, learning_rate: 5.0e-2, max_seq_len: 64}}
budgets: {{train_examples: 24, eval_examples: 20}}
similarity: []
bootstrap: 50
device: cpu
output: {out}
"""


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    from transferlab.models import tiny_llama
    from transferlab.transfer.study import run_study

    root = tmp_path_factory.mktemp("robust")
    tokenizer = make_tokenizer()
    tiny_llama(vocab_size=len(tokenizer), seed=0).save_pretrained(root / "tiny", safe_serialization=True)
    tokenizer.save_pretrained(root / "tiny")
    for k, name in enumerate(("rb-a", "rb-b")):
        rows = [{"q": f"{name} {i}? {'N' if (i * (k + 2)) % 3 == 0 else 'Y'}", "label": int((i * (k + 2)) % 3 == 0)}
                for i in range(60)]  # the answer is in the question: the tiny model can learn to copy it
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (root / f"{name}.yaml").write_text(TASK_YAML.format(name=name))
    text = STUDY.format(model=root / "tiny", out=root / "run")
    spec = parse_spec(text + "prompt_templates: [default, qa, instruct]\n", str(root / "spec.yaml"))
    plain = parse_spec(text, str(root / "spec.yaml"))
    plan, report, where = run_study(spec, quiet=True)
    assert not report.failed
    return spec, plain, plan, where


def test_templates_add_evaluations_and_keep_the_default_keys(tiny_study):
    from transferlab.transfer.plan import plan_transfer

    _, plain, plan, _ = tiny_study
    default_only = plan_transfer(plain)
    assert plan.count("evaluate") == 3 * default_only.count("evaluate")
    assert {j.key for j in default_only.jobs} <= {j.key for j in plan.jobs}  # the default's keys are unchanged
    assert [c.evaluation for c in plan.cells] == [c.evaluation for c in default_only.cells]
    assert {c.template for c in plan.variants} == {"qa", "instruct"} and len(plan.variants) == 2 * len(plan.cells)
    framed = [j for j in plan.jobs if j.kind == "evaluate" and "template" in j.params]
    assert all("template" not in j.params for j in default_only.jobs)
    assert {j.params["template"] for j in framed} == {"qa", "instruct"}
    assert "x 3 prompt templates" in plan.describe()


def test_study_writes_template_robustness_and_efficiency_rows(tiny_study):
    _, _, plan, where = tiny_study
    frame = Store(where).results()
    metrics = set(frame.metric)
    for template in ("qa", "instruct"):
        assert {f"template:{template}:acc", f"template:{template}:gain:acc"} <= metrics
    trained = frame[frame.condition.isin(["transfer", "direct"])]
    spread = trained[trained.metric == "template_spread:gain:acc"]
    sign = trained[trained.metric == "template_sign:gain:acc"]
    assert len(spread) == len(sign) == 4 and (spread.n == 3).all() and set(sign.value) <= {-1.0, 0.0, 1.0}
    # the spread is max - min of the three templates' gains of that cell
    cell = spread.iloc[0]
    same = trained[(trained.trained_on == cell.trained_on) & (trained.evaluated_on == cell.evaluated_on)]
    gains = same[same.metric.isin(["gain:acc", "template:qa:gain:acc", "template:instruct:gain:acc"])].value
    assert len(gains) == 3 and cell.value == pytest.approx(gains.max() - gains.min())
    # the default rows are what they were: a template never writes an unprefixed row twice
    assert len(frame[(frame.condition == "baseline") & (frame.metric == "acc")]) == 2
    assert not any(m.startswith("p:template") for m in metrics)


def test_study_efficiency_equals_the_stored_training_cost(tiny_study):
    _, _, plan, where = tiny_study
    store = Store(where)
    frame = store.results()
    row = frame[(frame.metric == "gain:acc") & (frame.condition == "direct")].iloc[0]
    cell = next(c for c in plan.cells if (c.trained_on, c.evaluated_on, c.condition) ==
                (row.trained_on, row.evaluated_on, "direct"))
    adapter = next(j for j in plan.jobs if j.key == cell.evaluation).params["adapter"]
    record = store.read_json("adapter", adapter, "training.json")
    assert record["processed_tokens"] > record["tokens"]
    flops = record["processed_tokens"] * (4 * record["parameters"] + 6 * record["trainable_parameters"])
    pick = lambda m: frame[(frame.metric == m) & (frame.trained_on == row.trained_on)  # noqa: E731
                           & (frame.evaluated_on == row.evaluated_on)].iloc[0]
    assert pick("gain_per_mtoken:acc").value == pytest.approx(row.value / (record["processed_tokens"] / 1e6))
    assert pick("gain_per_pflop:acc").value == pytest.approx(row.value / (flops / 1e15))
    assert pick("gain_per_pflop:acc").ci_low == pytest.approx(row.ci_low / (flops / 1e15))
    assert "cost_fallback:acc" not in set(frame.metric)


def test_report_has_the_robustness_and_efficiency_tables(tiny_study, tmp_path):
    from transferlab.transfer.report import write_report

    _, _, _, where = tiny_study
    write_report(Store(where).results(), tmp_path / "report")
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "### Robustness to prompt templates" in summary and "### Compute efficiency" in summary
    assert "| gain [default] | gain [qa] | gain [instruct] | spread | sign survives | same direction |" in summary
    assert "| gain / Mtoken | gain / PFLOP |" in summary and "Base model score per template" in summary
    table = summary.split("### Robustness to prompt templates")[1].split("Base model score")[0]
    assert len([line for line in table.splitlines() if line.startswith("| rb-")]) == 4  # 2 direct, 2 transfer
    findings = summary.split("Findings:")[1].split("###")[0]
    assert "- prompt robustness over 3 templates (default, qa, instruct)" in findings
    assert "- compute efficiency:" in findings


def test_one_template_study_has_no_robustness_section(tiny_study, tmp_path):
    from transferlab.transfer.report import write_report

    _, _, _, where = tiny_study
    frame = Store(where).results()
    frame = frame[~frame.metric.str.startswith(("template:", "template_"))]
    write_report(frame, tmp_path / "report")
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "Robustness to prompt templates" not in summary and "### Compute efficiency" in summary
