"""What a model's size is, known before (and without) loading or downloading it.

Estimates and dry runs need a model's depth, width and parameter count, and a GPU study's
models are usually not on disk yet. The first of these that knows wins:

1. a built-in model (its record in `models.BUILTIN_MODELS`);
2. a `config.json`: in the model's directory, or in the local Hugging Face cache for a hub id;
3. the table of known models below (their published configs, so no download is needed);
4. the spec itself: the size written in the model's name (`Qwen3-30B-A3B` -> 3B active,
   `SmolLM2-360M` -> 360M); depth and width stay unknown.
Else the size is unknown and the estimate says it assumed the 135M reference.

Parameter counts are compute counts: embeddings tied to the output head count once, and a
mixture-of-experts model counts the experts a token goes through (its active parameters).
Where a config is known (1-3), the shape also says what a GPU roofline needs (`roofline`):
the weights stored (every expert), the key/value width of the KV cache, and the projections'
widths, from which a LoRA adapter's size follows (`lora_parameters`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

REFERENCE_PARAMETERS = 135e6  # SmolLM2-135M: what an unknown model is assumed to be
BUILTIN_PARAMETERS = {"smollm2-135m": 135e6, "gemma3-270m": 270e6}
BUILTIN_TABLE = {"smollm2-135m": "smollm2-135m", "gemma3-270m": "gemma-3-270m"}  # their rows in KNOWN_MODELS


@dataclass(frozen=True)
class ModelShape:
    parameters: float
    layers: int | None
    hidden_size: int | None
    source: str  # where the numbers came from, for the dry run to say
    weights: float | None = None  # parameters stored (a mixture of experts: all of them); None = `parameters`
    kv_width: int | None = None  # key/value heads x head width: a layer's KV cache per token is 2 x this
    projections: tuple[tuple[str, int, int], ...] = ()  # (module name, input width, output width) of a layer

    def describe(self) -> str:
        depth = f"{self.layers} layers, width {self.hidden_size}, " if self.layers else ""
        return f"{depth}{self.parameters / 1e9:.2f}B parameters ({self.source})"


def _config(layers: int, hidden: int, intermediate: int, heads: int, kv_heads: int, vocab: int,
            head_dim: int | None = None, tied: bool = True) -> dict[str, Any]:
    return {"num_hidden_layers": layers, "hidden_size": hidden, "intermediate_size": intermediate,
            "num_attention_heads": heads, "num_key_value_heads": kv_heads, "vocab_size": vocab,
            "head_dim": head_dim or hidden // heads, "tie_word_embeddings": tied}


# layers, width, MLP width, attention heads, key/value heads, vocabulary[, head width, tied embeddings]
_LLAMA_1B = _config(16, 2048, 8192, 32, 8, 128256)
_LLAMA_3B = _config(28, 3072, 8192, 24, 8, 128256)
_LLAMA_8B = _config(32, 4096, 14336, 32, 8, 128256, tied=False)
_QWEN25_3B = _config(36, 2048, 11008, 16, 2, 151936)
_QWEN3_30B_A3B = {**_config(48, 2048, 6144, 32, 4, 151936, 128, tied=False), "num_experts": 128,
                  "num_experts_per_tok": 8, "moe_intermediate_size": 768}
_GEMMA2_2B = _config(26, 2304, 9216, 8, 4, 256000, 256)
_GEMMA2_9B = _config(42, 3584, 14336, 16, 8, 256000, 256)
_GEMMA3_270M = _config(18, 640, 2048, 4, 1, 262144, 256)
_GEMMA3_1B = _config(26, 1152, 6912, 4, 1, 262144, 256)
_GEMMA3_4B = _config(34, 2560, 10240, 8, 4, 262208, 256)
_SMOL_135M = _config(30, 576, 1536, 9, 3, 49152)
_SMOL_360M = _config(32, 960, 2560, 15, 5, 49152)
_SMOL_1B7 = _config(24, 2048, 8192, 32, 32, 49152)
# Known models by the repository name (the part after the organisation), lower case: the
# fields of their published config.json that the size depends on.
KNOWN_MODELS: dict[str, dict[str, Any]] = {
    "llama-3.2-1b": _LLAMA_1B, "llama-3.2-1b-instruct": _LLAMA_1B,
    "llama-3.2-3b": _LLAMA_3B, "llama-3.2-3b-instruct": _LLAMA_3B,
    "llama-3.1-8b": _LLAMA_8B, "llama-3.1-8b-instruct": _LLAMA_8B,
    "qwen2.5-3b": _QWEN25_3B, "qwen2.5-3b-instruct": _QWEN25_3B,
    "qwen3-4b": _config(36, 2560, 9728, 32, 8, 151936, 128),
    "qwen3-8b": _config(36, 4096, 12288, 32, 8, 151936, 128, tied=False),
    "qwen3-14b": _config(40, 5120, 17408, 40, 8, 151936, 128, tied=False),
    "qwen3-30b-a3b": _QWEN3_30B_A3B,
    "gemma-2-2b": _GEMMA2_2B, "gemma-2-2b-it": _GEMMA2_2B, "gemma-2-9b": _GEMMA2_9B, "gemma-2-9b-it": _GEMMA2_9B,
    "gemma-3-270m": _GEMMA3_270M, "gemma-3-270m-it": _GEMMA3_270M,
    "gemma-3-1b-pt": _GEMMA3_1B, "gemma-3-1b-it": _GEMMA3_1B, "gemma-3-4b-pt": _GEMMA3_4B, "gemma-3-4b-it": _GEMMA3_4B,
    "smollm2-135m": _SMOL_135M, "smollm2-135m-instruct": _SMOL_135M,
    "smollm2-360m": _SMOL_360M, "smollm2-360m-instruct": _SMOL_360M,
    "smollm2-1.7b": _SMOL_1B7, "smollm2-1.7b-instruct": _SMOL_1B7,
}


def _widths(c: dict[str, Any]) -> tuple[int, int, int, int]:
    """Width, attention width (heads x head width), key/value width and MLP width of one expert."""
    hidden = c.get("hidden_size", 0)
    heads = c.get("num_attention_heads") or 1
    kv = c.get("num_key_value_heads") or heads
    head_dim = c.get("head_dim") or hidden // heads
    mlp = c.get("moe_intermediate_size", c.get("intermediate_size", 4 * hidden)) if _experts(c) else c.get(
        "intermediate_size", 4 * hidden)
    return hidden, heads * head_dim, kv * head_dim, mlp


def _experts(c: dict[str, Any]) -> int:
    return c.get("num_experts") or c.get("num_local_experts") or c.get("n_routed_experts") or 0


def parameters_from_config(c: dict[str, Any], stored: bool = False) -> float:
    """Parameters a token goes through (or, `stored`, all the model holds: every expert), from a
    transformers config (its text part for multimodal ones)."""
    c = c.get("text_config", c)
    hidden, attention_width, kv_width, mlp_width = _widths(c)
    attention = 2 * hidden * attention_width + 2 * hidden * kv_width  # q and o, k and v
    experts = _experts(c)
    used = (experts if stored else c.get("num_experts_per_tok", 1)) if experts else 1
    mlp = 3 * hidden * mlp_width * used  # gate, up and down projections
    embeddings = c.get("vocab_size", 0) * hidden * (1 if c.get("tie_word_embeddings", True) else 2)
    return float(embeddings + c.get("num_hidden_layers", 0) * (attention + mlp))


def _shape(c: dict[str, Any], source: str, parameters: float | None = None) -> ModelShape:
    """The shape a config gives (`parameters` overrides the count, as for the built-in models)."""
    c = c.get("text_config", c)
    hidden, attention_width, kv_width, mlp_width = _widths(c)
    projections = (("q_proj", hidden, attention_width), ("k_proj", hidden, kv_width), ("v_proj", hidden, kv_width),
                   ("o_proj", attention_width, hidden), ("gate_proj", hidden, mlp_width),
                   ("up_proj", hidden, mlp_width), ("down_proj", mlp_width, hidden))
    return ModelShape(parameters or parameters_from_config(c), int(c["num_hidden_layers"]), int(hidden), source,
                      parameters_from_config(c, stored=True), int(kv_width), projections)


def lora_parameters(shape: ModelShape, rank: int, target_modules: Sequence[str]) -> float:
    """Weights of a LoRA adapter of this rank on these modules: rank x (input + output width) per
    adapted projection and layer; 0 when the shape's projections are unknown (the size in a name)."""
    targets = set(target_modules)
    if "all-linear" in targets:
        targets = {name for name, _, _ in shape.projections}
    per_layer = sum(d_in + d_out for name, d_in, d_out in shape.projections if name in targets)
    return float(rank * per_layer * (shape.layers or 0))


