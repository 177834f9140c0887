"""Tinker from a spec: a checkpoint in the service's format becomes a PEFT adapter for the local
model (tinker-cookbook's `weights`), which plain PEFT loads and which changes the model's outputs
exactly as its weights say; `backend: tinker` learners are planned, keyed and refused as they should be.

Offline, the service itself cannot run: the download test serves the checkpoint's files from
file:// URLs through the SDK's own response type, in place of the service's signed URLs.
"""

from __future__ import annotations

import datetime
import json
import os
from concurrent.futures import Future
from pathlib import Path

import pytest
import torch

from tiny_models import make_tokenizer
from transferlab.engine.spec import SpecError
from transferlab.errors import TransferlabError
from transferlab.models import tiny_llama
from transferlab.transfer.plan import plan_transfer
from transferlab.transfer.spec import parse_spec

import tinker  # noqa: E402  (make setup installs the tinker extra and tinker-cookbook)
import tinker_cookbook.weights  # noqa: E402,F401
from transferlab.learn import tinker_weights as tw  # noqa: E402
from transferlab.learn.tinker import TinkerRun  # noqa: E402

RANK, ALPHA = 4, 8
MODULES = {"q_proj": "self_attn", "v_proj": "self_attn", "down_proj": "mlp"}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tinker") / "tiny"
    tokenizer = make_tokenizer()
    tiny_llama(vocab_size=len(tokenizer), seed=0).save_pretrained(root, safe_serialization=True)
    tokenizer.save_pretrained(root)
    return root


def service_checkpoint(directory: Path, seed: int = 0) -> dict[str, torch.Tensor]:
    """What the service exports for a LoRA run on the tiny Llama: `adapter_model.safetensors` with
    Tinker's key names (A: (r, in), B: (out, r), unscaled) and `adapter_config.json` with r and alpha."""
    from safetensors.torch import save_file

    model = tiny_llama(vocab_size=len(make_tokenizer()), seed=0)
    shapes = {n: p.shape for n, p in model.named_parameters()}
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for layer in range(model.config.num_hidden_layers):
        for module, block in MODULES.items():
            path = f"model.layers.{layer}.{block}.{module}"
            out_dim, in_dim = shapes[f"{path}.weight"]
            tensors[f"base_model.model.{path}.lora_A.weight"] = torch.randn(RANK, in_dim, generator=generator) * 0.3
            tensors[f"base_model.model.{path}.lora_B.weight"] = torch.randn(out_dim, RANK, generator=generator) * 0.3
    directory.mkdir(parents=True)
    save_file(tensors, str(directory / "adapter_model.safetensors"))
    (directory / "adapter_config.json").write_text(json.dumps({"r": RANK, "lora_alpha": ALPHA}))
    return tensors


