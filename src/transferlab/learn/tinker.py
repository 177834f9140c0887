"""Train LoRA adapters on the Tinker training service with the `tinker` SDK.

The loops are the local ones (`sft.train_lora`, `grpo.train_grpo`) with the model calls
replaced by service calls: the same prompt rendering and truncation, the same
length-bucketed batches, the same warm-up + cosine schedule (sent as the Adam learning
rate of every `optim_step`), the same group-relative advantages and zero-variance
accounting. What runs where:

* SFT: `forward_backward(data, "cross_entropy")` + `optim_step(AdamParams)` per step.
  Each example becomes one `Datum`: the model input is the full sequence but its last
  token, `target_tokens` the sequence shifted by one (position i predicts token i + 1),
  `weights` zero on the prompt and one on the completion.
* GRPO: each step publishes the current weights to a sampling client
  (`save_weights_and_get_sampling_client`), samples a group per prompt, scores it with
  the task, and sends `forward_backward(data, "importance_sampling")`, whose Datums carry
  the sampler's log-probabilities and per-token advantages. Tinker has no reference-model
  term in its built-in losses, so a KL penalty (kl_coef > 0) is folded into the
  advantages, as tinker-cookbook does: A_t - kl_coef * (log q_t - log base_t), with the
  base model's log-probabilities from a base-model sampling client. The PPO clip of the
  local trainer does not apply: one update per batch is on-policy.

Not configurable on Tinker: LoRA alpha, and the exact modules (`target_modules` maps onto
Tinker's attention / MLP / unembedding switches).

    export TINKER_API_KEY=...
    from transferlab.learn.tinker import TinkerTrainer
    trainer = TinkerTrainer("meta-llama/Llama-3.2-1B")
    run = trainer.train_sft(task, task.examples("train"), TrainConfig(steps=100), name="gsm8k-sft")
    print(run.sampler_path, run.result.losses[-1])

From a spec, `backend: tinker` on a lora or grpo learner does the same, then downloads the
run's weights and converts them to a PEFT adapter for the local model (`learn.tinker_weights`).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from transferlab.learn import grpo
from transferlab.learn.rollouts import Rollout, prompt_schedule, score_groups, set_advantages
from transferlab.errors import TransferlabError, missing_package
from transferlab.evaluate import cut_at_stop
from transferlab.tasks.base import Example, Task
from transferlab.tasks.prompts import render_context
from transferlab.learn.sft import (DivergedError, TrainConfig, TrainResult, get_lr, length_bucketed_batches,
                               tokenize)

INSTALL = "pip install 'transferlab[tinker]'"
ATTENTION_MODULES = {"q_proj", "k_proj", "v_proj", "o_proj"}
MLP_MODULES = {"gate_proj", "up_proj", "down_proj"}
UNEMBED_MODULES = {"lm_head"}


def import_tinker() -> Any:
    """The `tinker` module, or a one-line error saying how to install it."""
    try:
        import tinker
    except ImportError:
        raise missing_package("tinker", "the Tinker training backend", INSTALL) from None
    return tinker


def api_key(explicit: str | None = None) -> str:
    """The Tinker API key (argument, else TINKER_API_KEY), or a one-line error saying what to set."""
    key = explicit or os.environ.get("TINKER_API_KEY", "")
    if not key:
        raise TransferlabError("the Tinker backend needs an API key: set TINKER_API_KEY "
                               "(create one in the Tinker console), or train with the local backend")
    return key


# --- our examples as Tinker data ----------------------------------------------------------

def sft_datum(tokens: Sequence[int], n_prompt: int) -> Any:
    """One supervised `tinker.types.Datum`: inputs tokens[:-1], targets tokens[1:], weights on the completion.

    Target j is token j + 1, so the completion tokens (indices n_prompt..) are the targets
    from index n_prompt - 1 on: those get weight 1, the prompt's targets weight 0.
    """
    if not 0 < n_prompt < len(tokens):
        raise ValueError(f"a training sequence needs a prompt and a completion, got {n_prompt} prompt tokens "
                         f"of {len(tokens)}")
    types = import_tinker().types
    weights = np.zeros(len(tokens) - 1, dtype=np.float32)
    weights[n_prompt - 1 :] = 1.0
    return types.Datum(model_input=types.ModelInput.from_ints([int(t) for t in tokens[:-1]]),
                       loss_fn_inputs={"target_tokens": np.asarray(tokens[1:], dtype=np.int64), "weights": weights})


def examples_to_data(task: Task, examples: Sequence[Example], tokenizer: Any, max_seq_len: int) -> list[Any]:
    """Supervised Datums for examples: rendered with the task's chat template, completion = target + end of turn.

    The tokens are exactly those the local trainer trains on (`sft.tokenize`).
    """
    return [sft_datum(ids, n_prompt) for ids, n_prompt in tokenize(task, examples, tokenizer, max_seq_len)]


def rl_datum(prompt: Sequence[int], completion: Sequence[int], sampling_logprobs: Sequence[float],
             advantages: Sequence[float]) -> Any:
    """One `importance_sampling` Datum: targets, the sampler's log-probs and advantages, zero on the prompt."""
    if not prompt or not completion or not len(sampling_logprobs) == len(advantages) == len(completion):
        raise ValueError(f"an RL datum needs a prompt, a completion, and one log-prob and advantage per "
                         f"completion token: got {len(completion)} tokens, {len(sampling_logprobs)} log-probs, "
                         f"{len(advantages)} advantages")
    types = import_tinker().types
    tokens = list(prompt) + list(completion)
    start = len(prompt) - 1  # first target index that is a completion token
    logprobs = np.zeros(len(tokens) - 1, dtype=np.float32)
    logprobs[start:] = sampling_logprobs
    adv = np.zeros(len(tokens) - 1, dtype=np.float32)
    adv[start:] = advantages
    return types.Datum(model_input=types.ModelInput.from_ints([int(t) for t in tokens[:-1]]),
                       loss_fn_inputs={"target_tokens": np.asarray(tokens[1:], dtype=np.int64),
                                       "logprobs": logprobs, "advantages": adv})