def hub_cache() -> Path:
    """The Hugging Face hub cache, read from the environment at call time (HF_HUB_CACHE, HF_HOME)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path("~/.cache/huggingface/hub").expanduser()


def cached_snapshot(repo_id: str, kind: str = "model") -> Path | None:
    """The newest snapshot directory of a hub repository in the local cache, if any."""
    folder = hub_cache() / f"{kind}s--{repo_id.replace('/', '--')}" / "snapshots"
    found = sorted(folder.glob("*"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    return found[-1] if found else None


def has_weights(directory: Path) -> bool:
    return any(directory.glob("*.safetensors")) or any(directory.glob("*.bin")) or any(
        directory.glob("*.safetensors.index.json"))


def model_config(name: str) -> tuple[dict[str, Any], str] | None:
    """A model's config.json and where it was found: its directory, or the hub cache for a hub id."""
    path = Path(name).expanduser()
    if (path / "config.json").is_file():
        return json.loads((path / "config.json").read_text()), f"config.json in {path}"
    if "/" in name and not name.startswith((".", "/", "~")):
        snapshot = cached_snapshot(name)
        if snapshot is not None and (snapshot / "config.json").is_file():
            return json.loads((snapshot / "config.json").read_text()), "config.json in the local Hugging Face cache"
    return None


