"""GRPO: learning on a verifiable reward, determinism, zero-variance groups, KL, PEFT format, errors."""

from __future__ import annotations

import pytest
import torch

from tiny_models import TinyLoaded
from toy_tasks import Comparison, Echo
from transferlab import adapters
from transferlab.learn.defaults import default_learning_rate, default_learning_rate_for
from transferlab.errors import TransferlabError
from transferlab.evaluate import generate
from transferlab.learn.grpo import GRPOConfig, _collate, kl_k3, policy_loss, signal_warning, token_logprobs, train_grpo
from transferlab.learn.rollouts import Rollout, merge_duplicates, prompt_schedule, sample_groups, set_advantages
from transferlab.tasks.base import Example, Task
from transferlab.tasks.prompts import render_context
from transferlab.learn.sft import DivergedError


class Digits(Task):
    """Answer anything; the reward is the share of digits in the answer (verifiable, graded)."""

    name = "toy-digits"
    output_type = "generate"
    metrics = ("digit_share", "constant")
    primary_metric = "digit_share"
    max_new_tokens = 6

    def load(self) -> list[Example]:
        return [Example(uid=f"d{i}", prompt=f"number {i}", target=str(i)) for i in range(40)]

    def score(self, example: Example, completion: str) -> dict[str, float]:
        share = sum(c.isdigit() for c in completion) / len(completion) if completion else 0.0
        return {"digit_share": share, "constant": 0.0}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models run faster on one thread (conftest)


@pytest.fixture
def policy() -> TinyLoaded:
    """The tiny random Llama with its (tied) embeddings scaled up 4x.

    At the default init (std 0.02) the output layer's logits span about +-1, so no adapter
    can move the next-token distribution far; 4x gives it the room a real model has.
    """
    loaded = TinyLoaded()
    with torch.no_grad():
        loaded.model.model.embed_tokens.weight.mul_(4.0)
    return loaded


