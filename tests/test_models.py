"""Model references and loading."""

from __future__ import annotations

import pytest

from transferlab import models
from transferlab.errors import TransferlabError


def test_resolve_builtin_local_and_hub(tmp_path):
    assert models.resolve("smollm2-135m").kind == "builtin"
    (tmp_path / "config.json").write_text("{}")
    assert models.resolve(str(tmp_path)).kind == "local"
    assert models.resolve("HuggingFaceTB/SmolLM2-135M").kind == "hub"


def test_unknown_model_suggests_closest():
    with pytest.raises(TransferlabError, match="did you mean 'smollm2-135m'"):
        models.resolve("smollm-135m")


def test_directory_without_config_is_a_clear_error(tmp_path):
    with pytest.raises(TransferlabError, match="no config.json"):
        models.resolve(str(tmp_path))


def test_device_and_dtype_choice():
    import torch

    assert models.pick_device("cpu") == "cpu"
    assert models.pick_dtype("cpu") == torch.float32 and models.pick_dtype("cuda") == torch.bfloat16
    assert models.pick_dtype("cpu", "bf16") == torch.bfloat16
    with pytest.raises(TransferlabError, match="unknown dtype"):
        models.pick_dtype("cpu", "float8")
    if not torch.cuda.is_available():
        with pytest.raises(TransferlabError, match="CUDA is not available"):
            models.pick_device("cuda")


@pytest.mark.integration
def test_bundled_model_converts_once_and_loads_from_cache():
    first = models.pull("smollm2-135m")
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert models.pull("smollm2-135m") == first  # cached: not converted again
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp
    loaded = models.load("smollm2-135m")
    assert loaded.model.config.model_type == "llama" and loaded.tokenizer.chat_template
    assert loaded.identity.startswith("smollm2-135m@") and loaded.device == "cpu"


@pytest.mark.integration
def test_local_directory_model_loads(tmp_path):
    model = models.tiny_llama()
    model.save_pretrained(tmp_path)
    from transferlab.models import load

    from tiny_models import make_tokenizer

    make_tokenizer().save_pretrained(tmp_path)
    loaded = load(str(tmp_path))
    assert loaded.ref.kind == "local" and loaded.identity.startswith(tmp_path.name)


@pytest.mark.integration
def test_hub_id_loads_from_the_local_hugging_face_cache(tmp_path, monkeypatch):
    """The hub path is real: a model in the standard cache layout loads by its id, offline."""
    from tiny_models import make_tokenizer

    snapshot = tmp_path / "hub" / "models--test-org--tiny" / "snapshots" / "0123456789abcdef0123"
    models.tiny_llama().save_pretrained(snapshot)
    make_tokenizer().save_pretrained(snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0123456789abcdef0123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    loaded = models.load("test-org/tiny")
    assert loaded.ref.kind == "hub" and loaded.identity == "test-org/tiny@0123456789abcdef"