def lora_switches(target_modules: Sequence[str]) -> dict[str, bool]:
    """Tinker's LoRA layer switches for our target module names."""
    names = set(target_modules)
    unknown = names - ATTENTION_MODULES - MLP_MODULES - UNEMBED_MODULES
    if unknown:
        raise TransferlabError(f"the Tinker backend cannot target {', '.join(sorted(unknown))}: it trains "
                               f"attention ({', '.join(sorted(ATTENTION_MODULES))}), MLP "
                               f"({', '.join(sorted(MLP_MODULES))}) and lm_head as groups")
    switches = {"train_attn": bool(names & ATTENTION_MODULES), "train_mlp": bool(names & MLP_MODULES),
                "train_unembed": bool(names & UNEMBED_MODULES)}
    if not (switches["train_attn"] or switches["train_mlp"]):
        raise TransferlabError("the Tinker backend needs attention or MLP modules in target_modules")
    return switches


def mean_nll(output: Any, data: Sequence[Any]) -> tuple[float, int]:
    """Per-token negative log-likelihood of a cross-entropy forward_backward, and the token count."""
    total, count = 0.0, 0.0
    for out, datum in zip(output.loss_fn_outputs, data):
        weights = datum.loss_fn_inputs["weights"].to_numpy()
        total -= float((out["logprobs"].to_numpy() * weights).sum())
        count += float(weights.sum())
    return total / max(count, 1.0), int(count)


# --- the trainer ---------------------------------------------------------------------------

@dataclass
class TinkerRun:
    """A finished Tinker training run: the logs and where its weights live on the service."""

    base_model: str
    method: str  # "sft" | "grpo"
    result: TrainResult
    sampler_path: str  # tinker://... weights for ServiceClient.create_sampling_client(model_path=...)
    state_path: str  # tinker://... weights and optimizer state, to continue training (sequential)
    external_path: str = ""  # tinker://.../external_weights/... the exportable copy (learn.tinker_weights)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"backend": "tinker", "base_model": self.base_model, "method": self.method,
                "sampler_path": self.sampler_path, "state_path": self.state_path,
                "external_path": self.external_path, **self.result.to_json(),
                **self.extra}


