"""The Tinker backend: our examples as the SDK's own types, checked offline; service runs need a key."""

from __future__ import annotations

import os
import sys
import typing

import numpy as np
import pytest

from toy_tasks import Echo
from transferlab.errors import TransferlabError
from transferlab.learn.sft import TrainConfig, tokenize

import tinker  # noqa: E402  (make setup installs the tinker extra)
from transferlab.learn import tinker as tb  # noqa: E402

needs_service = pytest.mark.skipif(not os.environ.get("TINKER_API_KEY"),
                                   reason="TINKER_API_KEY is unset: the Tinker service tests need an API key")


def test_sft_data_are_sdk_datums_with_shifted_targets_and_completion_weights(tiny):
    task = Echo()
    examples = task.examples("train")[:4]
    rows = tokenize(task, examples, tiny.tokenizer, 64)
    data = tb.examples_to_data(task, examples, tiny.tokenizer, 64)
    for datum, (ids, n_prompt), example in zip(data, rows, examples):
        assert isinstance(datum, tinker.types.Datum) and isinstance(datum.model_input, tinker.types.ModelInput)
        inputs = datum.model_input.to_ints()
        targets = datum.loss_fn_inputs["target_tokens"]
        weights = datum.loss_fn_inputs["weights"]
        assert isinstance(targets, tinker.types.TensorData) and (targets.dtype, weights.dtype) == ("int64", "float32")
        assert inputs == ids[:-1] and targets.tolist() == ids[1:]  # position i predicts token i + 1
        w = weights.to_numpy()
        assert w.shape == (len(ids) - 1,)
        assert not w[: n_prompt - 1].any() and (w[n_prompt - 1 :] == 1).all()  # zero on the prompt, one after
        answer = [t for t, keep in zip(targets.tolist(), w) if keep]
        assert tiny.tokenizer.decode(answer) == example.target + "<|end|>"  # the completion and its end of turn
        # the SDK's pydantic model validates the input as it would arrive
        assert tinker.types.ModelInput.model_validate_json(datum.model_input.model_dump_json()) == datum.model_input


def test_the_sdk_wire_encoder_accepts_our_data_for_both_losses(tiny):
    from tinker.proto.request_conv import forward_backward_request_to_proto

    task = Echo()
    sft = tb.examples_to_data(task, task.examples("train")[:3], tiny.tokenizer, 64)
    rl = [tb.rl_datum([5, 6, 7], [8, 9], [-0.5, -1.5], [1.0, 1.0])]
    assert {"cross_entropy", "importance_sampling"} <= set(typing.get_args(tinker.types.LossFnType))
    for data, loss in ((sft, "cross_entropy"), (rl, "importance_sampling")):
        request = tinker.types.ForwardBackwardRequest(
            forward_backward_input=tinker.types.ForwardBackwardInput(data=data, loss_fn=loss), model_id="m", seq_id=1)
        proto = forward_backward_request_to_proto(request)
        assert proto.loss_fn == loss and len(proto.data) == len(data)
        for sent, datum in zip(proto.data, data):
            tokens = np.frombuffer(sent.model_input[0].encoded_text.tokens, dtype=np.int32).tolist()
            assert tokens == datum.model_input.to_ints()
            for name, tensor in datum.loss_fn_inputs.items():
                dtype = np.int64 if tensor.dtype == "int64" else np.float32
                assert np.array_equal(np.frombuffer(sent.loss_fn_inputs[name].dense, dtype=dtype), tensor.to_numpy())


def test_rl_datum_puts_logprobs_and_advantages_on_the_completion_only():
    datum = tb.rl_datum([5, 6, 7], [8, 9, 10], [-0.1, -0.2, -0.3], [0.5, 0.5, 0.4])
    assert datum.model_input.to_ints() == [5, 6, 7, 8, 9]
    assert datum.loss_fn_inputs["target_tokens"].tolist() == [6, 7, 8, 9, 10]
    assert np.allclose(datum.loss_fn_inputs["logprobs"].to_numpy(), [0, 0, -0.1, -0.2, -0.3])
    assert np.allclose(datum.loss_fn_inputs["advantages"].to_numpy(), [0, 0, 0.5, 0.5, 0.4])
    with pytest.raises(ValueError, match="2 log-probs"):
        tb.rl_datum([5], [8, 9, 10], [-0.1, -0.2], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="prompt and a completion"):
        tb.sft_datum([1, 2, 3], 3)


def test_mean_nll_reads_the_logprobs_the_loss_returns():
    # Arithmetic of our read-out on the SDK's output type; the values are made up, not a service result.
    data = [tb.sft_datum([1, 2, 3, 4], 2), tb.sft_datum([1, 2, 3], 1)]
    output = tinker.types.ForwardBackwardOutput(loss_fn_output_type="ArrayRecord", loss_fn_outputs=[
        {"logprobs": tinker.types.TensorData(data=[-9.0, -1.0, -2.0], dtype="float32")},
        {"logprobs": tinker.types.TensorData(data=[-3.0, -4.0], dtype="float32")}])
    loss, n = tb.mean_nll(output, data)
    assert n == 4 and loss == pytest.approx((1 + 2 + 3 + 4) / 4)  # the prompt's -9 is weighted out


def test_target_modules_map_onto_tinker_layer_switches():
    assert tb.lora_switches(("q_proj", "v_proj")) == {"train_attn": True, "train_mlp": False, "train_unembed": False}
    assert tb.lora_switches(("down_proj", "lm_head"))["train_unembed"]
    with pytest.raises(TransferlabError, match="cannot target embed_tokens"):
        tb.lora_switches(("q_proj", "embed_tokens"))


def test_missing_key_and_missing_sdk_are_one_line_errors(monkeypatch):
    monkeypatch.delenv("TINKER_API_KEY", raising=False)
    with pytest.raises(TransferlabError, match="set TINKER_API_KEY") as err:
        tb.TinkerTrainer("meta-llama/Llama-3.2-1B")
    assert "\n" not in str(err.value)
    monkeypatch.setitem(sys.modules, "tinker", None)  # as if the package were not installed
    with pytest.raises(TransferlabError, match=r"pip install 'transferlab\[tinker\]'"):
        tb.TinkerTrainer("meta-llama/Llama-3.2-1B", key="k")


@needs_service
def test_sft_on_the_service_lowers_the_loss(tmp_path):
    trainer = tb.TinkerTrainer("meta-llama/Llama-3.2-1B")
    task = Echo()
    run = trainer.train_sft(task, task.examples("train"), TrainConfig(steps=6, batch_size=8, learning_rate=5e-4),
                            name="transferlab-test-sft")
    assert run.sampler_path.startswith("tinker://") and run.state_path.startswith("tinker://")
    assert run.result.losses[-1] < run.result.losses[0]


@needs_service
def test_grpo_on_the_service_reports_rewards_and_flat_groups():
    from transferlab.learn.grpo import GRPOConfig

    trainer = tb.TinkerTrainer("meta-llama/Llama-3.2-1B")
    task = Echo()
    config = GRPOConfig(steps=2, prompts_per_step=2, group_size=4, learning_rate=4e-5)
    run = trainer.train_grpo(task, task.examples("train"), config, name="transferlab-test-grpo")
    assert len(run.result.rewards) == 2 and 0.0 <= run.result.zero_variance_share <= 1.0
    assert run.sampler_path.startswith("tinker://")
