"""The plan's time estimate: proportional to the work, calibrated by finished jobs; hub tasks counted
from their published sizes without loading; GPU rates measured (rates file) or, unmeasured, a roofline
model of a reference GPU, checked against known figures."""

from __future__ import annotations

import json
import math

import pytest

from transferlab.engine.estimate import Estimate, estimate_plan, evaluation_work, job_work, model_parameters
from transferlab.engine.jobs import Job
from transferlab.engine.store import Store
from transferlab.engine.model_shapes import (KNOWN_MODELS, ModelShape, lora_parameters, model_shape,
                                              parameters_from_config)
from transferlab.engine.rates import CPU_RATES, RATES_ENV, rates_for, read_rates
from transferlab.engine.roofline import EAGER_LAYER_S, GPU_ENV, GPUS, Roofline
from transferlab.engine.workload import curve_points, mean_tokens, split_count, train_steps
from transferlab.errors import TransferlabError
from transferlab.tasks import get_task


def _train(key: str, steps: int, model: str = "smollm2-135m") -> Job:
    return Job("train", key, {"model": model, "task": "cities", "train_examples": 64,
                              "train": {"steps": steps, "batch_size": 8, "max_seq_len": 256}})


def _evaluate(key: str, task: str, n: int) -> Job:
    return Job("evaluate", key, {"model": "smollm2-135m", "task": task, "split": "test", "eval_examples": n,
                                 "max_new_tokens": 64, "batch_size": 16})


def test_work_grows_with_steps_examples_and_model_size():
    assert job_work(_train("a", 40)) == pytest.approx(2 * job_work(_train("b", 20)))
    assert job_work(_evaluate("c", "cities", 100)) > job_work(_evaluate("d", "cities", 10))
    assert job_work(_evaluate("e", "gsm8k", 16)) > job_work(_evaluate("f", "cities", 16))  # decoding costs more
    assert model_parameters("gemma3-270m") == 2 * model_parameters("smollm2-135m")
    assert estimate_plan([_train("g", 10, "gemma3-270m")]).seconds == pytest.approx(
        2 * estimate_plan([_train("h", 10)]).seconds)


def test_finished_jobs_calibrate_the_rest_and_are_not_counted(tmp_path):
    jobs = [_train("t1", 10), _train("t2", 10)]
    store = Store(tmp_path)
    default = estimate_plan(jobs, store)
    assert default.source == "default CPU rates"
    store.record_job("t1", "train", "done", seconds=3 * job_work(jobs[0]))  # really 3x slower than the default
    calibrated = estimate_plan(jobs, store)
    assert "1 finished jobs" in calibrated.source
    assert calibrated.seconds == pytest.approx(3 * job_work(jobs[1]))
    assert "min" in calibrated.describe() and "rough" in calibrated.describe()


# ---- hub tasks, devices and measured rates ----------------------------------------------------


LLAMA_1B = parameters_from_config(KNOWN_MODELS["llama-3.2-1b"])  # 1.2357B: the published count less its norms


def _no_rates_file(monkeypatch, tmp_path):
    monkeypatch.setenv(RATES_ENV, str(tmp_path / "absent.json"))
    monkeypatch.delenv(GPU_ENV, raising=False)


def _rates_file(tmp_path, **change):
    data = {"format": 1, "device": "NVIDIA H200", "dtype": "bfloat16", "parameters": LLAMA_1B,
            "rates": {"train": {"tokens_per_s": 40000.0, "batch_size": 32}, "evaluate": {"tokens_per_s": 120000.0},
                      "generate": {"tokens_per_s": 3200.0, "batch_size": 16}}}
    data.update(change)
    path = tmp_path / "rates.json"
    path.write_text(json.dumps(data))
    return path


def test_a_hub_task_is_counted_from_its_published_sizes_and_never_loaded():
    task = get_task("hub-mmlu-college-chemistry")  # cais/mmlu college_chemistry: dev 8, test 100
    job = Job("evaluate", "k", {"model": "smollm2-135m", "task": task.name, "split": "test", "eval_examples": 0,
                                "max_new_tokens": 0, "batch_size": 16})
    per_example = (574 + 168) / 4 + 20  # MMLU's figures (measured on the offline twin) + the chat template
    assert job_work(job) == pytest.approx(100 * per_example / 1500)
    gsm = Job("evaluate", "g", {"model": "smollm2-135m", "task": "hub-gsm8k", "split": "test", "eval_examples": 0,
                                "max_new_tokens": 0, "batch_size": 32})
    batches = math.ceil(1319 / 20)  # the CPU decodes batches of up to 20
    assert job_work(gsm) == pytest.approx(1319 * (419 / 4 + 20) / 1500 + batches * 256 / 8.0)
    assert task._cache is None and get_task("hub-gsm8k")._cache is None  # nothing was read


