"""Many adapters in one pass against the loop a user would write with PEFT, side by side.

The base model and N random LoRA adapters (r=8 on q_proj/v_proj, B drawn non-zero so each
adapter changes the outputs) are scored on one task. The baseline is the naive loop: for the
base and each adapter, apply it (`PeftModel.from_pretrained`), `evaluate_task`, unload it.
Ours is `multi_adapter.evaluate_many`: every adapter loaded once and every batch holding the
same examples for all of them (PEFT mixed-adapter batches). Same model, examples, prompts and
batch size; model loading is excluded, adapter loading is included. Runs are interleaved so
drift in machine load hits both alike; prints each median over repeats, checks the results
are equal (max abs log-prob difference < 1e-4, identical predictions or generations) and
writes the ratio (naive / ours, higher is better) to docs/results/benchmarks/many_adapters.json.

    .venv/bin/python benchmarks/many_adapters.py --task cities --examples 100 --adapters 8 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

OUT = Path(__file__).parents[1] / "docs" / "results" / "benchmarks" / "many_adapters.json"
TARGET = 2.0  # issue 14: base + adapters in one pass vs one run per adapter, at least 2x on CPU


def random_adapters(model, directory: Path, count: int, rank: int, seed: int) -> list[Path]:
    """`count` random LoRA adapters on q_proj/v_proj with non-zero B, saved as PEFT directories."""
    from peft import LoraConfig

    from transferlab import adapters

    out = []
    for i in range(count):
        torch.manual_seed(seed + i)
        config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
        with adapters.fresh(model, config) as peft_model, torch.no_grad():
            for name, param in peft_model.named_parameters():
                if "lora_B" in name:
                    param.normal_(0.0, 0.02)
            peft_model.save_pretrained(str(directory / f"adapter{i}"), safe_serialization=True,
                                       save_embedding_layers=False)
        out.append(directory / f"adapter{i}")
    return out


def naive(loaded, task, examples, dirs, batch_size):
    from transferlab.adapters import applied
    from transferlab.evaluate import evaluate_task

    results = []
    for d in dirs:
        with applied(loaded.model, d) as model:
            results.append(evaluate_task(model, loaded.tokenizer, task, examples, batch_size=batch_size))
    return results


def ours(loaded, task, examples, dirs, batch_size):
    from transferlab.multi_adapter import evaluate_many

    return evaluate_many(loaded.model, loaded.tokenizer, task, examples, dirs, batch_size=batch_size)


def difference(a, b) -> tuple[float, bool]:
    """Max abs log-prob difference and whether predictions (or generations) agree, over all adapters."""
    worst, same = 0.0, True
    for x, y in zip(a, b):
        for xs, ys in zip(x.choice_logprobs, y.choice_logprobs):
            worst = max([worst, *(abs(p - q) for p, q in zip(xs, ys))])
        same = same and x.predictions == y.predictions and x.outputs == y.outputs
    return worst, same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--task", default="cities")
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--adapters", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--note", default="", help="a remark stored with the result (e.g. machine load)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave the JSON as it is")
    args = parser.parse_args()

    from transferlab import models
    from transferlab.tasks import get_task

    loaded = models.load(args.model)
    task = get_task(args.task)
    examples = task.examples("test")[: args.examples]
    with tempfile.TemporaryDirectory() as tmp:
        dirs = [None, *random_adapters(loaded.model, Path(tmp), args.adapters, rank=8, seed=0)]
        timings: dict[str, list[float]] = {"naive loop": [], "evaluate_many": []}
        results = {}
        for _ in range(args.repeats):
            for name, fn in (("naive loop", naive), ("evaluate_many", ours)):
                start = time.perf_counter()
                results[name] = fn(loaded, task, examples, dirs, args.batch_size)
                timings[name].append(time.perf_counter() - start)
    worst, same = difference(results["naive loop"], results["evaluate_many"])
    many = results["evaluate_many"]  # how far each adapter moves the base model's log-probs (must be > 0)
    effect = min(difference([many[0]], [other])[0] for other in many[1:]) if len(many) > 1 else 0.0
    medians = {name: statistics.median(t) for name, t in timings.items()}
    for name, t in timings.items():
        print(f"{name:14s} median {medians[name]:7.1f} s  (runs: {', '.join(f'{x:.1f}' for x in t)})")
    ratio = medians["naive loop"] / medians["evaluate_many"]
    print(f"equal: max abs log-prob difference {worst:.2e}, predictions identical: {same}; "
          f"each adapter moves the base log-probs by up to >= {effect:.3f}")
    print(f"ratio naive loop / evaluate_many: {ratio:.2f}x (target {TARGET}x; base + {args.adapters} adapters, "
          f"{args.task}, {len(examples)} examples, {torch.get_num_threads()} torch threads)")
    if worst >= 1e-4 or not same:
        sys.exit("results differ: evaluate_many is not equal to one adapter at a time")
    if args.no_write:
        return
    command = ("python benchmarks/many_adapters.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("note", "no_write")))
    record = {"ratio": round(ratio, 3), "target": TARGET, "lower_is_better": False,
              "baseline": (f"naive PEFT loop: for the base and each of {args.adapters} adapters, "
                           "PeftModel.from_pretrained + evaluate_task + unload, in the same process"),
              "command": command, "seconds": {k: round(v, 2) for k, v in medians.items()},
              "runs": {k: [round(x, 2) for x in v] for k, v in timings.items()},
              "max_abs_logprob_diff": worst, "predictions_identical": same, "adapter_effect": round(effect, 4),
              "model": args.model, "task": args.task, "examples": len(examples), "adapters": args.adapters,
              "device": str(loaded.device), "dtype": str(loaded.dtype), "torch_threads": torch.get_num_threads(),
              "note": args.note}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
