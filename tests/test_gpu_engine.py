"""The GPU engine benchmark (benchmarks/gpu_engine.py) at its smallest toy size on the CPU: what it
compares must be equal, the token budget must hold, and its JSON must say it is no GPU measurement."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from transferlab.adapters import applied_together
from transferlab.evaluate import _budgeted_batches, _cache_options, generate
from transferlab.probes.activations import extract

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_engine.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("gpu_engine", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_engine"] = module  # its dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("gpu_engine", None)


@pytest.fixture(scope="module")
def smallest(bench):
    return replace(bench.TOY_SIZES, prompts=4, prompt_tokens=8, max_new_tokens=4, batch_size=2, adapters=2,
                   sft_steps=2, sft_batch=2, sft_prompt_tokens=16, sft_answer_tokens=4, texts=8, text_tokens=16,
                   extract_batch=4)


@pytest.fixture(scope="module")
def toy(bench, one_thread):
    config = bench.model_config("llama-3.2-1b", toy=True)
    return bench.random_model(config, "cpu", torch.float32), bench.char_tokenizer(config.vocab_size)


def test_toy_shapes_keep_the_architecture_and_the_tokenizer_covers_the_vocabulary(bench):
    for name, (family, shape) in bench.SHAPES.items():
        config = bench.model_config(name, toy=True)
        assert config.model_type == family and config.tie_word_embeddings == shape["tie_word_embeddings"]
        assert config.hidden_size == bench.TOY_SHAPE["hidden_size"] < shape["hidden_size"]
    real = bench.model_config("llama-3.2-1b", toy=False)
    shape = (real.hidden_size, real.num_hidden_layers, real.num_key_value_heads, real.vocab_size)
    assert shape == (2048, 16, 8, 128256)
    published = {"llama-3.2-1b": 1_235_814_400, "qwen3-4b": 4_022_468_096}  # the released models' weights
    for name, count in published.items():  # built on the meta device: shapes only, no memory
        model = bench.random_model(bench.model_config(name, toy=False), "meta", torch.bfloat16)
        assert sum(p.numel() for p in model.parameters()) == count and model.config._attn_implementation == "sdpa"
    tokenizer = bench.char_tokenizer(512)
    assert len(tokenizer) == 512 and tokenizer.decode([511]) == "<t409>"
    ids = tokenizer("ab c", add_special_tokens=False)["input_ids"]
    assert ids == [tokenizer.convert_tokens_to_ids(t) for t in "ab c"]


def test_a_token_budget_bounds_every_batch_and_changes_no_output(bench, toy):
    model, tokenizer = toy
    contexts = bench.random_texts(12, lambda rng: rng.randint(3, 30), seed=5)
    budget, new = 120, 6
    seen = []
    original = model.generate

    def recording(*args, **kwargs):
        seen.append(tuple(kwargs["input_ids"].shape))
        return original(*args, **kwargs)

    model.generate = recording
    try:
        budgeted = generate(model, tokenizer, contexts, max_new_tokens=new, batch_size=8, batch_tokens=budget)
    finally:
        del model.generate
    assert all(rows == 1 or rows * (width + new) <= budget for rows, width in seen)
    assert len(seen) > 2 and max(rows for rows, _ in seen) <= 8  # batch_size alone would make 2 batches
    assert sum(rows for rows, _ in seen) == len(contexts)
    assert budgeted == generate(model, tokenizer, contexts, max_new_tokens=new, batch_size=8)
    assert _budgeted_batches([0, 1, 2], [100, 5, 5], size=4, extra=10, budget=50) == [[0], [1, 2]]  # one row at least


def test_static_cache_only_on_cuda_and_equal_to_the_dynamic_one_with_routing_and_stop_strings(bench, toy, tmp_path):
    model, tokenizer = toy
    assert _cache_options(model, torch.device("cpu")) == {}
    assert _cache_options(model, torch.device("cuda")) == {"cache_implementation": "static"}
    dirs = bench.random_adapters(model, tmp_path, 2, rank=4, seed=3)
    encoded = tokenizer(bench.random_texts(4, lambda rng: rng.randint(4, 12), seed=6), return_tensors="pt",
                        padding=True, add_special_tokens=False)
    with applied_together(model, [None, *dirs]) as (peft_model, names), torch.inference_mode():
        assert _cache_options(peft_model, torch.device("cuda")) == {"cache_implementation": "static"}
        outputs = [peft_model.generate(**encoded, do_sample=False, max_new_tokens=8, adapter_names=names + names[:1],
                                       pad_token_id=0, eos_token_id=1, stop_strings=["a"], tokenizer=tokenizer, **cache)
                   for cache in ({}, {"cache_implementation": "static"})]
    assert torch.equal(*outputs)


def test_many_adapters_generate_exactly_what_one_adapter_at_a_time_does(bench, toy, smallest, tmp_path):
    model, tokenizer = toy
    contexts = bench.random_texts(smallest.prompts, lambda _: smallest.prompt_tokens, seed=1)
    dirs = bench.random_adapters(model, tmp_path, smallest.adapters, smallest.rank, seed=100)
    with applied_together(model, [None, *dirs]) as (peft_model, names):
        ours, ours_tokens, ours_rows = bench.ours_generate(peft_model, names, tokenizer, contexts, smallest)
        plain, plain_tokens, plain_rows = bench.plain_generate(peft_model, names, tokenizer, contexts, smallest)
        assert not any(p.requires_grad for p in peft_model.parameters())  # set_adapter's trainable flag undone
    assert ours == plain and ours_tokens == plain_tokens > 0
    assert any(a != ours[0] for a in ours[1:])  # the adapters change what is generated
    assert ours_rows == [smallest.batch_size * len(names)] * 2 and set(plain_rows) == {smallest.batch_size}


def test_new_tokens_count_each_row_up_to_its_first_eos(bench):
    generated = torch.tensor([[5, 1, 0, 0], [5, 6, 7, 8], [1, 0, 0, 0]])
    assert bench.new_tokens(generated, eos=1) == 2 + 4 + 1


def test_extraction_and_the_bare_forward_return_the_same_activations(bench, toy):
    model, tokenizer = toy
    texts = bench.random_texts(10, lambda rng: rng.randint(2, 20), seed=2)
    ours = extract(model, tokenizer, texts, "all", batch_size=4).activations
    bare = bench.bare_hidden_states(model, tokenizer, texts, 4)
    assert ours.shape == bare.shape == (2, 10, 64)
    assert bench.extraction_difference(model, ours, bare) < 1e-5
    assert abs(ours[-1] - bare[-1]).max() > 1e-3  # the top layer differs until the final norm is applied


def test_the_cpu_run_writes_every_field_and_says_it_is_toy_size(bench, smallest, tmp_path, one_thread, capsys):
    out = tmp_path / "gpu_engine_cpu_toy.json"
    bench.run(list(bench.SHAPES), repeats=1, out=out, sizes=smallest, toy=True, command="test")
    record = json.loads(out.read_text())
    assert {"ratio", "target", "baseline", "command", "lower_is_better", "device", "toy_size", "note",
            "measurements"} <= set(record)
    assert record["toy_size"] is True and record["device"] == "cpu" and record["complete"] is True
    assert bench.TOY_NOTE in record["note"] and record["target"] == 4 and record["lower_is_better"] is False
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert lines and all(bench.TOY_NOTE in line for line in lines)
    assert set(record["measurements"]) == set(bench.SHAPES)
    for entry in record["measurements"].values():
        generation, sft, extraction = entry["generation"], entry["sft"], entry["extraction"]
        assert generation["identical_fraction"] == 1.0 and generation["cache"] == "dynamic"
        assert generation["tokens"]["ours"] == generation["tokens"]["plain_hf"] > 0
        assert sft["mfu"] is None and sft["achieved_flops_per_second"] > 0 and sft["target"] == 0.4
        per_token = 4 * sft["parameters"] + 6 * sft["trainable_parameters"]  # transfer/efficiency.py's count
        assert sft["flops_per_run"] == sft["processed_tokens"] * per_token
        assert extraction["max_abs_difference"] < 1e-5 and extraction["target"] == 0.9
    assert record["ratio"] == min(e["generation"]["ratio"] for e in record["measurements"].values())