def test_a_carved_dev_split_is_taken_out_of_train():
    # GSM8K publishes train 7,473 and test 1,319; the task carves 5% of train for dev by hash
    assert split_count("hub-gsm8k", "dev", load=False) == round(7473 * 0.05)
    assert split_count("hub-gsm8k", "train", load=False) == 7473 - round(7473 * 0.05)
    assert split_count("hub-gsm8k", "test", load=False) == 1319
    assert split_count("hub-mbpp", "dev", load=False) == 90  # MBPP keeps its own validation split


def test_steps_from_epochs_and_the_learning_curve_points():
    assert train_steps({"steps": 1000, "batch_size": 32}, 0, 7099) == 1000
    assert train_steps({"steps": 0, "epochs": 1.0, "batch_size": 8}, 0, 384) == 48  # all of it, once
    assert train_steps({"steps": 0, "epochs": 2.0, "batch_size": 8}, 100, 384) == 25  # the budget caps the rows
    assert curve_points(1000, 100) == 11 and curve_points(250, 100) == 4 and curve_points(50, 0) == 0
    sft = Job("train", "s", {"model": "smollm2-135m", "task": "hub-mbpp", "train_examples": 0,
                             "train": {"steps": 0, "epochs": 1.0, "batch_size": 8, "max_seq_len": 512}})
    assert job_work(sft) == pytest.approx(48 * 8 * mean_tokens("hub-mbpp", "train", True) / 300)
    with_curve = Job("train", "c", {**sft.params, "train": {**sft.params["train"], "eval_every": 16,
                                                            "eval_examples": 30}})
    point = evaluation_work("hub-mbpp", "dev", 30, 16, None) + 30 * mean_tokens("hub-mbpp", "dev", True) / 1500
    assert job_work(with_curve) == pytest.approx(job_work(sft) + 4 * point)  # steps 0, 16, 32, 48


def test_grpo_work_is_sampling_plus_updates():
    job = Job("train", "r", {"model": "smollm2-135m", "task": "hub-gsm8k", "train_examples": 0,
                             "train": {"method": "grpo", "steps": 10, "prompts_per_step": 32, "group_size": 4,
                                       "max_new_tokens": 0, "kl_coef": 0.0}})
    sequences, new = 128, 256
    decode = math.ceil(sequences / 20) * new / 8.0
    update = sequences * (mean_tokens("hub-gsm8k", "train", False) + new) / 300
    assert job_work(job) == pytest.approx(10 * (decode + update))
    kl = Job("train", "q", {**job.params, "train": {**job.params["train"], "kl_coef": 0.05}})
    assert job_work(kl) == pytest.approx(job_work(job) + 10 * update * 300 / 1500)  # a reference forward pass


def test_gpu_estimates_without_a_rates_file_are_a_roofline_and_say_so(tmp_path, monkeypatch):
    _no_rates_file(monkeypatch, tmp_path)
    jobs = [_train("a", 20, "meta-llama/Llama-3.2-1B"), _evaluate("b", "cities", 50)]
    cpu, gpu = estimate_plan(jobs, device="cpu"), estimate_plan(jobs, device="cuda")
    assert gpu.source == ("roofline estimate for H100 SXM at MFU 0.35/0.5, at least 1 ms a layer a pass "
                          "(unmeasured; docs/results/gpu/rates.json or finished jobs replace it)")
    assert "GPU-hours" in gpu.describe() and "min" in cpu.describe() and cpu.source == "default CPU rates"
    assert any("989 TFLOP/s" in n and GPU_ENV in n for n in gpu.notes)
    assert 100 < cpu.seconds / gpu.seconds < 10_000  # a GPU, not the CPU x 30
    # on the CPU the 1B model still costs its parameter count over the 135M reference (the table of known models)
    assert estimate_plan(jobs[:1]).seconds == pytest.approx(job_work(_train("s", 20)) * LLAMA_1B / 135e6)
    monkeypatch.setenv(GPU_ENV, "a100")  # the reference GPU changes GPU figures only
    assert estimate_plan(jobs, device="cpu").seconds == cpu.seconds


