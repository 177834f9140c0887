"""Default learning rates per model family and training method, overridable in every config.

Why these numbers:

* **SFT with LoRA.** LoRA's best learning rate is about ten times that of full fine-tuning,
  and nearly independent of the rank (Thinking Machines, "LoRA Without Regret", 2025).
  For 1B-class models (width ~2048) that puts it at 1e-4..5e-4; 2e-4 is the value most
  LoRA recipes (PEFT, Unsloth, QLoRA) ship for Llama- and Qwen-class models with
  alpha = 2 r, the scaling `TrainConfig` uses.
* **Narrower models take larger rates.** tinker-cookbook's `hyperparam_utils.get_lr` fits
  `lr = 5e-5 * 10 * (2000 / hidden_size) ** p` with p = 0.781 for Llama and p = 0.0775 for
  Qwen. We keep the table's rate for a width of 2048 and apply the same width factor when
  the hidden size is known: SmolLM2-135M (a Llama of width 576) gets 2.7 times the table
  rate. Gemma has no fitted exponent; we use Llama's, an assumption, not a measurement.
* **GRPO (RL) is lower**, a quarter of the SFT rate: the policy-gradient signal is noisier
  than cross-entropy on reference answers, each step's data comes from the policy itself
  (a bad step poisons the next batch), and RL recipes for LoRA (tinker-cookbook's math RL,
  TRL's GRPO examples) run at 1e-5..5e-5 on 1B-8B models.

    >>> default_learning_rate("llama", "sft")
    0.0002
    >>> round(default_learning_rate("llama", "grpo", hidden_size=576), 6)
    0.000135
"""

from __future__ import annotations

from typing import Any

from transferlab.errors import TransferlabError, unknown_name

METHODS = ("sft", "grpo")
REFERENCE_WIDTH = 2048  # the table's rates are for models of this hidden size (1B class)

# Peak learning rate of a rank-8, alpha-16 LoRA adapter at the reference width, per method,
# keyed by `model.config.model_type`.
DEFAULT_LEARNING_RATES: dict[str, dict[str, float]] = {
    "sft": {"llama": 2e-4, "qwen2": 2e-4, "qwen3": 2e-4, "gemma3": 2e-4, "gemma3_text": 2e-4, "gemma2": 2e-4},
    "grpo": {"llama": 5e-5, "qwen2": 5e-5, "qwen3": 5e-5, "gemma3": 5e-5, "gemma3_text": 5e-5, "gemma2": 5e-5},
}
FALLBACK_LEARNING_RATES = {"sft": 2e-4, "grpo": 5e-5}  # families not in the table

# Exponent p of the width factor (REFERENCE_WIDTH / hidden_size) ** p (tinker-cookbook's fit).
WIDTH_EXPONENTS: dict[str, float] = {"llama": 0.781, "qwen2": 0.0775, "qwen3": 0.0775}
FALLBACK_WIDTH_EXPONENT = 0.781


def default_learning_rate(model_type: str, method: str = "sft", hidden_size: int | None = None) -> float:
    """The default peak learning rate for a model family (`config.model_type`) and method.

    With `hidden_size`, the rate is scaled by the family's width factor, so small models
    get the larger rates they need. Unknown families get the generic rate of the method.
    """
    if method not in METHODS:
        raise unknown_name("training method", method, METHODS)
    rate = DEFAULT_LEARNING_RATES[method].get(model_type, FALLBACK_LEARNING_RATES[method])
    if hidden_size is not None:
        if hidden_size < 1:
            raise TransferlabError(f"hidden_size must be positive, got {hidden_size}")
        rate *= (REFERENCE_WIDTH / hidden_size) ** WIDTH_EXPONENTS.get(model_type, FALLBACK_WIDTH_EXPONENT)
    return rate


def default_learning_rate_for(model: Any, method: str = "sft") -> float:
    """`default_learning_rate` read off a transformers model's config (family and width)."""
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", "") or ""
    hidden = getattr(config, "hidden_size", None)
    if hidden is None and hasattr(config, "get_text_config"):  # multimodal configs nest the text model
        hidden = getattr(config.get_text_config(), "hidden_size", None)
    return default_learning_rate(model_type, method, hidden_size=hidden)
