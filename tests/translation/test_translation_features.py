"""Adapter features: symmetry, canonical form, depth matching, PEFT round trip, bad input."""

from __future__ import annotations

import pytest
import torch
from translation_helpers import X_DIMS, random_adapter

from transferlab.errors import TransferlabError
from transferlab.translation.features import (
    AdapterStack,
    canonical,
    from_factors,
    load_adapter,
    relative_depth_match,
    source_tensors_for,
    write_adapter,
)


def _reparametrised(adapter, seed=1):
    """The same updates with (A, B) -> (R A, B R^-1): LoRA's symmetry."""
    g = torch.Generator().manual_seed(seed)
    factors = {}
    for t in adapter.tensors:
        r = adapter.rank
        R = torch.randn(r, r, generator=g, dtype=torch.float64) + 3 * torch.eye(r, dtype=torch.float64)
        factors[t] = (R @ adapter.A[t], adapter.B[t] @ torch.linalg.inv(R))
    return from_factors(adapter.name, adapter.base_model, factors)


def test_gram_is_the_frobenius_inner_product_and_ignores_the_factorisation():
    g = torch.Generator().manual_seed(0)
    adapters = [random_adapter(f"a{i}", "x", 2, X_DIMS, 3, g) for i in range(4)]
    t = (1, "q_proj")
    dense = torch.stack([a.delta(t).flatten() for a in adapters])
    stack = AdapterStack.of(adapters)
    assert torch.allclose(stack.gram(t), dense @ dense.T, atol=1e-10)
    moved = AdapterStack.of([_reparametrised(a) for a in adapters])
    assert torch.allclose(moved.gram(t), stack.gram(t), atol=1e-9)


def test_canonical_form_is_the_same_for_every_factorisation_and_truncates_optimally():
    g = torch.Generator().manual_seed(0)
    adapter = random_adapter("a", "x", 1, {"q_proj": (12, 10)}, 4, g)
    t = (0, "q_proj")
    a1, b1 = canonical(adapter.A[t], adapter.B[t])
    a2, b2 = canonical(*[_reparametrised(adapter).A[t], _reparametrised(adapter).B[t]])
    assert torch.allclose(a1, a2, atol=1e-8) and torch.allclose(b1, b2, atol=1e-8)
    assert torch.allclose(b1 @ a1, adapter.delta(t), atol=1e-10)
    a, b = canonical(adapter.A[t], adapter.B[t], rank=2)
    u, s, vt = torch.linalg.svd(adapter.delta(t))
    assert torch.allclose(b @ a, u[:, :2] @ torch.diag(s[:2]) @ vt[:2], atol=1e-10)  # Eckart-Young


def test_relative_depth_matches_ends_to_ends_and_interpolates_between():
    match = relative_depth_match(30, 18)
    assert match[0] == [(0, 1.0)] and match[-1] == [(29, 1.0)]
    assert all(abs(sum(w for _, w in m) - 1) < 1e-12 for m in match)
    assert [l for l, _ in match[9]] == [15, 16]  # 9/17 of the way: layer 15.35 of 0..29
    assert relative_depth_match(3, 1) == [[(0, 1.0)]]


def test_a_y_module_x_does_not_adapt_draws_on_every_x_module_at_that_depth():
    g = torch.Generator().manual_seed(0)
    x = AdapterStack.of([random_adapter("a", "x", 4, {"q_proj": (8, 8)}, 2, g)])
    sources = source_tensors_for(x, [(0, "q_proj"), (0, "k_proj")], 2)
    assert sources[(0, "q_proj")] == [((0, "q_proj"), 1.0)] and sources[(0, "k_proj")] == [((0, "q_proj"), 1.0)]


@pytest.fixture(scope="module")
def peft_adapter(tmp_path_factory, tiny_models):
    """A PEFT adapter saved by PEFT itself on the tiny Y model, with non-zero B."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_models[1])
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False))
    path = tmp_path_factory.mktemp("peft") / "adapter"
    peft_model.save_pretrained(path)
    return path, tiny_models[1]


def _merged_delta(model_dir, adapter_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_dir)
    before = base.model.layers[1].self_attn.v_proj.weight.detach().clone()
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    return merged.model.layers[1].self_attn.v_proj.weight.detach() - before


def test_peft_adapters_load_and_written_predictions_load_in_plain_peft(peft_adapter, tmp_path):
    path, model_dir = peft_adapter
    adapter = load_adapter(path, name="peft-made")
    assert adapter.rank == 4 and adapter.target_modules == ("q_proj", "v_proj") and adapter.n_layers == 2
    delta = _merged_delta(model_dir, path)
    assert torch.allclose(adapter.delta((1, "v_proj")).float(), delta, atol=1e-5)  # the LoRA scale is folded in
    factors = {t: (adapter.A[t], 2 * adapter.B[t]) for t in adapter.tensors}  # a "prediction": twice the update
    out = write_adapter(factors, adapter, adapter.base_model, tmp_path / "written")
    assert torch.allclose(_merged_delta(model_dir, out), 2 * delta, atol=1e-5)


def test_adapter_for_the_wrong_base_model_is_named(peft_adapter):
    path, _ = peft_adapter
    with pytest.raises(TransferlabError, match=r"adapter cities-y: was trained for base model .* expected 'gemma3-270m'"):
        load_adapter(path, name="cities-y", expect_base="gemma3-270m")
    with pytest.raises(TransferlabError, match="adapter nowhere: .* is not a PEFT adapter directory"):
        load_adapter(path.parent / "missing", name="nowhere")


def test_mismatched_anchors_are_named():
    g = torch.Generator().manual_seed(0)
    good = [random_adapter(f"t{i}", "x", 2, X_DIMS, 2, g) for i in range(3)]
    other_modules = random_adapter("odd-modules", "x", 2, {"q_proj": (16, 16)}, 2, g)
    other_rank = random_adapter("odd-rank", "x", 2, X_DIMS, 3, g)
    other_base = random_adapter("odd-base", "z", 2, X_DIMS, 2, g)
    with pytest.raises(TransferlabError, match="anchor adapter odd-modules: targets"):
        AdapterStack.of([*good, other_modules])
    with pytest.raises(TransferlabError, match="anchor adapter odd-rank: rank 3 differs from t0's rank 2"):
        AdapterStack.of([*good, other_rank])
    with pytest.raises(TransferlabError, match="anchor adapter odd-base: base model 'z' differs"):
        AdapterStack.of([*good, other_base])
