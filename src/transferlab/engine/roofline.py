"""GPU time from first principles, for while no GPU rates were measured: a roofline model.

A job's passes are priced on a named reference GPU (`GPUS`: dense bf16 tensor-core peak and
memory bandwidth, from the vendors' data sheets), N being the parameters a token goes through
(`model_shapes`) and N_lora the adapter's:

    training        compute-bound: tokens x (4N + 6 N_lora) FLOPs for LoRA (the frozen base costs
                    2N forward and 2N backward, the adapter 2 N_lora forward and 4 N_lora backward,
                    as `transfer.efficiency` counts it), tokens x 6N for a full backward; at
                    TRAIN_MFU of the peak
    forward passes  compute-bound: tokens x 2N FLOPs (scoring, prefill, activation extraction), at
                    FORWARD_MFU of the peak
    decoding        memory-bound: a step reads the weights (2 bytes a stored parameter, bf16) and
                    the batch's KV cache (2 x layers x key/value width x 2 bytes a token of context),
                    unless its 2N FLOPs a sequence take longer, at FORWARD_MFU
    eager floor     no pass takes less than EAGER_LAYER_S a layer (3x that for a forward and
                    backward): eager PyTorch launches each layer's kernels one by one from the CPU,
                    which bounds small batches and decoding well above the GPU's own roofline

A decoding batch runs to the task's `max_new_tokens` (it stops when its longest row does, and a
batch of base-model rows rarely stops early), over a context of the prompt plus half the new
tokens. Left out: attention's sequence-length FLOPs (a few per cent at 512 tokens), padding
(batches are bucketed by length), the cache copies of a growing KV cache, GRPO's prompt prefill,
data loading and scorers. A figure to plan with; measured rates (`rates`) replace it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from transferlab.engine.model_shapes import ModelShape
from transferlab.errors import TransferlabError

GPU_ENV = "TRANSFERLAB_GPU"  # which reference GPU an unmeasured estimate prices (a name in GPUS)
TRAIN_MFU = 0.35  # model FLOPs utilisation of a LoRA forward + backward (bf16, HF transformers + PEFT)
FORWARD_MFU = 0.5  # of a forward pass without gradients
EAGER_LAYER_S = 1e-3  # CPU-side cost of one layer's kernels in eager PyTorch: see docs/gpu.md
BYTES_PER_PARAMETER = 2  # bf16 weights and KV cache
DEFAULT_DEPTH = 32  # layers assumed when only a model's size is known (a 7B-class depth)
KV_BYTES_PER_PARAMETER = 3e-5  # KV-cache bytes a token per parameter when the width is unknown (Llama-3.2-1B 2.6e-5)


@dataclass(frozen=True)
class Gpu:
    label: str
    flops: float  # dense bf16 tensor-core peak, FLOP/s (the data sheets' "with sparsity" figure halved)
    bandwidth: float  # memory bandwidth, bytes/s


GPUS: dict[str, Gpu] = {
    "h100": Gpu("H100 SXM", 989e12, 3.35e12),
    "h200": Gpu("H200 SXM", 989e12, 4.8e12),
    "a100": Gpu("A100 SXM 80GB", 312e12, 2.04e12),
    "a40": Gpu("A40", 149.7e12, 0.696e12),
    "l4": Gpu("L4", 121e12, 0.3e12),
}
DEFAULT_GPU = "h100"


def gpu_named(name: str, where: str = GPU_ENV) -> str:
    """A key of GPUS (case-insensitive); anything else is a one-line error listing them."""
    key = name.strip().lower()
    if key not in GPUS:
        raise TransferlabError(f"{where}: {name!r} is not a GPU the roofline estimate knows; use one of "
                               f"{', '.join(GPUS)} (docs/gpu.md), or measure rates on yours")
    return key


def chosen_gpu() -> str | None:
    """The reference GPU $TRANSFERLAB_GPU names, None when it is unset."""
    value = os.environ.get(GPU_ENV, "")
    return gpu_named(value) if value.strip() else None


def depth(shape: ModelShape) -> int:
    return shape.layers or DEFAULT_DEPTH


def kv_bytes_per_token(shape: ModelShape) -> float:
    """KV-cache bytes one token of context holds: keys and values of every layer, in bf16."""
    if shape.kv_width and shape.layers:
        return 2.0 * shape.layers * shape.kv_width * BYTES_PER_PARAMETER
    return KV_BYTES_PER_PARAMETER * shape.parameters


@dataclass(frozen=True)
class Roofline:
    """Seconds of work on `gpu` (a key of GPUS), priced as the module docstring says."""

    gpu: str = DEFAULT_GPU
    train_mfu: float = TRAIN_MFU
    forward_mfu: float = FORWARD_MFU
    layer_s: float = EAGER_LAYER_S
    device: str = "cuda"

    def __post_init__(self) -> None:  # a name the table knows (any case), or a one-line error listing them
        object.__setattr__(self, "gpu", gpu_named(self.gpu, "gpu"))

    @property
    def spec(self) -> Gpu:
        return GPUS[self.gpu]

    @property
    def source(self) -> str:
        return (f"roofline estimate for {self.spec.label} at MFU {self.train_mfu:g}/{self.forward_mfu:g}, "
                f"at least {self.layer_s * 1e3:g} ms a layer a pass "
                "(unmeasured; docs/results/gpu/rates.json or finished jobs replace it)")

    @property
    def notes(self) -> tuple[str, ...]:
        g = self.spec
        return (f"GPU {g.label}: {g.flops / 1e12:g} TFLOP/s bf16 dense, {g.bandwidth / 1e12:g} TB/s; "
                f"MFU {self.train_mfu:g} training, {self.forward_mfu:g} forward ({GPU_ENV}="
                f"{'|'.join(GPUS)} prices another; docs/gpu.md)",)

    def train_seconds(self, tokens: float, passes: int, shape: ModelShape, trainable: float | None) -> float:
        """Forward + backward over `tokens` in `passes` optimizer micro-batches; `trainable` is the
        adapter's size (LoRA), None for a full backward."""
        per_token = 6 * shape.parameters if trainable is None else 4 * shape.parameters + 6 * trainable
        compute = tokens * per_token / (self.spec.flops * self.train_mfu)
        return max(compute, passes * depth(shape) * 3 * self.layer_s)

    def forward_seconds(self, tokens: float, passes: int, shape: ModelShape) -> float:
        """Forward passes over `tokens` in `passes` batches (scoring, prefill)."""
        compute = tokens * 2 * shape.parameters / (self.spec.flops * self.forward_mfu)
        return max(compute, passes * depth(shape) * self.layer_s)

    extract_seconds = forward_seconds  # the probe study's activation pass is a forward pass

    def decode_step_seconds(self, rows: float, context: float, shape: ModelShape) -> float:
        """One decoding step of `rows` sequences that each hold `context` tokens of KV cache."""
        weights = BYTES_PER_PARAMETER * (shape.weights or shape.parameters)
        memory = (weights + rows * context * kv_bytes_per_token(shape)) / self.spec.bandwidth
        compute = 2 * shape.parameters * rows / (self.spec.flops * self.forward_mfu)
        return max(memory, compute, depth(shape) * self.layer_s)

    def decode_seconds(self, sequences: int, batch: int, steps: int, context: float, shape: ModelShape) -> float:
        """`steps` new tokens for each of `sequences`, decoded `batch` at a time over a mean `context`."""
        if sequences <= 0 or steps <= 0:
            return 0.0
        batches = math.ceil(sequences / max(1, batch))
        return batches * steps * self.decode_step_seconds(sequences / batches, context, shape)