FAST = GRPOConfig(steps=3, prompts_per_step=4, group_size=8, learning_rate=5e-2, seed=0)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # PEFT asks transformers a deprecated question
def test_grpo_raises_the_reward_and_saves_a_plain_peft_adapter(policy, tmp_path):
    task = Digits()
    config = GRPOConfig(steps=20, prompts_per_step=4, group_size=8, learning_rate=5e-2, warmup_ratio=0.0, seed=0)
    result = train_grpo(policy, task, task.examples("train"), config, tmp_path / "a")
    first, last = sum(result.rewards[:5]) / 5, sum(result.rewards[-5:]) / 5
    assert last > first + 0.15, result.rewards  # about 0.12 -> 0.5 on this toy
    assert len(result.rewards) == len(result.losses) == 20 and result.zero_variance_share < 0.2
    assert signal_warning(result) is None
    assert result.tokens == sum(result.details["completion_tokens"]) > 0
    assert set(result.to_json()) >= {"rewards", "zero_variance_share", "details", "losses"}

    from peft import PeftModel

    prompt = torch.tensor([policy.tokenizer(render_context(task, task.examples("train")[0], policy.tokenizer),
                                            add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        plain = policy.model(prompt).logits[0, -1]
    adapted = PeftModel.from_pretrained(policy.model, str(tmp_path / "a"))  # plain PEFT loads it
    with torch.no_grad():
        tuned = adapted(prompt).logits[0, -1]
    adapted.unload()
    digits = [policy.tokenizer.convert_tokens_to_ids(c) for c in "0123456789"]
    assert torch.softmax(tuned, -1)[digits].sum() > torch.softmax(plain, -1)[digits].sum() + 0.1


def test_grpo_is_deterministic_given_the_seed(policy, tmp_path):
    task = Digits()
    a = train_grpo(policy, task, task.examples("train"), FAST, tmp_path / "a")
    b = train_grpo(policy, task, task.examples("train"), FAST, tmp_path / "b")
    assert a.rewards == b.rewards and a.losses == b.losses
    from safetensors.torch import load_file

    wa, wb = (load_file(str(tmp_path / d / "adapter_model.safetensors")) for d in "ab")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    c = train_grpo(policy, task, task.examples("train"), GRPOConfig(**{**FAST.to_dict(), "seed": 1}), tmp_path / "c")
    assert c.rewards != a.rewards


def test_zero_variance_groups_are_counted_and_carry_no_signal(policy, tmp_path):
    groups = [[Rollout([1], [2], "", reward=r) for r in rewards] for rewards in ([1, 1, 1], [0, 1, 1], [0, 0, 1, 1])]
    assert set_advantages(groups, normalize=False) == 1
    assert [r.advantage for r in groups[0]] == [0, 0, 0]
    assert [round(r.advantage, 6) for r in groups[1]] == [round(-2 / 3, 6), round(1 / 3, 6), round(1 / 3, 6)]
    set_advantages(groups, normalize=True)
    assert [round(r.advantage, 4) for r in groups[2]] == [-1, -1, 1, 1]  # (r - 0.5) / 0.5

    task = Digits()  # a reward that never varies: every group is flat, the adapter never moves
    config = GRPOConfig(**{**FAST.to_dict(), "reward_metric": "constant"})
    result = train_grpo(policy, task, task.examples("train"), config, tmp_path / "flat")
    assert result.zero_variance_share == 1.0 and result.details["zero_variance_groups"] == [4.0, 4.0, 4.0]
    assert result.losses == [0.0, 0.0, 0.0]
    assert "100% of GRPO prompt groups had all-equal rewards" in signal_warning(result)
    from safetensors.torch import load_file

    weights = load_file(str(tmp_path / "flat" / "adapter_model.safetensors"))
    assert all(not w.any() for k, w in weights.items() if "lora_B" in k)  # B stays at its zero init


def test_kl_to_the_base_model_is_zero_at_step_zero(policy, tmp_path):
    task = Digits()
    config = GRPOConfig(**{**FAST.to_dict(), "kl_coef": 0.5})
    result = train_grpo(policy, task, task.examples("train"), config, tmp_path / "kl")
    assert result.details["kl"][0] == pytest.approx(0.0, abs=1e-7)  # a fresh adapter is the base model
    assert result.details["kl"][2] > 1e-5
    logp = torch.log(torch.tensor([0.2, 0.5, 0.9]))
    assert (kl_k3(logp, logp) == 0).all() and (kl_k3(logp, logp.flip(0)) >= 0).all()


def test_continuing_from_an_adapter_measures_kl_to_the_bare_base(policy, tmp_path):
    task = Digits()
    train_grpo(policy, task, task.examples("train"), FAST, tmp_path / "a")
    config = GRPOConfig(**{**FAST.to_dict(), "kl_coef": 0.5, "steps": 1})
    more = train_grpo(policy, task, task.examples("train"), config, tmp_path / "b", init_adapter=tmp_path / "a")
    assert more.details["kl"][0] > 1e-4  # the starting adapter already differs from the base model
    assert (tmp_path / "b" / "adapter_model.safetensors").exists()


def test_joint_training_scores_each_task_with_its_own_scorer(policy, tmp_path):
    digits, echo = Digits(), Echo()
    seen: list[str] = []

    class Watched(Echo):  # Echo's scorer, recording that it was called
        def score(self, example, completion):
            seen.append(example.uid)
            return super().score(example, completion)

    config = GRPOConfig(**{**FAST.to_dict(), "prompts_per_step": 8})
    result = train_grpo(policy, digits, digits.examples("train"), config, tmp_path / "j",
                        also=[(Watched(), echo.examples("train"))])  # echo has no digit_share: its own metric
    assert len(result.rewards) == 3 and seen and all(uid.startswith("echo") for uid in seen)
    with pytest.raises(TransferlabError, match="multiple-choice"):
        train_grpo(policy, digits, digits.examples("train"), FAST, tmp_path / "m",
                   also=[(Comparison(), Comparison().examples("train"))])


def test_ppo_clip_stops_the_gradient_outside_the_trust_region():
    old = torch.zeros(3)
    logp = torch.tensor([0.0, 0.5, -0.5], requires_grad=True)  # ratios 1, 1.65, 0.61
    loss, clipped = policy_loss(logp, old, torch.tensor([1.0, 1.0, -1.0]), clip_eps=0.2, n_tokens=3)
    loss.backward()
    assert int(clipped) == 2
    assert logp.grad[0] != 0 and logp.grad[1] == 0 and logp.grad[2] == 0


def test_merged_duplicate_rollouts_give_the_gradient_of_the_full_batch(tiny):
    """A group drawn from two choices repeats its completions: one weighted row each must train the same."""
    model = tiny.model
    prompt = tiny.tokenizer("<|user|>7 > 3?<|end|><|assistant|>", add_special_tokens=False)["input_ids"]
    yes, no = [5, 6, 2], [7, 2]
    rollouts = [Rollout(prompt, c, "", advantage=a) for c, a in
                [(yes, 1.2), (yes, 1.2), (no, -0.4), (yes, 1.2), (no, -0.4), (no, -0.4), (no, -0.4)]]
    n_tokens = sum(len(r.completion_ids) for r in rollouts)
    merged = merge_duplicates(rollouts)
    assert sorted(n for _, n in merged) == [3, 4]

    def gradient(rows):
        model.zero_grad(set_to_none=True)
        ids, mask, labels, advantages, weights = _collate(rows, tiny.tokenizer.pad_token_id)
        with torch.enable_grad():
            logprobs = token_logprobs(model, ids, mask, labels, temperature=1.0)
            loss, _ = policy_loss(logprobs, logprobs.detach() - 0.1, advantages, 0.2, n_tokens, weights)
            loss.backward()
        return loss.detach(), torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    full_loss, full_grad = gradient([(r, 1) for r in rollouts])
    merged_loss, merged_grad = gradient(merged)
    assert torch.allclose(full_loss, merged_loss, atol=1e-6) and full_loss != 0
    assert torch.allclose(full_grad, merged_grad, atol=1e-6)


def test_sampling_with_a_kv_cache_matches_greedy_generation(tiny):
    task = Digits()
    tok = tiny.tokenizer
    contexts = [render_context(task, e, tok) for e in task.examples("train")[:3]]
    contexts[1] = contexts[1].replace("number", "the number is")  # rows of different lengths: left padding
    prompts = [tok(c, add_special_tokens=False)["input_ids"] for c in contexts]
    groups = sample_groups(tiny.model, tok, prompts, 2, 8, temperature=1e-4, top_p=1.0, stop=(),
                           generator=torch.Generator().manual_seed(0))
    greedy = generate(tiny.model, tok, contexts, max_new_tokens=8)
    assert [[r.text for r in g] for g in groups] == [[text, text] for text in greedy]


def test_sampling_stops_at_the_task_stop_sequences(tiny):
    stop = tuple("aeiou")
    prompts = [tiny.tokenizer("<|user|>hi<|end|><|assistant|>", add_special_tokens=False)["input_ids"]]
    (group,) = sample_groups(tiny.model, tiny.tokenizer, prompts, 16, 12, 1.0, 0.9, stop, torch.Generator().manual_seed(0))
    stopped = [r for r in group if len(r.completion_ids) < 12]
    assert stopped  # with five one-character stop sequences, some rows stop early
    for r in group:
        assert not any(s in r.text for s in stop)
    for r in stopped:  # the stopping token is kept for training, the text is cut before it
        last = tiny.tokenizer.decode(r.completion_ids[-1:])
        assert last in stop or r.completion_ids[-1] == tiny.tokenizer.eos_token_id


def test_diverging_policy_stops_the_job_without_an_adapter(tiny, tmp_path):
    with torch.no_grad():
        tiny.model.model.norm.weight[0] = float("nan")
    task = Digits()
    with pytest.raises(DivergedError, match="lower the learning rate"):
        train_grpo(tiny, task, task.examples("train"), FAST, tmp_path / "x")
    assert not (tmp_path / "x" / "adapter_model.safetensors").exists()


def test_bad_configs_and_tasks_are_clear_errors(tiny, tmp_path):
    with pytest.raises(TransferlabError, match="group_size must be an integer >= 2"):
        GRPOConfig(group_size=1)
    with pytest.raises(TransferlabError, match="temperature"):
        GRPOConfig(temperature=0)
    with pytest.raises(TransferlabError, match="multiple-choice"):
        train_grpo(tiny, Comparison(), Comparison().examples("train"), FAST, tmp_path / "m")
    with pytest.raises(TransferlabError, match="use one of digit_share, constant"):
        train_grpo(tiny, Digits(), Digits().examples("train"), GRPOConfig(reward_metric="acc"), tmp_path / "r")
    with pytest.raises(TransferlabError, match="no training examples"):
        train_grpo(tiny, Digits(), [], FAST, tmp_path / "e")


def test_default_learning_rates_per_family_and_method(tiny):
    assert default_learning_rate("llama", "sft") == 2e-4
    assert default_learning_rate("llama", "grpo") < default_learning_rate("llama", "sft")
    assert default_learning_rate("llama", "sft", hidden_size=576) > default_learning_rate("llama", "sft", 2048)
    assert default_learning_rate("qwen2", "sft", hidden_size=896) < default_learning_rate("llama", "sft", 896)
    assert default_learning_rate("unheard-of", "grpo") == 5e-5
    assert default_learning_rate_for(tiny.model, "sft") == default_learning_rate("llama", "sft", hidden_size=64)
    with pytest.raises(TransferlabError, match="unknown training method 'rl'"):
        default_learning_rate("llama", "rl")


# ---- sampling from the answer choices ----------------------------------------------------------
class Pick(Task):
    """'pick a' is True, 'pick b' is False: a written answer the tiny model never writes by itself."""

    name = "toy-pick"
    output_type = "generate"
    metrics = ("exact_match",)
    primary_metric = "exact_match"
    max_new_tokens = 6

    def load(self) -> list[Example]:
        return [Example(uid=f"p{i}", prompt=f"pick {'ab'[i % 2]} {i}", target=("True", "False")[i % 2],
                        choices=("True", "False"), answer=i % 2) for i in range(40)]

    def score(self, example: Example, completion: str) -> dict[str, float]:
        words = completion.split()
        return {"exact_match": float(bool(words) and words[0] == example.target)}


def _choice_logprob(model, prompt: list[int], ids: list[int]) -> float:
    """log pi(ids | prompt), one unpadded forward: the reference for the batched scorer."""
    row = torch.tensor([prompt + ids])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(row).logits[0, :-1].float(), -1)
    return float(sum(logprobs[len(prompt) - 1 + t, i] for t, i in enumerate(ids)))


def test_choice_sampling_draws_each_choice_by_its_likelihood(policy):
    from transferlab.learn.grpo import answer_choices
    from transferlab.learn.rollouts import sample_choice_groups

    task, tok = Pick(), policy.tokenizer
    examples = task.examples("train")[:2]
    prompts = [tok(render_context(task, e, tok), add_special_tokens=False)["input_ids"] for e in examples]
    prompts[1] = prompts[1][2:]  # rows of different lengths: left padding
    options = answer_choices([(task, e) for e in examples], tok)
    assert [text for text, _ in options[0]] == ["True", "False"] and options[0][0][1][-1] == tok.eos_token_id
    groups = sample_choice_groups(policy.model, tok, prompts, options, 4000, 1.0, torch.Generator().manual_seed(0))
    for prompt, choices, group in zip(prompts, options, groups):
        scores = torch.tensor([_choice_logprob(policy.model, prompt, ids) for _, ids in choices])
        expected = torch.softmax(scores, 0)[0].item()
        drawn = sum(r.text == "True" for r in group) / len(group)
        assert abs(drawn - expected) < 0.03, (drawn, expected)
        assert all(r.completion_ids == dict(choices)[r.text] and r.prompt_ids == prompt for r in group)
    cold = sample_choice_groups(policy.model, tok, prompts, options, 50, 1e-4, torch.Generator().manual_seed(0))
    assert all(len({r.text for r in group}) == 1 for group in cold)  # temperature -> 0: the likelier choice


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_grpo_learns_from_the_choices_where_free_sampling_finds_no_reward(policy, tmp_path):
    task = Pick()
    free = GRPOConfig(steps=4, prompts_per_step=8, group_size=16, learning_rate=1e-2, seed=0)
    stuck = train_grpo(policy, task, task.examples("train"), free, tmp_path / "free")
    assert stuck.zero_variance_share == 1.0 and max(stuck.rewards) == 0.0  # it never writes True or False
    config = GRPOConfig(steps=20, prompts_per_step=8, group_size=16, learning_rate=1e-2, warmup_ratio=0.0,
                        sample_choices=True, seed=0)
    result = train_grpo(policy, task, task.examples("train"), config, tmp_path / "choices")
    first, last = sum(result.rewards[:4]) / 4, sum(result.rewards[-4:]) / 4
    assert first < 0.5 and last > 0.9, result.rewards  # about 0.35 -> 0.99: it learns a -> True, b -> False


def test_sample_choices_keys_and_errors(tiny, tmp_path):
    assert "sample_choices" not in GRPOConfig().to_dict()  # free-sampling adapters keep their cache keys
    assert GRPOConfig(sample_choices=True).to_dict()["sample_choices"] is True
    with pytest.raises(TransferlabError, match="sample_choices needs examples that list their answer choices"):
        train_grpo(tiny, Digits(), Digits().examples("train"), GRPOConfig(sample_choices=True, steps=1), tmp_path / "d")


def test_balanced_answers_put_each_answer_in_equal_shares_in_every_step():
    answers = ["True"] * 30 + ["False"] * 10  # a skewed pool: unbalanced batches swing the answer bias
    schedule = prompt_schedule(len(answers), steps=12, per_step=8, seed=3, answers=answers)
    assert all(sum(answers[i] == "True" for i in step) == 4 for step in schedule)
    falses = [i for step in schedule for i in step if answers[i] == "False"]
    assert sorted(falses[:10]) == list(range(30, 40))  # each answer cycles through all its examples
    assert prompt_schedule(40, 12, 8, 3, answers) == schedule  # seeded
    assert GRPOConfig(steps=1).to_dict() == {k: v for k, v in GRPOConfig(steps=1, balance_answers=False).to_dict().items()}
    assert "balance_answers" not in GRPOConfig(steps=1).to_dict()  # runs made before it keep their keys
    assert GRPOConfig(steps=1, balance_answers=True).to_dict()["balance_answers"] is True


def test_choice_mass_is_the_log_probability_of_answering_with_any_choice(policy):
    from transferlab.learn.choice_mass import choice_mass_loss
    from transferlab.learn.grpo import answer_choices

    task, tok = Pick(), policy.tokenizer
    examples = task.examples("train")[:3]
    prompts = [tok(render_context(task, e, tok), add_special_tokens=False)["input_ids"] for e in examples]
    prompts[2] = prompts[2][3:]  # rows of different lengths
    options = answer_choices([(task, e) for e in examples], tok)
    with torch.no_grad():
        loss = choice_mass_loss(policy.model, prompts, options, tok.pad_token_id, "cpu")
    expected = -sum(torch.logsumexp(torch.tensor([_choice_logprob(policy.model, p, ids) for _, ids in choices]), 0)
                    for p, choices in zip(prompts, options)) / len(prompts)
    assert float(loss) == pytest.approx(float(expected), abs=1e-4)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_the_choice_mass_term_keeps_free_answers_among_the_choices(policy, tmp_path):
    """Choice-drawn groups move probability between the choices only; the term makes the model write them."""
    from transferlab.learn.choice_mass import choice_mass_loss
    from transferlab.learn.grpo import answer_choices

    task, tok = Pick(), policy.tokenizer
    examples = task.examples("train")
    prompts = [tok(render_context(task, e, tok), add_special_tokens=False)["input_ids"] for e in examples]
    options = answer_choices([(task, e) for e in examples], tok)
    masses = {}
    for coef in (0.0, 1.0):
        config = GRPOConfig(steps=10, prompts_per_step=8, group_size=8, learning_rate=1e-2, warmup_ratio=0.0,
                            sample_choices=True, choice_mass_coef=coef, seed=0)
        train_grpo(policy, task, examples, config, tmp_path / str(coef))
        with adapters.applied(policy.model, tmp_path / str(coef)) as model, torch.no_grad():
            masses[coef] = -float(choice_mass_loss(model, prompts, options, tok.pad_token_id, "cpu"))
    assert masses[1.0] > masses[0.0] + 1.0, masses  # log sum_c pi(c): far more mass on the choices
    assert "choice_mass_coef" not in GRPOConfig().to_dict()
    with pytest.raises(TransferlabError, match="set sample_choices: true too"):
        GRPOConfig(choice_mass_coef=0.5)
