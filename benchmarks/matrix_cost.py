"""What an N x M transfer matrix costs: ours against one training per cell.

A transfer matrix of N sources and M targets needs N adapters, not N x M: each adapter
is trained once and evaluated on every target, and the base model is loaded once for the
whole run. This runs the same small study both ways on the default model, side by side:

- ours: `transferlab.transfer.study.run_study` (counting model loads, trainings and evaluations);
- per cell: for every (source, target) cell load the model, train on the source,
  evaluate on the target, the way a one-script-per-cell workflow does.

It prints the counts, the wall time of each (median over repeats) and the ratio.

    .venv/bin/python benchmarks/matrix_cost.py --tasks cities larger_than smaller_than --repeats 1
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

from transferlab import models
from transferlab.transfer.spec import parse_spec

SPEC = """\
name: matrix-cost
models: [{model}]
tasks: [{tasks}]
conditions: [transfer, direct]
learners:
  - {{name: lora, type: lora, rank: 4, steps: {steps}, batch_size: 4, learning_rate: 1.0e-3}}
budgets: {{train_examples: {train}, eval_examples: {evals}}}
similarity: []
bootstrap: 100
output: {output}
"""


def counted(counts: Counter):
    """Wrap model loading, training and evaluation so each call is counted."""
    import transferlab.evaluate as evaluate
    import transferlab.learn.sft as train

    original = (models.load, train.train_lora, evaluate.evaluate_task)

    def load(*a, **k):
        counts["model loads"] += 1
        return original[0](*a, **k)

    def train_lora(*a, **k):
        counts["trainings"] += 1
        return original[1](*a, **k)

    def evaluate_task(*a, **k):
        counts["evaluations"] += 1
        return original[2](*a, **k)

    models.load, train.train_lora, evaluate.evaluate_task = load, train_lora, evaluate_task
    return lambda: setattr_all(original)


def setattr_all(original) -> None:
    import transferlab.evaluate as evaluate
    import transferlab.learn.sft as train

    models.load, train.train_lora, evaluate.evaluate_task = original


def ours(args, out: Path) -> tuple[float, Counter]:
    from transferlab.transfer.study import run_study

    counts: Counter = Counter()
    restore = counted(counts)
    try:
        spec = parse_spec(SPEC.format(model=args.model, tasks=", ".join(args.tasks), steps=args.steps,
                                      train=args.train_examples, evals=args.eval_examples, output=out), "bench.yaml")
        start = time.perf_counter()
        run_study(spec, quiet=True)
        return time.perf_counter() - start, counts
    finally:
        restore()


def per_cell(args, out: Path) -> tuple[float, Counter]:
    import transferlab.evaluate as evaluate
    import transferlab.learn.sft as train
    from transferlab import adapters
    from transferlab.tasks import get_task

    counts: Counter = Counter()
    restore = counted(counts)  # patches the module attributes, so call through the modules below
    config = train.TrainConfig(rank=4, steps=args.steps, batch_size=4, learning_rate=1e-3)
    try:
        start = time.perf_counter()
        for source in args.tasks:
            for target in args.tasks:
                loaded = models.load(args.model)
                task = get_task(source)
                adapter = out / f"{source}-{target}"
                train.train_lora(loaded, task, task.examples("train")[: args.train_examples], config, adapter)
                goal = get_task(target)
                with adapters.applied(loaded.model, adapter) as model:
                    evaluate.evaluate_task(model, loaded.tokenizer, goal, goal.examples("test")[: args.eval_examples])
        return time.perf_counter() - start, counts
    finally:
        restore()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--tasks", nargs="+", default=["cities", "larger_than", "smaller_than"])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--train-examples", type=int, default=16)
    parser.add_argument("--eval-examples", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    models.load(args.model)  # convert/cache once so neither side pays for it
    times: dict[str, list[float]] = {"ours": [], "per cell": []}
    counts: dict[str, Counter] = {}
    for _ in range(args.repeats):
        for name, run in (("ours", ours), ("per cell", per_cell)):
            with tempfile.TemporaryDirectory() as tmp:
                seconds, counts[name] = run(args, Path(tmp) / "run")
                times[name].append(seconds)
    n = len(args.tasks)
    print(f"{n} sources x {n} targets on {args.model}")
    for name in times:
        c = counts[name]
        print(f"  {name:9s}: {c['trainings']:3d} trainings, {c['evaluations']:3d} evaluations, "
              f"{c['model loads']:3d} model loads, median {statistics.median(times[name]):.1f} s")
    print(f"expected for ours: {n} trainings, {n * n} evaluations + {n} of the base model (for the gains), "
          "1 model load")
    ratio = statistics.median(times["per cell"]) / statistics.median(times["ours"])
    print(f"ratio (per cell / ours): {ratio:.2f}x")


if __name__ == "__main__":
    main()