def test_measured_gpu_rates_are_read_from_the_rates_file(tmp_path, monkeypatch):
    path = _rates_file(tmp_path)
    monkeypatch.setenv(RATES_ENV, str(path))
    rates = rates_for("cuda")
    assert (rates.train_tokens_per_s, rates.score_tokens_per_s, rates.decode_steps_per_s) == (40000, 120000, 200)
    assert rates.extract_tokens_per_s == 120000  # no extract entry: a forward pass, the evaluate rate
    assert "measured on NVIDIA H200" in rates.source and rates_for("cpu") is CPU_RATES
    train = _train("t", 100, "meta-llama/Llama-3.2-1B")
    estimate = estimate_plan([train], device="cuda")
    tokens = 100 * 8 * mean_tokens("cities", "train", True)  # the rates were measured on this very model size
    assert estimate.seconds == pytest.approx(tokens / 40000) and "measured" in estimate.describe()
    generate = Job("evaluate", "g", {"model": "meta-llama/Llama-3.2-1B", "task": "hub-gsm8k", "split": "test",
                                     "eval_examples": 64, "max_new_tokens": 100, "batch_size": 32})
    # batches of the measured 16 sequences, each 100 decoding steps at 3200 / 16 steps per second
    assert estimate_plan([generate], device="cuda").seconds == pytest.approx(
        64 * (419 / 4 + 20) / 120000 + 4 * 100 / 200)


@pytest.mark.parametrize("change, field", [
    ({"format": 2}, "format"), ({"parameters": 0}, "parameters"),
    ({"rates": {"train": {"tokens_per_s": 1.0}, "evaluate": {"tokens_per_s": 1.0}}}, "rates.generate"),
    ({"rates": {"train": {"tokens_per_s": "fast"}, "evaluate": {"tokens_per_s": 1.0},
                "generate": {"tokens_per_s": 1.0, "batch_size": 4}}}, "rates.train"),
])
def test_a_malformed_rates_file_is_one_line_naming_the_field(tmp_path, change, field):
    with pytest.raises(TransferlabError, match=field) as err:
        read_rates(_rates_file(tmp_path, **change))
    assert "\n" not in str(err.value) and "docs/gpu.md" in str(err.value)


def test_cpu_work_on_a_gpu_study_is_reported_apart():
    e = Estimate(7200.0 + 3600.0, "roofline", "cuda", (("extract", 7200.0), ("fit (CPU)", 3600.0)))
    assert e.describe().startswith("about 2.0 GPU-hours on one GPU and 1.0 CPU-hours (extract 2.0 h, fit (CPU) 1.0 h")
    minutes = Estimate(94.0, "roofline", "cuda", (("extract", 94.0),))  # a few GPU-minutes do not read 0.0
    assert minutes.describe() == "about 0.026 GPU-hours on one GPU (extract 2 min; roofline; rough)"


# ---- the roofline: checked against FLOP arithmetic and published figures ------------------------
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def test_an_sl_step_of_llama_1b_costs_its_flops_at_the_assumed_mfu():
    llama, h100 = model_shape("meta-llama/Llama-3.2-1B"), Roofline()
    tokens = 32 * 512
    full = h100.train_seconds(tokens, 1, llama, None)  # 6N a token with a full backward
    assert full == pytest.approx(6 * 1.2357e9 * tokens / (989e12 * 0.35), rel=1e-3) and 0.33 < full < 0.37
    adapter = lora_parameters(llama, 32, ALL_LINEAR)
    assert adapter == pytest.approx(22.54e6, rel=1e-3)  # what PEFT reports for r32 on every projection
    lora = h100.train_seconds(tokens, 1, llama, adapter)  # 4N + 6 N_lora, as transfer.efficiency counts
    assert lora == pytest.approx(full * (4 * LLAMA_1B + 6 * adapter) / (6 * LLAMA_1B))
    assert 3 * 60 < 1000 * lora < 1000 * full < 7 * 60  # seed 002's 1000 steps: minutes, not hours
    assert Roofline("a100").train_seconds(tokens, 1, llama, adapter) == pytest.approx(lora * 989 / 312)
    # a whole SFT job: its tokens at that rate (no curve), however many steps
    job = Job("train", "l", {"model": "meta-llama/Llama-3.2-1B", "task": "hub-gsm8k", "train_examples": 0,
                             "train": {"steps": 1000, "batch_size": 32, "max_seq_len": 1024, "rank": 32,
                                       "target_modules": ALL_LINEAR}})
    per_row = mean_tokens("hub-gsm8k", "train", True)
    assert job_work(job, h100) == pytest.approx(h100.train_seconds(1000 * 32 * per_row, 1000, llama, adapter))


def test_small_passes_are_bounded_by_the_eager_floor():
    llama, h100 = model_shape("meta-llama/Llama-3.2-1B"), Roofline()
    assert h100.forward_seconds(10, 5, llama) == pytest.approx(5 * 16 * EAGER_LAYER_S)  # 5 tiny batches
    assert h100.train_seconds(10, 5, llama, 0.0) == pytest.approx(5 * 16 * 3 * EAGER_LAYER_S)
    big = 1e7  # tokens enough to be compute-bound
    assert h100.forward_seconds(big, 5, llama) == pytest.approx(big * 2 * LLAMA_1B / (989e12 * 0.5))


