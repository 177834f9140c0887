"""Resumable training: a long run killed part-way goes on from its last checkpoint.

Every `every_seconds` of wall time (and never more than once per update) the loop saves one
file, `state.pt`, in the job's resume directory (`Store.resume_dir`): the updates done, the
adapter's trainable weights, the optimizer's state, every random generator the loop draws from
(torch's CPU and CUDA ones, GRPO's sampler) and the loop's own records (losses, rewards, logs,
the learning curve's points). A restart of the same job loads it and goes on with the next
update. Both loops fix their data order from the seed before the first step, so on a CPU the
adapter a resumed run ends with is the one an uninterrupted run makes, bit for bit
(tests/test_train_resume.py); on a GPU, as far as its kernels are deterministic. A checkpoint
that does not fit the run (another schedule or adapter shape) is removed and training starts over.

The file is replaced atomically (temporary file, then rename), so a kill during a save leaves
the previous checkpoint; the job removes the directory once its adapter is stored.

    checkpoints = Checkpoints(directory, every_seconds=300)
    state = checkpoints.restore(peft_model, optimizer, [sampler])   # None: start from step 0
    ...
    checkpoints.save_if_due(step + 1, peft_model, optimizer, [sampler], lambda: loop_records)
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

STATE = "state.pt"
EVERY_SECONDS = 300.0  # a kill loses at most about this much training


class Checkpoints:
    """The checkpoints of one training run in `directory`; with None, saving and restoring do nothing."""

    def __init__(self, directory: Path | None, every_seconds: float | None = None, total_steps: int = 0):
        self.directory, self.total_steps = directory, total_steps
        self.every_seconds = EVERY_SECONDS if every_seconds is None else every_seconds
        self._last = time.perf_counter()
        self.resumed_at = 0  # the updates a restored checkpoint had done (0: a fresh start)

    def restore(self, model: Any, optimizer: torch.optim.Optimizer,
                generators: Sequence[torch.Generator] = ()) -> dict[str, Any] | None:
        """Set model, optimizer and generators back to the checkpoint and return the loop's records
        (with `step`, the updates done), or None when there is no checkpoint of this run."""
        self.resumed_at = 0
        path = self.directory / STATE if self.directory else None
        if path is None or not path.is_file():
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
            fits = (state["total_steps"] == self.total_steps and len(state["generators"]) == len(generators)
                    and state["weights"].keys() == trainable.keys()
                    and all(v.shape == trainable[n].shape for n, v in state["weights"].items()))
        except Exception:  # damaged, or from a torch that cannot read it back
            fits = False
        if not fits:  # not this run's checkpoint (another schedule, adapter shape or library): start again
            path.unlink(missing_ok=True)
            return None
        with torch.no_grad():
            for name, value in state["weights"].items():
                trainable[name].copy_(value.to(trainable[name].device))
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])  # GPU dropout draws from these
        for generator, saved in zip(generators, state["generators"]):
            generator.set_state(saved.to(generator.get_state().device))
        self.resumed_at = state["loop"]["step"]
        return state["loop"]

    def save_if_due(self, step: int, model: Any, optimizer: torch.optim.Optimizer,
                    generators: Sequence[torch.Generator], records: Callable[[], dict[str, Any]]) -> bool:
        """Save a checkpoint after `step` updates if `every_seconds` have passed since the last one."""
        now = time.perf_counter()
        if self.directory is None or step >= self.total_steps or now - self._last < self.every_seconds:
            return False  # the last update is followed by the adapter itself, not a checkpoint
        self.directory.mkdir(parents=True, exist_ok=True)
        cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
        state = {"total_steps": self.total_steps, "rng": torch.get_rng_state(), "cuda_rng": cuda_rng,
                 "weights": {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad},
                 "optimizer": optimizer.state_dict(), "generators": [g.get_state().cpu() for g in generators],
                 "loop": {**records(), "step": step}}
        tmp = self.directory / f".{STATE}.{os.getpid()}.tmp"
        torch.save(state, tmp)
        os.replace(tmp, self.directory / STATE)
        self._last = time.perf_counter()
        return True


def resume_loop(checkpoints: Checkpoints | None, total_steps: int, model: Any, optimizer: torch.optim.Optimizer,
                generators: Sequence[torch.Generator], result: Any, curve: Any) -> tuple[Checkpoints, dict | None]:
    """What a training loop does before its first update: the checkpoints to save into (inert
    without a directory) and, when one was restored, its records, with the model, optimizer,
    generators, `result` (a TrainResult) and `curve` (a LearningCurve or None) already set back."""
    checkpoints = checkpoints or Checkpoints(None)
    checkpoints.total_steps = total_steps
    saved = checkpoints.restore(model, optimizer, generators)
    if saved:
        restore_result(result, saved["result"])
        if curve:
            curve.restore(saved["curve"])
    return checkpoints, saved


def result_records(result: Any) -> dict[str, Any]:
    """A TrainResult's fields as plain values, for a checkpoint."""
    return dataclasses.asdict(result)


def restore_result(result: Any, saved: dict[str, Any]) -> None:
    """Put a checkpoint's TrainResult fields back into `result`."""
    for name, value in saved.items():
        setattr(result, name, value)
