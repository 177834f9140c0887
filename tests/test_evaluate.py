"""The evaluation engine against naive one-at-a-time computations on a tiny random model."""

from __future__ import annotations

import torch

from toy_tasks import Comparison, Echo
from transferlab.evaluate import cut_at_stop, evaluate_task, generate, loglikelihood, request_count


def naive_loglik(model, tokenizer, context: str, continuation: str) -> float:
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    cont = tokenizer(continuation, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([ctx + cont])).logits[0]
    logprobs = torch.log_softmax(logits.float(), -1)
    return sum(float(logprobs[len(ctx) - 1 + j, t]) for j, t in enumerate(cont))


def test_loglikelihood_matches_naive_for_mixed_lengths(tiny):
    pairs = [("hello wor", "ld"), ("a", "b"), ("a", "c"), ("the quick brown fox", " jumps over"), ("x" * 40, "y")]
    batched = loglikelihood(tiny.model, tiny.tokenizer, pairs, batch_size=2)
    for (context, continuation), value in zip(pairs, batched):
        assert abs(value - naive_loglik(tiny.model, tiny.tokenizer, context, continuation)) < 1e-4


def test_one_token_choices_share_one_forward_row(tiny):
    calls = []
    original = tiny.model.forward

    def counting(*args, **kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        return original(*args, **kwargs)

    tiny.model.forward = counting
    values = loglikelihood(tiny.model, tiny.tokenizer, [("ctx", "a"), ("ctx", "b"), ("ctx", "c")], batch_size=8)
    assert calls == [1]  # three one-token continuations of one context: one forward row
    tiny.model.forward = original
    for cont, value in zip("abc", values):
        assert abs(value - naive_loglik(tiny.model, tiny.tokenizer, "ctx", cont)) < 1e-4


def test_long_choices_continue_from_the_cached_context(tiny):
    pairs = [("question one", " first answer"), ("question one", " b"), ("question one", " third, longest answer"),
             ("q2", " yes indeed"), ("q2", " no")]
    batched = loglikelihood(tiny.model, tiny.tokenizer, pairs, batch_size=8)
    for (context, continuation), value in zip(pairs, batched):
        assert abs(value - naive_loglik(tiny.model, tiny.tokenizer, context, continuation)) < 1e-4


def test_generate_batched_equals_one_at_a_time(tiny):
    contexts = ["abc", "a much longer prompt here", "zz"]
    together = generate(tiny.model, tiny.tokenizer, contexts, max_new_tokens=6, batch_size=3)
    alone = [generate(tiny.model, tiny.tokenizer, [c], max_new_tokens=6)[0] for c in contexts]
    assert together == alone


def test_cut_at_stop_takes_earliest():
    assert cut_at_stop("a\n\nb###c", ["###", "\n\n"]) == "a"
    assert cut_at_stop("abc", []) == "abc"


def test_evaluate_task_multiple_choice_and_generation(tiny):
    task = Comparison()
    examples = task.examples("test")[:10]
    seen = []
    result = evaluate_task(tiny.model, tiny.tokenizer, task, examples, progress=seen.append)
    assert result.n == 10 and set(result.scores) == {"acc", "acc_norm"}
    assert sum(seen) == request_count(task, examples) == 20
    assert all(v in (0.0, 1.0) for v in result.scores["acc"])
    assert [len(lps) for lps in result.choice_logprobs] == [2] * 10
    assert result.scores["acc"] == [float(p == e.answer) for p, e in zip(result.predictions, examples)]
    assert result.to_json()["predictions"] == result.predictions
    echo = Echo()
    gen = evaluate_task(tiny.model, tiny.tokenizer, echo, echo.examples("test")[:4])
    assert len(gen.outputs) == 4 and set(gen.scores) == {"exact_match"}
    assert gen.predictions == [] and "predictions" not in gen.to_json()


def test_per_instruction_weights_reach_the_evaluation(tiny):
    from transferlab.tasks import get_task

    task = get_task("ifeval")
    examples = task.examples("test")[:3]
    result = evaluate_task(tiny.model, tiny.tokenizer, task, examples, max_new_tokens=4)
    assert result.weights["inst_strict"] == [len(e.meta["instruction_id_list"]) for e in examples]
    assert "prompt_strict" not in result.weights


def test_a_run_budget_caps_generation_but_never_lengthens_it(tiny, monkeypatch):
    import transferlab.evaluate as evaluate

    echo = Echo()  # its own length is 8 tokens
    assert [echo.generation_length(c) for c in (None, 0, 3, 8, 256)] == [8, 8, 3, 8, 8]
    asked = []
    real = evaluate.generate
    monkeypatch.setattr(evaluate, "generate", lambda *a, **kw: asked.append(kw["max_new_tokens"]) or real(*a, **kw))
    examples = echo.examples("test")[:2]
    for cap in (2, 256, None):
        evaluate_task(tiny.model, tiny.tokenizer, echo, examples, max_new_tokens=cap)
    assert asked == [2, 8, 8]
