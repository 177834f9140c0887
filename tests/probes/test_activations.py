"""Extraction: the hooks read exactly the residual stream HF reports, batched and padded, without logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transferlab.errors import TransferlabError
from transferlab.probes.activations import batches_by_length, extract, resolve_layers

TEXTS = ["The city of Paris is in France.", "a", "fifty-two is larger than fifty-one.", "xyz", "Is it? Yes."]


def reference(tiny, text):
    ids = tiny.tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        return tiny.model.model(**ids, output_hidden_states=True).hidden_states


def test_last_token_matches_unbatched_hidden_states(tiny):
    got = extract(tiny.model, tiny.tokenizer, TEXTS, [0, 1], batch_size=2)
    assert got.activations.shape == (2, len(TEXTS), 64) and got.layers == [0, 1]
    for i, text in enumerate(TEXTS):
        hidden = reference(tiny, text)
        for k, layer in enumerate(got.layers):  # blocks below the last: HF's hidden_states are the raw stream
            np.testing.assert_allclose(got.activations[k, i], hidden[layer][0, -1].numpy(), atol=1e-5)


def test_mean_position_and_the_last_block_is_pre_norm(tiny):
    got = extract(tiny.model, tiny.tokenizer, TEXTS, [2], position="mean", batch_size=4)
    hidden = reference(tiny, TEXTS[0])
    assert got.activations.shape == (1, len(TEXTS), 64)
    normed = tiny.model.model.norm
    # layer 2 is the output of the last block before the final norm: the residual stream itself
    last = extract(tiny.model, tiny.tokenizer, TEXTS[:1], [2]).activations[0, 0]
    np.testing.assert_allclose(normed(torch.as_tensor(last)[None]).detach().numpy()[0], hidden[2][0, -1].numpy(),
                               atol=1e-4)


def test_no_logits_and_early_stop(tiny, monkeypatch):
    called = []
    monkeypatch.setattr(tiny.model.lm_head, "forward", lambda *a, **k: called.append(1))
    seen = []
    handle = tiny.model.model.layers[1].register_forward_hook(lambda *a: seen.append(1))
    extract(tiny.model, tiny.tokenizer, TEXTS, [1])
    handle.remove()
    assert not called, "the LM head never runs"
    assert not seen, "blocks past the deepest requested layer never run"


def test_layers_out_of_range_and_strides():
    assert resolve_layers(None, 30) == list(range(1, 31))
    assert resolve_layers("every:10", 30) == [10, 20, 30]
    assert resolve_layers("-1,0,5", 30) == [0, 5, 30]
    with pytest.raises(TransferlabError, match="layer 31 is out of range"):
        resolve_layers([31], 30, "smollm2-135m")


def test_batches_sort_by_length_and_respect_the_token_budget():
    batches = batches_by_length([5, 50, 6, 49, 7], batch_size=2, max_tokens=100)
    assert batches[0] == [1, 3] and sorted(i for b in batches for i in b) == [0, 1, 2, 3, 4]
    assert all(len(b) <= 2 for b in batches)
