"""Many adapters in one pass equal one adapter at a time, on a tiny random model with random LoRA adapters."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tiny_models import TinyLoaded
from toy_tasks import Comparison, Echo
from transferlab.adapters import BASE, applied, applied_together
from transferlab.errors import TransferlabError
from transferlab.evaluate import evaluate_task, generate, loglikelihood
from transferlab.models import tiny_llama
from transferlab.multi_adapter import evaluate_many, many_request_count
from transferlab.prefix_scoring import MIN_PREFIX, common_prefix_length, loglikelihood_after_prefix
from transferlab.tasks.base import Example, Task
from transferlab.tasks.prompts import PromptOptions

TOLERANCE = 1e-4  # max abs log-prob difference in fp32


def make_adapter(directory: Path, seed: int, *, rank: int = 4, targets: tuple[str, ...] = ("q_proj", "v_proj"),
                 base=None) -> Path:
    """A random LoRA adapter whose B is non-zero (PEFT's default B = 0 would change nothing)."""
    from peft import LoraConfig, get_peft_model

    model = base if base is not None else TinyLoaded().model
    peft_model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=list(targets),
                                                  lora_dropout=0.0))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    peft_model.save_pretrained(str(directory), safe_serialization=True, save_embedding_layers=False)
    return directory


@pytest.fixture(scope="module")
def adapter_dirs(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("adapters")
    return [make_adapter(root / "a", 1), make_adapter(root / "b", 2, rank=8),
            make_adapter(root / "c", 3, targets=("o_proj", "up_proj", "v_proj"))]


class LongChoices(Task):
    """Multiple choice whose options are several tokens long (the cached-context path)."""

    name = "toy-long-choices"
    output_type = "multiple_choice"

    def load(self) -> list[Example]:
        options = (" yes indeed", " no", " perhaps, who knows")
        return [Example(uid=f"long{i}", prompt=f"question {i}{'?' * (i % 5)}", target=options[i % 3],
                        choices=options, answer=i % 3) for i in range(24)]


class Described(LongChoices):
    """Long choices after a system prompt every context starts with: the shared-prefix path."""

    name = "toy-described"
    system_prompt = "Read the question below with care, then choose the best of the answers given."


def one_at_a_time(model, tokenizer, task, examples, dirs, **kwargs):
    out = []
    for d in dirs:
        with applied(model, d) as m:
            out.append(evaluate_task(m, tokenizer, task, examples, **kwargs))
    return out


def snapshot(model) -> tuple:
    return ({k: v.clone() for k, v in model.state_dict().items()}, [type(m).__name__ for m in model.modules()],
            {n: p.requires_grad for n, p in model.named_parameters()}, model.training)


def assert_unchanged(model, before) -> None:
    state, types, grads, training = snapshot(model)
    assert types == before[1] and grads == before[2] and training == before[3]
    assert state.keys() == before[0].keys() and all(torch.equal(state[k], before[0][k]) for k in state)


def max_diff(a, b) -> float:
    return max(abs(x - y) for xs, ys in zip(a.choice_logprobs, b.choice_logprobs) for x, y in zip(xs, ys))


@pytest.mark.parametrize("task_class", [Comparison, LongChoices, Described])
def test_multiple_choice_equals_one_at_a_time(tiny, adapter_dirs, task_class):
    task = task_class()
    examples = task.examples("test")[:12]
    dirs = [None, *adapter_dirs]
    before = snapshot(tiny.model)
    seen = []
    together = evaluate_many(tiny.model, tiny.tokenizer, task, examples, dirs, batch_size=4, progress=seen.append)
    assert_unchanged(tiny.model, before)
    assert sum(seen) == many_request_count(task, examples, dirs)
    alone = one_at_a_time(tiny.model, tiny.tokenizer, task, examples, dirs, batch_size=3)  # other paddings
    assert len(together) == 4
    for many, single in zip(together, alone):
        assert max_diff(many, single) < TOLERANCE
        assert many.predictions == single.predictions and many.scores == single.scores
        assert many.uids == single.uids
    assert all(max_diff(t, together[0]) > 1e-3 for t in together[1:]), "the adapters must change the outputs"


def test_generation_equals_one_at_a_time(tiny, adapter_dirs):
    task = Echo()
    examples = task.examples("test")[:8]
    dirs = [None, *adapter_dirs]
    before = snapshot(tiny.model)
    together = evaluate_many(tiny.model, tiny.tokenizer, task, examples, dirs, batch_size=4)
    assert_unchanged(tiny.model, before)
    alone = one_at_a_time(tiny.model, tiny.tokenizer, task, examples, dirs, batch_size=3)
    for many, single in zip(together, alone):
        assert many.outputs == single.outputs and many.scores == single.scores
    assert len({tuple(t.outputs) for t in together}) > 1, "the adapters must change the generations"


LM_EVAL_LIKE = PromptOptions(chat_template="off", start_token="off", separator=" ")  # lm-eval's default framing


@pytest.mark.parametrize("prompt", [None, LM_EVAL_LIKE], ids=["auto", "plain-space"])
@pytest.mark.parametrize("task_class", [Comparison, LongChoices, Echo])
def test_each_record_is_what_evaluate_task_writes_under_the_prompt_options(tiny, adapter_dirs, task_class, prompt):
    task = task_class()
    examples = task.examples("test")[:6]
    dirs = [None, adapter_dirs[1]]
    together = evaluate_many(tiny.model, tiny.tokenizer, task, examples, dirs, batch_size=4, max_new_tokens=4,
                             prompt=prompt)
    alone = one_at_a_time(tiny.model, tiny.tokenizer, task, examples, dirs, batch_size=4, max_new_tokens=4,
                          prompt=prompt)
    for many, single in zip(together, alone):
        if task.output_type == "multiple_choice":
            assert max_diff(many, single) < TOLERANCE
        ours, theirs = many.to_json(), single.to_json()
        ours.pop("choice_logprobs", None), theirs.pop("choice_logprobs", None)
        assert ours == theirs  # contexts, continuations, prompt options, answers, scores: all the same
    record = together[0]
    assert record.contexts and all("<|user|>" not in c for c in record.contexts) == (prompt is not None)
    if prompt is not None:
        assert record.prompt == {"chat_template": "off", "start_token": "off", "separator": " "}
        if task.output_type == "multiple_choice":
            assert all(c.startswith(" ") for conts in record.continuations for c in conts)


def test_every_loglikelihood_path_routes_rows_by_adapter(tiny, adapter_dirs):
    # one long continuation (full rows), one-token choices of one context, long choices from the cached context
    pairs = [("hello wor", "ld"), ("a", "b"), ("a", "c"), ("the quick brown fox", " jumps over"), ("x" * 40, "y"),
             ("question one", " first answer"), ("question one", " b")]
    dirs = [None, *adapter_dirs]
    alone = []
    for d in dirs:
        with applied(tiny.model, d) as m:
            alone.append(loglikelihood(m, tiny.tokenizer, pairs, batch_size=3))
    with applied_together(tiny.model, dirs) as (model, names):
        assert names[0] == BASE and len(set(names)) == 4
        flat = loglikelihood(model, tiny.tokenizer, [p for p in pairs for _ in names], batch_size=3,
                             adapters=[n for _ in pairs for n in names])
        texts = generate(model, tiny.tokenizer, ["abc", "abc", "zz", "zz"], max_new_tokens=5, batch_size=4,
                         adapters=[names[1], names[2], names[3], BASE])
    for a, values in enumerate(alone):
        assert max(abs(x - y) for x, y in zip(flat[a :: len(dirs)], values)) < TOLERANCE
    for text, (context, d) in zip(texts, [("abc", 1), ("abc", 2), ("zz", 3), ("zz", 0)]):
        with applied(tiny.model, dirs[d]) as m:
            assert text == generate(m, tiny.tokenizer, [context], max_new_tokens=5)[0]


def test_base_only_and_empty(tiny):
    task = Comparison()
    examples = task.examples("test")[:6]
    (base,) = evaluate_many(tiny.model, tiny.tokenizer, task, examples, [None])
    assert max_diff(base, evaluate_task(tiny.model, tiny.tokenizer, task, examples)) < TOLERANCE
    assert evaluate_many(tiny.model, tiny.tokenizer, task, examples, []) == []


def test_wrong_base_adapter_is_a_clear_error_naming_it(tiny, adapter_dirs, tmp_path):
    wrong = make_adapter(tmp_path / "wrong-base", 4, base=tiny_llama(vocab_size=len(tiny.tokenizer), hidden=32))
    before = snapshot(tiny.model)
    task = Comparison()
    with pytest.raises(TransferlabError, match=r"wrong-base.*does not fit the base model.*size mismatch"):
        evaluate_many(tiny.model, tiny.tokenizer, task, task.examples("test")[:4], [None, adapter_dirs[0], wrong])
    assert_unchanged(tiny.model, before)  # the adapters loaded before the failure are gone again
    with pytest.raises(TransferlabError, match="not a PEFT adapter"):
        evaluate_many(tiny.model, tiny.tokenizer, task, task.examples("test")[:4], [tmp_path])
    assert_unchanged(tiny.model, before)


def test_one_pass_every_batch_holds_each_example_for_every_adapter(tiny, adapter_dirs):
    task = Comparison()
    examples = task.examples("test")[:8]
    calls = []
    original = tiny.model.forward

    def counting(*args, **kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        return original(*args, **kwargs)

    tiny.model.forward = counting  # PEFT's wrapper calls the base model's forward
    try:
        evaluate_task(tiny.model, tiny.tokenizer, task, examples, batch_size=8)
        alone, calls[:] = list(calls), []
        evaluate_many(tiny.model, tiny.tokenizer, task, examples, [None, *adapter_dirs], batch_size=8)
    finally:
        tiny.model.forward = original
    assert len(calls) == len(alone)  # as many forward passes as one adapter alone, each 4 times as wide
    assert calls == [4 * rows for rows in alone]


def test_a_shared_prefix_runs_once_per_adapter_and_scores_the_same(tiny, adapter_dirs):
    prefix = "The following are questions about numbers; answer each one.\n\n"
    pairs = [(prefix + f"q{i} {'x' * (i % 7)}?", c) for i in range(9) for c in (" A", " B", " a longer answer")]
    pairs += [(prefix + "z", "w"), (prefix[:-1], " first")]  # the shortest context caps the prefix
    dirs = [None, *adapter_dirs]
    widths = []
    original = tiny.model.forward

    def counting(*args, **kwargs):
        widths.append((kwargs["input_ids"].shape, kwargs.get("past_key_values") is not None))
        return original(*args, **kwargs)

    with applied_together(tiny.model, dirs) as (model, names):
        flat = [pair for pair in pairs for _ in names]
        routes = [name for _ in pairs for name in names]
        plain = loglikelihood(model, tiny.tokenizer, flat, batch_size=8, adapters=routes)
        tiny.model.forward = counting  # PEFT's wrapper calls the base model's forward
        try:
            seen = []
            shared = loglikelihood_after_prefix(model, tiny.tokenizer, flat, routes, batch_size=8, progress=seen.append)
        finally:
            tiny.model.forward = original
    assert max(abs(a - b) for a, b in zip(plain, shared)) < TOLERANCE and sum(seen) == len(flat)
    p = len(tiny.tokenizer(prefix[:-1], add_special_tokens=False)["input_ids"]) - 1
    assert widths[0] == ((len(names), p), False)  # the prefix, once per adapter
    longest = max(max(len(c) for c, _ in pairs) - p, max(len(c) for _, c in pairs) - 1)  # context or choice tokens
    assert all(cached and shape[1] <= longest for shape, cached in widths[1:])  # every row continues the prefix
    assert common_prefix_length([[1, 2, 3], [1, 2], [1, 2, 4]]) == 2 and common_prefix_length([[5], [6]]) == 0


def test_a_short_prefix_goes_to_the_plain_path(tiny):
    pairs = [("ab" + "c" * i, "d") for i in range(5)]
    assert common_prefix_length([tiny.tokenizer(c)["input_ids"] for c, _ in pairs]) < MIN_PREFIX
    assert loglikelihood_after_prefix(tiny.model, tiny.tokenizer, pairs) == loglikelihood(tiny.model, tiny.tokenizer,
                                                                                          pairs)
    assert loglikelihood_after_prefix(tiny.model, tiny.tokenizer, []) == []
