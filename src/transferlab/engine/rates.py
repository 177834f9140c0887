"""How fast each kind of work runs: the throughputs the time estimates divide by.

Measured rates, each measured on one model and scaled to others by parameter count (a job on
a model N times larger takes N times longer, to first order for both compute-bound passes and
memory-bound decoding):

    train     tokens/s through a forward + backward pass (SFT rows, GRPO updates)
    evaluate  tokens/s through a forward pass only (log-likelihood scoring)
    generate  new tokens/s of greedy decoding, summed over a batch of `batch_size` sequences
    extract   tokens/s of a probe study's activation pass (optional in the file: the evaluate rate)

On a CPU the rates are the ones measured on this project's 2-core machine (SmolLM2-135M,
fp32). On a GPU they come from `docs/results/gpu/rates.json` (or the file named by
$TRANSFERLAB_GPU_RATES) when one was measured there; without it a roofline model of a named
reference GPU prices the work (`roofline`: H100 unless $TRANSFERLAB_GPU, or a file holding
only `{"format": 1, "gpu": "a100"}`, names another), and the estimate says it is unmeasured.
Both answer the same questions (`train_seconds`, `forward_seconds`, `extract_seconds`,
`decode_seconds`), so the estimate does not care which it has. The file's format (docs/gpu.md):

    {"format": 1, "device": "NVIDIA H200", "dtype": "bfloat16", "parameters": 1235814400,
     "model": "random init, Llama-3.2-1B shape", "command": "...", "measured": "2026-01-01",
     "rates": {"train": {"tokens_per_s": 41000.0, "batch_size": 32, "max_seq_len": 512},
               "evaluate": {"tokens_per_s": 150000.0, "batch_size": 16},
               "generate": {"tokens_per_s": 2600.0, "batch_size": 16}}}
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transferlab.engine.model_shapes import ModelShape
from transferlab.engine.roofline import DEFAULT_GPU, Roofline, chosen_gpu, gpu_named
from transferlab.errors import TransferlabError

RATES_ENV = "TRANSFERLAB_GPU_RATES"
RATES_FILE = Path("docs") / "results" / "gpu" / "rates.json"
KINDS = ("train", "evaluate", "generate")


@dataclass(frozen=True)
class Rates:
    train_tokens_per_s: float
    score_tokens_per_s: float
    generate_tokens_per_s: float  # summed over a batch of `generate_batch` sequences decoded together
    generate_batch: int
    extract_tokens_per_s: float  # the probe study's activation pass (every layer's hidden states kept)
    parameters: float  # the size of the model the rates were measured on
    device: str  # "cpu" or "cuda"
    source: str  # what the estimate says it used
    notes: tuple[str, ...] = ()  # measured rates assume nothing beyond their scaling by size

    @property
    def decode_steps_per_s(self) -> float:
        """Decoding steps per second of one batch (every sequence of it gains a token per step)."""
        return self.generate_tokens_per_s / self.generate_batch

    def scale(self, shape: ModelShape) -> float:
        """A model N times the measured one's size takes N times as long."""
        return shape.parameters / self.parameters

    def train_seconds(self, tokens: float, passes: int, shape: ModelShape, trainable: float | None) -> float:
        return tokens / self.train_tokens_per_s * self.scale(shape)

    def forward_seconds(self, tokens: float, passes: int, shape: ModelShape) -> float:
        return tokens / self.score_tokens_per_s * self.scale(shape)

    def extract_seconds(self, tokens: float, passes: int, shape: ModelShape) -> float:
        return tokens / self.extract_tokens_per_s * self.scale(shape)

    def decode_seconds(self, sequences: int, batch: int, steps: int, context: float, shape: ModelShape) -> float:
        """Batches of at most the measured batch size, each `steps` decoding steps (context is not
        priced: the measured rate already averages over it)."""
        batches = math.ceil(sequences / max(1, min(batch, self.generate_batch)))
        return batches * steps / self.decode_steps_per_s * self.scale(shape)


Device = Rates | Roofline  # what an estimate prices work with: measured rates or the roofline


# Measured on the shared 2-core CPU with SmolLM2-135M in fp32: completion-only SFT at batch 8,
# batched log-likelihood passes, and greedy decoding at 8 steps/s of a batch of up to 20. The
# activation pass: 300 rows of cities (3,142 tokens) in 16.2 s and 300 of MMLU (14,376) in 84.7 s,
# one thread at load average 4.5 (probes.activations.extract, every layer): ~180 tokens/s.
CPU_RATES = Rates(train_tokens_per_s=300.0, score_tokens_per_s=1500.0, generate_tokens_per_s=8.0 * 20,
                  generate_batch=20, extract_tokens_per_s=180.0, parameters=135e6, device="cpu",
                  source="default CPU rates")


def rates_path() -> Path:
    """Where the measured GPU rates are read from: $TRANSFERLAB_GPU_RATES, else the checkout's docs."""
    if os.environ.get(RATES_ENV):
        return Path(os.environ[RATES_ENV]).expanduser()
    return Path(__file__).resolve().parents[3] / RATES_FILE


def _positive(data: Any, where: str, field: str) -> float:
    value = data.get(field) if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise TransferlabError(f"{where}: {field} must be a positive number, got {value!r}; "
                               "see docs/gpu.md for the format, or delete the file to use unmeasured rates")
    return float(value)


def read_rates(path: Path, gpu: str | None = None) -> Device:
    """Measured GPU rates from a rates file, or the roofline of the GPU a file without rates
    names (`gpu`, when given, wins over that name); a malformed file is a one-line error naming
    the field."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise TransferlabError(f"{path}: cannot read measured GPU rates ({err}); see docs/gpu.md") from None
    if not isinstance(data, dict) or data.get("format") != 1:
        raise TransferlabError(f"{path}: expected a JSON object with \"format\": 1 (docs/gpu.md)")
    rates = data.get("rates")
    if rates is None and isinstance(data.get("gpu"), str):
        return Roofline(gpu or gpu_named(data["gpu"], f"{path}: gpu"))
    if not isinstance(rates, dict):
        raise TransferlabError(f"{path}: rates must map {', '.join(KINDS)} to their throughputs, or \"gpu\" "
                               "name a reference GPU (docs/gpu.md)")
    per = {kind: _positive(rates.get(kind), f"{path}: rates.{kind}", "tokens_per_s") for kind in KINDS}
    batch = _positive(rates.get("generate"), f"{path}: rates.generate", "batch_size")
    extract = (_positive(rates["extract"], f"{path}: rates.extract", "tokens_per_s") if "extract" in rates
               else per["evaluate"])
    parameters = _positive(data, str(path), "parameters")
    source = f"GPU rates measured on {data.get('device') or 'a GPU'} ({path.name}, {parameters / 1e9:.2f}B-parameter model)"
    return Rates(per["train"], per["evaluate"], per["generate"], int(batch), extract, parameters, "cuda", source)


def rates_for(device: str, gpu: str | None = None) -> Device:
    """What an estimate for `device` ("cpu" or "cuda") prices work with: the CPU rates; on a GPU
    the measured rates file, else the roofline of `gpu`, $TRANSFERLAB_GPU, the file's "gpu" or H100."""
    if device != "cuda":
        return CPU_RATES
    gpu = gpu_named(gpu, "gpu") if gpu else chosen_gpu()
    path = rates_path()
    if path.is_file():
        return read_rates(path, gpu)
    return Roofline(gpu or DEFAULT_GPU)