SIZE_IN_NAME = re.compile(r"(?:^|[-_])(A)?(\d+(?:\.\d+)?)([BM])(?=$|[-_])", re.IGNORECASE)


def size_from_name(name: str) -> float | None:
    """The parameter count a model's name states (`-1.7B`, `-360M`; `-A3B` is the active count)."""
    found = SIZE_IN_NAME.findall(name.rsplit("/", 1)[-1])
    if not found:
        return None
    active = [f for f in found if f[0]]
    _, number, unit = (active or found)[-1]
    return float(number) * (1e9 if unit.upper() == "B" else 1e6)


def model_shape(name: str) -> ModelShape:
    """The size of a model by its spec name, without loading or downloading it (see the module doc)."""
    from transferlab.models import BUILTIN_MODELS

    if name in BUILTIN_MODELS:
        m = BUILTIN_MODELS[name]
        shape = ModelShape(BUILTIN_PARAMETERS.get(name, REFERENCE_PARAMETERS), None, None, "built-in")
        if name in BUILTIN_TABLE:
            shape = _shape(KNOWN_MODELS[BUILTIN_TABLE[name]], "built-in", shape.parameters)
        return replace(shape, layers=m.num_layers, hidden_size=m.hidden_size)
    found = model_config(name)
    if found is not None:
        config, where = found
        text = config.get("text_config", config)
        if text.get("hidden_size") and text.get("num_hidden_layers"):
            return _shape(config, where)
    known = KNOWN_MODELS.get(name.rsplit("/", 1)[-1].lower())
    if known is not None:
        return _shape(known, "table of known models")
    stated = size_from_name(name)
    if stated is not None:
        return ModelShape(stated, None, None, "the size in its name")
    return ModelShape(REFERENCE_PARAMETERS, None, None, "size unknown: assumed 135M parameters")
