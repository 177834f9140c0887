"""The GPU studies under experiments/gpu/: each parses and its dry run plans, estimates GPU-hours
and lists what to download, on a machine with no network and an empty Hugging Face cache; and
the order in which a model's size is found without loading it."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from transferlab.cli import app
from transferlab.engine.dry_run import missing_models
from transferlab.engine.model_shapes import KNOWN_MODELS, model_shape, parameters_from_config, size_from_name
from transferlab.engine.rates import RATES_ENV
from transferlab.engine.roofline import GPU_ENV

REPO = Path(__file__).resolve().parents[1]
SPECS = sorted((REPO / "experiments" / "gpu").glob("*.yaml"))
runner = CliRunner()


@pytest.fixture
def offline_home(tmp_path, monkeypatch):
    """An empty HF_HOME, the hub forbidden, and no measured rates: what a fresh laptop has."""
    home = tmp_path / "hf"
    home.mkdir()
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv(RATES_ENV, str(tmp_path / "no-rates.json"))
    monkeypatch.delenv(GPU_ENV, raising=False)
    monkeypatch.chdir(tmp_path)  # a dry run must not write its output directory (relative to here)
    return home


def _spec_models(text: str) -> list[str]:
    found = re.findall(r"^(?:models|model|model_x|model_y):\s*(.+)$", text, re.M)
    return [m.strip() for line in found for m in line.strip("[]").split(",")]


def test_there_is_a_gpu_study_per_seed():
    names = {p.stem for p in SPECS}
    assert {"seed000_translation", "seed002_transfer", "seed003_probes", "seed004_drift"} <= names
    for path in SPECS:
        text = path.read_text()
        assert text.startswith("# Seed 00"), f"{path.name}: the header comment says what it replicates"
        assert "Same as the seed" in text and "Differs" in text, path.name
        assert "device: cuda" in text and "dtype: bfloat16" in text, path.name


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_dry_run_estimates_and_lists_downloads_with_an_empty_cache(path, offline_home, tmp_path):
    result = runner.invoke(app, ["run", str(path), "--dry-run"], env={"COLUMNS": "400"})
    out = result.output
    assert result.exit_code == 0, out
    assert re.search(r"estimate about [\d.]+ GPU-hours on one GPU", out), out
    assert "roofline estimate for H100 SXM at MFU 0.35/0.5" in out
    assert "(unmeasured; docs/results/gpu/rates.json or finished jobs replace it)" in out
    assert "not in the local cache" in out
    for model in _spec_models(path.read_text()):
        download = rf"model {re.escape(model)}: (hf|huggingface-cli) download {re.escape(model)}$"
        assert re.search(download, out, re.M), model
        assert re.search(rf"^model {re.escape(model)}: \d+ layers, width \d+, [\d.]+B parameters", out, re.M), model
    assert re.search(r"^  dataset .+: (hf|huggingface-cli) download --repo-type dataset \S+/\S+$", out, re.M)
    assert not any(offline_home.iterdir()), "a dry run wrote into the Hugging Face cache"
    assert not (tmp_path / "runs").exists(), "a dry run made its output directory"


def test_a_measured_rates_file_replaces_the_unmeasured_rates(offline_home, tmp_path, monkeypatch):
    path = REPO / "experiments" / "gpu" / "seed004_drift.yaml"
    unmeasured = runner.invoke(app, ["run", str(path), "--dry-run"], env={"COLUMNS": "400"}).output

    def measured(speed: float) -> str:
        rates = tmp_path / f"x{speed:g}" / "rates.json"
        rates.parent.mkdir()
        rates.write_text(json.dumps({"format": 1, "device": "NVIDIA H200", "parameters": 1.2e9, "rates": {
            "train": {"tokens_per_s": 30000.0 * speed}, "evaluate": {"tokens_per_s": 100000.0 * speed},
            "generate": {"tokens_per_s": 2000.0 * speed, "batch_size": 32}}}))
        monkeypatch.setenv(RATES_ENV, str(rates))
        return runner.invoke(app, ["run", str(path), "--dry-run"], env={"COLUMNS": "400"}).output

    def hours(text: str) -> float:
        return float(re.search(r"about ([\d.]+) GPU-hours", text).group(1))

    slow, fast = measured(1.0), measured(2.0)
    assert "GPU rates measured on NVIDIA H200 (rates.json" in slow and "unmeasured" not in slow
    assert "roofline" not in slow and "roofline" in unmeasured
    assert hours(fast) == pytest.approx(hours(slow) / 2, rel=0.05)  # the figures follow the file


def test_the_command_line_dry_run_needs_no_network(offline_home, tmp_path):
    """The real entry point in a fresh process, HF_HUB_OFFLINE=1 and an empty HF_HOME."""
    import os

    env = {**os.environ, "HF_HOME": str(offline_home), "HF_HUB_OFFLINE": "1", "COLUMNS": "400",
           RATES_ENV: str(tmp_path / "no-rates.json"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "transferlab", "run",
                           str(REPO / "experiments" / "gpu" / "seed003_probes.yaml"), "--dry-run"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert "GPU-hours" in out and "download --repo-type dataset stanfordnlp/imdb" in out
    assert "download Qwen/Qwen3-4B" in out and "(published sizes; not loaded)" in out
    assert not any(offline_home.iterdir())


# ---- a model's size, without loading it: the fallback order ------------------------------------
def _cache_config(home: Path, repo: str, config: dict, weights: bool = False) -> Path:
    snapshot = home / "hub" / f"models--{repo.replace('/', '--')}" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps(config))
    if weights:
        (snapshot / "model.safetensors").write_bytes(b"")
    return snapshot


def test_model_size_fallback_order(offline_home, tmp_path):
    # 1. a built-in model
    assert model_shape("smollm2-135m").source == "built-in" and model_shape("smollm2-135m").layers == 30
    # 3. a known model with nothing cached: the table
    table = model_shape("meta-llama/Llama-3.2-1B")
    assert (table.layers, table.hidden_size, table.source) == (16, 2048, "table of known models")
    # 2. a cached config.json wins over the table (here a made-up 4-layer variant under the same id)
    small = {**KNOWN_MODELS["llama-3.2-1b"], "num_hidden_layers": 4}
    _cache_config(offline_home, "meta-llama/Llama-3.2-1B", small)
    cached = model_shape("meta-llama/Llama-3.2-1B")
    assert cached.layers == 4 and "local Hugging Face cache" in cached.source
    assert cached.parameters == pytest.approx(parameters_from_config(small))
    # ... and a config alone is not the model: its weights are still to download
    assert [m.name for m in missing_models(["meta-llama/Llama-3.2-1B"])] == ["meta-llama/Llama-3.2-1B"]
    _cache_config(offline_home, "org/with-weights", small, weights=True)
    assert missing_models(["org/with-weights"]) == []
    # 2. a local directory's config.json
    local = tmp_path / "my-model"
    local.mkdir()
    (local / "config.json").write_text(json.dumps({**small, "num_hidden_layers": 6}))
    assert model_shape(str(local)).layers == 6 and "config.json in" in model_shape(str(local)).source
    # 4. the spec: the size its name states; depth unknown
    named = model_shape("someone/Mystery-7B-Instruct")
    assert (named.parameters, named.layers, named.source) == (7e9, None, "the size in its name")
    assert size_from_name("Qwen/Qwen3-30B-A3B") == 3e9 and size_from_name("HuggingFaceTB/SmolLM2-360M") == 360e6
    assert size_from_name("meta-llama/Llama-3.2-1B") == 1e9 and size_from_name("org/gpt2") is None
    # 5. nothing known: the 135M reference, and the estimate says so
    unknown = model_shape("someone/mystery")
    assert unknown.parameters == 135e6 and "unknown" in unknown.source


def test_an_unknown_model_size_is_said_in_the_dry_run(offline_home, tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("models: [someone/mystery]\ntasks: [hub-arc_easy]\ndevice: cuda\n")
    result = runner.invoke(app, ["run", str(spec), "--dry-run"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert "assumed: someone/mystery: size unknown: assumed 135M parameters" in result.output


@pytest.mark.parametrize("name, published", [
    ("llama-3.2-1b", 1.236e9), ("llama-3.2-3b", 3.213e9), ("llama-3.1-8b", 8.030e9), ("qwen2.5-3b-instruct", 3.086e9),
    ("qwen3-4b", 4.022e9), ("qwen3-8b", 8.191e9), ("qwen3-14b", 14.768e9), ("gemma-2-2b", 2.614e9),
    ("gemma-2-9b", 9.242e9), ("gemma-3-1b-it", 1.000e9), ("gemma-3-270m", 268.1e6), ("smollm2-135m", 134.5e6),
    ("smollm2-360m", 361.8e6), ("smollm2-1.7b", 1.711e9),
])
def test_the_table_gives_the_published_parameter_counts(name, published):
    assert parameters_from_config(KNOWN_MODELS[name]) == pytest.approx(published, rel=0.01)


def test_a_mixture_of_experts_counts_its_active_parameters():
    assert parameters_from_config(KNOWN_MODELS["qwen3-30b-a3b"]) == pytest.approx(3.3e9, rel=0.03)


def test_a_probe_study_estimate_counts_hub_rows_from_published_sizes(offline_home):
    from transferlab.engine.model_shapes import model_shape
    from transferlab.engine.roofline import Roofline
    from transferlab.probes.estimate import FIT_SECONDS, dataset_size, estimate_study
    from transferlab.probes.spec import ProbeStudyConfig

    config = ProbeStudyConfig(model="Qwen/Qwen3-4B", datasets=("cities", "hub-copa"), algorithms=("dim", "lr"),
                              limit=20, device="cuda")
    copa = dataset_size(config, "hub-copa")  # 100 validation records: 50/20/30 groups, capped at 20/10/20
    assert (copa.rows, copa.train_rows, copa.source) == ((20 + 10 + 20) * 2, 20 * 2, "published sizes")
    cities = dataset_size(config, "cities")  # offline: built and counted
    assert cities.source == "built" and cities.rows > 0
    estimate, jobs = estimate_study(config)
    assert jobs == {"extract": 2, "fit": 4, "score": 1}
    h100, shape = Roofline(), model_shape("Qwen/Qwen3-4B")
    assert dict(estimate.by_kind)["extract"] == pytest.approx(sum(  # a forward pass per batch of 16 rows
        h100.extract_seconds(d.rows * (d.chars / 4 + 1), math.ceil(d.rows / 16), shape) for d in (cities, copa)))
    per_fit = FIT_SECONDS * (2560 / 576) ** 2 / 250  # per train row, at Qwen3-4B's width, on the CPU
    assert dict(estimate.by_kind)["fit (CPU)"] == pytest.approx(
        2 * 36 * per_fit * (cities.train_rows + copa.train_rows))


def test_seed003_extraction_lands_near_the_seeds_own_hours(offline_home, monkeypatch):
    """Seed 003 reports 1-2 hours to extract Qwen3-4B's activations on an A40/A100, one text per
    forward pass (its original code, mishajw/repeng's `get_model_activations`): the roofline of
    that workload at batch 1 is within a small factor of it, and our batches of 32 cut it to minutes."""
    import dataclasses

    from transferlab.probes.estimate import estimate_study
    from transferlab.probes.spec import parse_probe_spec

    path = REPO / "experiments" / "gpu" / "seed003_probes.yaml"
    config = parse_probe_spec(path.read_text(), str(path))

    def extract_hours(gpu: str, batch: int) -> float:
        monkeypatch.setenv(GPU_ENV, gpu)
        return dict(estimate_study(dataclasses.replace(config, batch_size=batch))[0].by_kind)["extract"] / 3600

    for gpu in ("a100", "a40"):
        assert 1 / 5 < extract_hours(gpu, 1) < 2, gpu  # the seed's 1-2 h, within a factor of 5
        assert extract_hours(gpu, 32) < extract_hours(gpu, 1) / 2.5
    assert extract_hours("h100", 32) < 5 / 60  # the spec as written, on the default GPU: minutes