def test_decoding_is_memory_bound_above_the_eager_floor():
    # PyTorch's gpt-fast baseline: Llama-2-7B (32 layers) in eager PyTorch, batch 1, A100: 25.5 tokens/s
    llama2_7b = ModelShape(6.74e9, 32, 4096, "published", kv_width=4096)
    step = Roofline("a100").decode_step_seconds(1, 100, llama2_7b)
    assert 0.75 < step / (1 / 25.5) <= 1.0  # 32 ms, launch-bound, against 39 ms measured
    # a big model and cache on a small GPU: the weights and the KV cache read each step, at its bandwidth
    qwen14 = model_shape("Qwen/Qwen3-14B")
    kv = 2 * 40 * 1024 * 2  # keys and values, 40 layers, 8 heads of 128, bf16
    expected = (2 * qwen14.weights + 64 * 2000 * kv) / 0.3e12
    assert Roofline("l4").decode_step_seconds(64, 2000, qwen14) == pytest.approx(expected)
    assert expected > 40 * EAGER_LAYER_S
    # a mixture of experts reads every expert's weights, though a token goes through 8 of 128
    moe = model_shape("Qwen/Qwen3-30B-A3B")
    assert moe.weights / moe.parameters > 9
    # batches: the last one is partial; every batch decodes max_new_tokens steps
    llama, h100 = model_shape("meta-llama/Llama-3.2-1B"), Roofline()
    assert h100.decode_seconds(100, 32, 256, 300, llama) == pytest.approx(
        4 * 256 * h100.decode_step_seconds(25, 300, llama))


def test_a_roofline_evaluation_and_grpo_step():
    llama, h100 = model_shape("meta-llama/Llama-3.2-1B"), Roofline()
    gsm = Job("evaluate", "g", {"model": "meta-llama/Llama-3.2-1B", "task": "hub-gsm8k", "split": "test",
                                "eval_examples": 0, "max_new_tokens": 0, "batch_size": 32})
    prompt = 419 / 4 + 20
    assert job_work(gsm, h100) == pytest.approx(h100.forward_seconds(1319 * prompt, 42, llama)
                                                + 42 * 256 * h100.decode_step_seconds(1319 / 42, prompt + 128, llama))
    assert 60 < job_work(gsm, h100) < 600  # minutes for all 1,319 questions
    grpo = Job("train", "r", {"model": "meta-llama/Llama-3.2-1B", "task": "hub-gsm8k", "train_examples": 0,
                              "train": {"method": "grpo", "steps": 10, "prompts_per_step": 32, "group_size": 4,
                                        "max_new_tokens": 0, "kl_coef": 0.0, "train_batch_size": 32, "rank": 32,
                                        "target_modules": ALL_LINEAR}})
    prompt = mean_tokens("hub-gsm8k", "train", False)
    decode = 256 * h100.decode_step_seconds(128, prompt + 128, llama)  # all 128 completions in one batch
    update = h100.train_seconds(128 * (prompt + 256), 4, llama, lora_parameters(llama, 32, ALL_LINEAR))
    assert job_work(grpo, h100) == pytest.approx(10 * (decode + update))


def test_the_reference_gpu_is_chosen_by_env_or_rates_file_and_measured_rates_win(tmp_path, monkeypatch):
    _no_rates_file(monkeypatch, tmp_path)
    assert rates_for("cuda") == Roofline("h100") and rates_for("cuda", gpu="A40") == Roofline("a40")
    monkeypatch.setenv(GPU_ENV, "l4")
    assert rates_for("cuda") == Roofline("l4") and "for L4 at" in rates_for("cuda").source
    monkeypatch.setenv(GPU_ENV, "tpu")
    with pytest.raises(TransferlabError, match="'tpu' is not a GPU") as err:
        rates_for("cuda")
    assert all(name in str(err.value) for name in GPUS) and "\n" not in str(err.value)
    assert rates_for("cpu") is CPU_RATES  # never consulted on the CPU
    monkeypatch.delenv(GPU_ENV)
    named = tmp_path / "named.json"
    named.write_text(json.dumps({"format": 1, "gpu": "a100"}))  # a file naming the GPU, nothing measured
    monkeypatch.setenv(RATES_ENV, str(named))
    assert rates_for("cuda") == Roofline("a100")
    monkeypatch.setenv(GPU_ENV, "h200")
    assert rates_for("cuda") == Roofline("h200")  # the environment wins over the file's name
    monkeypatch.setenv(RATES_ENV, str(_rates_file(tmp_path)))
    assert "measured on NVIDIA H200" in rates_for("cuda").source  # measured rates win over any roofline
    named.write_text(json.dumps({"format": 1, "gpu": "v100"}))
    with pytest.raises(TransferlabError, match="named.json: gpu: 'v100'"):
        read_rates(named)