class TinkerTrainer:
    """SFT and GRPO on the Tinker service for one base model (a Tinker model name).

    Fails at construction, with one line, when the SDK or the API key is missing.
    `tokenizer` overrides the one the service names for the model (useful offline).
    """

    def __init__(self, base_model: str, *, key: str | None = None, tokenizer: Any = None):
        self.tinker = import_tinker()
        self.key = api_key(key)
        self.base_model = base_model
        self.tokenizer = tokenizer
        self._service: Any = None

    @property
    def service(self) -> Any:
        if self._service is None:
            self._service = self.tinker.ServiceClient(api_key=self.key)
        return self._service

    def sampling_client(self, sampler_path: str) -> Any:
        """A Tinker SamplingClient for weights a run saved (`TinkerRun.sampler_path`)."""
        return self.service.create_sampling_client(model_path=sampler_path).result()

    def _training_client(self, config: TrainConfig | grpo.GRPOConfig, init_state: str | None) -> Any:
        if init_state:  # sequential training: continue from another run's weights, fresh optimizer
            return self.service.create_training_client_from_state(init_state).result()
        return self.service.create_lora_training_client(base_model=self.base_model, rank=config.rank,
                                                        seed=config.seed,
                                                        **lora_switches(config.target_modules)).result()

    def _adam(self, config: TrainConfig | grpo.GRPOConfig, step: int, steps: int) -> Any:
        # torch's AdamW betas and eps, so a run matches the local trainer's optimizer
        return self.tinker.types.AdamParams(learning_rate=get_lr(step, steps, config), beta1=0.9, beta2=0.999,
                                            eps=1e-8, weight_decay=config.weight_decay,
                                            grad_clip_norm=config.grad_clip)

    def _save(self, client: Any, name: str) -> tuple[str, str, str]:
        """Sampler weights (the service samples from them), the training state (sequential
        training continues from it) and external weights (downloadable: `tinker_weights`)."""
        sampler = client.save_weights_for_sampler(name)
        state = client.save_state(name)
        external = client.save_weights_external(name)
        return sampler.result().path, state.result().path, external.result().path

    def train_sft(self, task: Task, examples: Sequence[Example], config: TrainConfig, name: str,
                  init_state: str | None = None, also: Sequence[tuple[Task, Sequence[Example]]] = (),
                  progress: Callable[[int, float], None] | None = None) -> TinkerRun:
        """Supervised LoRA training, completion-only cross-entropy; mirrors `sft.train_lora`."""
        if not examples:
            raise TransferlabError(f"task {task.name!r} has no training examples: check its train split")
        client = self._training_client(config, init_state)
        tokenizer = self.tokenizer or client.get_tokenizer()
        data = examples_to_data(task, examples, tokenizer, config.max_seq_len)
        for other, other_examples in also:
            data += examples_to_data(other, other_examples, tokenizer, config.max_seq_len)
        steps = config.steps or max(1, math.ceil(config.epochs * len(data) / config.batch_size))
        batches = length_bucketed_batches([d.model_input.length for d in data], config.batch_size, steps, config.seed)
        result = TrainResult(steps=steps, tokens=0, seconds=0.0)
        start = time.perf_counter()
        for step, batch in enumerate(batches):
            chunk = [data[i] for i in batch]
            backward = client.forward_backward(chunk, "cross_entropy")
            update = client.optim_step(self._adam(config, step, steps))  # queued behind the backward pass
            loss, n_tokens = mean_nll(backward.result(), chunk)
            update.result()
            if not math.isfinite(loss):
                raise DivergedError(f"task {task.name!r}: loss became {loss} at step {step} on Tinker: "
                                    "lower the learning rate")
            result.losses.append(loss)
            result.tokens += n_tokens
            if progress:
                progress(step + 1, loss)
        result.seconds = time.perf_counter() - start
        sampler, state, external = self._save(client, name)
        return TinkerRun(self.base_model, "sft", result, sampler, state, external)

    def train_grpo(self, task: Task, examples: Sequence[Example], config: grpo.GRPOConfig, name: str,
                   init_state: str | None = None,
                   progress: Callable[[int, float], None] | None = None) -> TinkerRun:
        """GRPO with the task's scorer as reward, `importance_sampling` loss; mirrors `grpo.train_grpo`."""
        if not examples:
            raise TransferlabError(f"task {task.name!r} has no training examples: check its train split")
        if config.sample_choices:
            raise TransferlabError("sample_choices runs on the local backend only (Tinker samples free text): "
                                   "drop backend: tinker or set sample_choices: false")
        metric = grpo.reward_metric_of(task, config)
        types = self.tinker.types
        client = self._training_client(config, init_state)
        tokenizer = self.tokenizer or client.get_tokenizer()
        prompts = [tokenizer(render_context(task, e, tokenizer), add_special_tokens=False)["input_ids"]
                   [-config.max_prompt_len:] for e in examples]
        schedule = prompt_schedule(len(examples), config.steps, config.prompts_per_step, config.seed,
                                   [e.target for e in examples] if config.balance_answers else None)
        base = (self.service.create_sampling_client(base_model=self.base_model).result()
                if config.kl_coef > 0 else None)
        # None keeps the service's end-of-turn stop; stop strings are added to the end-of-turn text
        stop = [*task.stop, tokenizer.eos_token] if task.stop and tokenizer.eos_token else None
        result = TrainResult(steps=config.steps, tokens=0, seconds=0.0)
        logs: dict[str, list[float]] = {"zero_variance_groups": [], "completion_tokens": [], "seconds": []}
        if base is not None:
            logs["kl"] = []
        flat_groups = 0
        start = time.perf_counter()
        for step, picked in enumerate(schedule):
            step_start = time.perf_counter()
            sampler = client.save_weights_and_get_sampling_client().result()
            futures = [sampler.sample(prompt=types.ModelInput.from_ints(prompts[i]), num_samples=config.group_size,
                                      sampling_params=types.SamplingParams(
                                          max_tokens=config.max_new_tokens or task.max_new_tokens,
                                          temperature=config.temperature, top_p=config.top_p, stop=stop,
                                          seed=config.seed * 1_000_003 + step * 1009 + k))
                       for k, i in enumerate(picked)]
            groups, sampled_logprobs = [], []
            for i, future in zip(picked, futures):
                group = []
                for seq in future.result().sequences:
                    if seq.logprobs is None:
                        raise TransferlabError("the Tinker sampler returned no log-probabilities: update the "
                                               f"SDK ({INSTALL})")
                    text = cut_at_stop(tokenizer.decode(seq.tokens, skip_special_tokens=True), task.stop)
                    group.append(Rollout(prompts[i], list(seq.tokens), text))
                    sampled_logprobs.append(list(seq.logprobs))
                groups.append(group)
            score_groups(task, [examples[i] for i in picked], groups, metric)
            flat = set_advantages(groups, config.normalize_advantages)
            flat_groups += flat
            rollouts = [r for group in groups for r in group]
            n_tokens = sum(len(r.completion_ids) for r in rollouts)
            per_token = [[r.advantage] * len(r.completion_ids) for r in rollouts]
            if base is not None:  # KL penalty folded into the advantages, token by token
                kls = []
                for r, lp, adv in zip(rollouts, sampled_logprobs, per_token):
                    full = base.compute_logprobs(types.ModelInput.from_ints(r.prompt_ids + r.completion_ids)).result()
                    base_lp = [x if x is not None else 0.0 for x in full[len(r.prompt_ids):]]
                    for t, (q, b) in enumerate(zip(lp, base_lp)):
                        adv[t] -= config.kl_coef * (q - b)
                        kls.append(q - b)
                logs["kl"].append(sum(kls) / max(1, len(kls)))
            chosen = [(r, lp, adv) for r, lp, adv in zip(rollouts, sampled_logprobs, per_token) if any(adv)]
            loss = 0.0
            if chosen:  # a batch of flat groups and no KL carries no gradient: no update
                data = [rl_datum(r.prompt_ids, r.completion_ids, lp, adv) for r, lp, adv in chosen]
                backward = client.forward_backward(data, "importance_sampling")
                update = client.optim_step(self._adam(config, step, config.steps))
                output = backward.result()
                update.result()
                for out, datum in zip(output.loss_fn_outputs, data):
                    inputs = datum.loss_fn_inputs
                    ratio = np.exp(out["logprobs"].to_numpy() - inputs["logprobs"].to_numpy())
                    loss -= float((ratio * inputs["advantages"].to_numpy()).sum()) / n_tokens
                if not math.isfinite(loss):
                    raise DivergedError(f"task {task.name!r}: GRPO loss became {loss} at step {step} on Tinker: "
                                        "lower the learning rate")
            grpo.record_step(result, logs, rollouts, loss, flat, step_start)
            if progress:
                progress(step + 1, result.rewards[-1])
        grpo.finish(result, logs, start, flat_groups, config)
        sampler_path, state_path, external = self._save(client, name)
        return TinkerRun(self.base_model, "grpo", result, sampler_path, state_path, external)