def test_a_service_checkpoint_becomes_a_peft_adapter_that_changes_outputs_as_its_weights_say(tiny_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from transferlab.engine.external_adapters import check_fits

    tensors = service_checkpoint(tmp_path / "checkpoint")
    out = tw.convert_checkpoint(tmp_path / "checkpoint", tiny_dir, tmp_path / "adapter", "tiny")
    assert sorted(p.name for p in out.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    config = json.loads((out / "adapter_config.json").read_text())
    assert (config["peft_type"], config["r"], config["lora_alpha"]) == ("LORA", RANK, ALPHA)
    assert sorted(config["target_modules"]) == sorted(MODULES) and config["base_model_name_or_path"] == "tiny"
    check_fits(out, str(tiny_dir))  # our own wrong-base check accepts it for the model it was converted for

    ids = torch.tensor([[5, 17, 40, 3, 61, 22, 9]])
    base = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
    with torch.no_grad():
        before = base(ids).logits
    by_hand = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()  # W + (alpha / r) B A, module by module
    with torch.no_grad():
        params = dict(by_hand.named_parameters())
        for key, a in tensors.items():
            if ".lora_A." in key:
                b = tensors[key.replace("lora_A", "lora_B")]
                params[key.removeprefix("base_model.model.").replace(".lora_A.weight", ".weight")].add_(
                    ALPHA / RANK * b @ a)
        expected = by_hand(ids).logits
        peft_model = PeftModel.from_pretrained(base, str(out)).eval()  # plain PEFT, nothing of ours
        got = peft_model(ids).logits
    assert (got - expected).abs().max().item() < 1e-4
    assert (got - before).abs().max().item() > 1e-2  # and the change is real


def test_conversion_errors_are_one_line(tiny_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(TransferlabError, match="cannot convert the Tinker checkpoint") as err:
        tw.convert_checkpoint(tmp_path / "empty", tiny_dir, tmp_path / "adapter", "tiny")
    assert "\n" not in str(err.value)


class _Done(Future):
    def __init__(self, value):
        super().__init__()
        self.set_result(value)


def serve_from_files(monkeypatch, checkpoint: Path, seen: list[str]) -> None:
    """The service's part of a download, offline: the REST client signs a file:// URL per file of
    the checkpoint, in the SDK's own response type."""

    class Rest:
        def __init__(self, **_):
            pass

        def get_external_weights_urls(self, tinker_path):
            seen.append(tinker_path)
            urls = {p.name: p.resolve().as_uri() for p in checkpoint.iterdir()}
            expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
            return _Done(tinker.types.ExternalWeightsUrlsResponse(urls=urls, expires=expires))

    class Service:
        def __init__(self, **_):
            pass

        def close(self, status):
            return _Done(None)

    monkeypatch.setattr(tinker, "RestClient", Rest)
    monkeypatch.setattr(tinker, "ServiceClient", Service)


def test_a_run_is_downloaded_and_converted_for_the_local_model(tiny_dir, tmp_path, monkeypatch):
    from transferlab.learn.sft import TrainResult

    service_checkpoint(tmp_path / "on-service")
    seen: list[str] = []
    serve_from_files(monkeypatch, tmp_path / "on-service", seen)
    path = "tinker://run-1/external_weights/transferlab-abc"
    assert tinker.ParsedCheckpointTinkerPath.from_tinker_path(path).checkpoint_type == "external"
    run = TinkerRun("meta-llama/Llama-3.2-1B", "sft", TrainResult(1, 1, 1.0), "tinker://run-1/sampler_weights/x",
                    "tinker://run-1/weights/x", path)
    out = tw.local_adapter(run, tiny_dir, tmp_path / "adapter", "tiny")
    assert seen == [path]
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == "tiny"
    assert run.to_json()["external_path"] == path
    with pytest.raises(TransferlabError, match="saved no external weights"):
        tw.local_adapter(TinkerRun("m", "sft", TrainResult(1, 1, 1.0), "s", "t"), tiny_dir, tmp_path / "x", "tiny")


def test_save_weights_external_request_is_the_sdks():
    request = tinker.types.SaveWeightsExternalRequest(model_id="m", path="transferlab-0123456789abcdef", seq_id=1)
    assert request.type == "save_weights_external" and request.path == "transferlab-0123456789abcdef"


SPEC = """\
name: tk
models: [{model}]
tasks: [toy-yes]
task_files: [toy-yes.yaml]
learners:
  - {{name: lora, type: lora, rank: 2, steps: 2}}
{learner}
budgets: {{train_examples: 8, eval_examples: 8}}
similarity: []
device: cpu
output: {out}
"""
TASK = """\
name: toy-yes
output_type: multiple_choice
source: {path: toy-yes.jsonl}
prompt: "{{ q }}"
choices: ["Y", "N"]
answer: label
"""


@pytest.fixture(scope="module")
def spec_dir(tmp_path_factory, tiny_dir) -> Path:
    root = tmp_path_factory.mktemp("tinker-spec")
    (root / "toy-yes.jsonl").write_text("".join(json.dumps({"q": f"q{i}", "label": i % 2}) + "\n" for i in range(40)))
    (root / "toy-yes.yaml").write_text(TASK)
    return root


def tinker_spec(spec_dir, tiny_dir, learner: str):
    return parse_spec(SPEC.format(model=tiny_dir, learner=learner, out=spec_dir / "run"), str(spec_dir / "s.yaml"))


TINKER = "  - {name: tk, type: lora, backend: tinker, tinker_model: meta-llama/Llama-3.2-1B, rank: 2, steps: 2}"


def test_without_a_key_a_tinker_learner_fails_before_any_work(spec_dir, tiny_dir, monkeypatch):
    monkeypatch.delenv("TINKER_API_KEY", raising=False)
    spec = tinker_spec(spec_dir, tiny_dir, TINKER)
    with pytest.raises(TransferlabError, match="set TINKER_API_KEY") as err:
        plan_transfer(spec)
    assert "\n" not in str(err.value)


def test_tinker_learners_get_their_own_keys_and_local_ones_keep_theirs(spec_dir, tiny_dir, monkeypatch):
    monkeypatch.setenv("TINKER_API_KEY", "not-a-real-key")  # planning checks it is set; nothing is sent
    local = plan_transfer(tinker_spec(spec_dir, tiny_dir, ""))
    both = plan_transfer(tinker_spec(spec_dir, tiny_dir, TINKER))
    assert {j.key for j in local.jobs} < {j.key for j in both.jobs}
    (job,) = [j for j in both.jobs if j.kind == "train" and j.params["learner"] == "tk"]
    assert job.params["train"]["backend"] == "tinker" and job.params["train"]["tinker_model"] == "meta-llama/Llama-3.2-1B"
    assert all("backend" not in j.params["train"] for j in local.jobs if j.kind == "train")
    with pytest.raises(TransferlabError, match="set tinker_model on the learner"):
        plan_transfer(tinker_spec(spec_dir, tiny_dir, TINKER.replace("tinker_model: meta-llama/Llama-3.2-1B, ", "")))


@pytest.mark.parametrize("learner, message", [
    ("  - {name: tk, type: lora, backend: tinker, alpha: 32}", "alpha is not available with backend: tinker"),
    ("  - {name: tk, type: grpo, backend: tinker, inner_steps: 2}", "inner_steps is not available"),
    ("  - {name: tk, type: grpo, backend: tinker, sample_choices: true}", "sample_choices is not available"),
    ("  - {name: tk, type: lora, tinker_model: x/y}", "it needs backend: tinker"),
    ("  - {name: tk, type: lora, backend: cloud}", "unknown backend 'cloud'"),
])
def test_tinker_settings_the_service_does_not_take_are_refused(spec_dir, tiny_dir, learner, message):
    with pytest.raises(SpecError, match=message):
        tinker_spec(spec_dir, tiny_dir, learner)


@pytest.mark.skipif(not os.environ.get("TINKER_API_KEY"), reason="TINKER_API_KEY is unset: needs the Tinker service")
def test_a_spec_trains_on_tinker_and_evaluates_the_converted_adapter_here(tmp_path):
    """On the service: SmolLM2's Tinker twin is not served, so this runs a Llama-3.2-1B in the local cache."""
    from transferlab.transfer.study import run_study

    model = os.environ.get("TRANSFERLAB_TINKER_TEST_MODEL", "meta-llama/Llama-3.2-1B")
    spec = parse_spec(f"""name: tk
models: [{model}]
tasks: [larger_than]
learners: [{{name: tk, type: lora, backend: tinker, rank: 8, steps: 4, batch_size: 8, learning_rate: 5.0e-4}}]
budgets: {{train_examples: 64, eval_examples: 20}}
similarity: []
output: {tmp_path / 'run'}
""", "tk.yaml")
    plan, report, _ = run_study(spec, quiet=True)
    assert not report.failed and plan.count("train") == 1
