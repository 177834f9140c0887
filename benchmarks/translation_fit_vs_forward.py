"""Fitting every translator for one held-out task, against one forward pass of model Y over
the evaluation set (what it costs to score the translated adapter once).

    .venv/bin/python benchmarks/translation_fit_vs_forward.py                          # random anchors
    .venv/bin/python benchmarks/translation_fit_vs_forward.py --run runs/translation   # the study's anchors

Anchors: the trained anchors of a translation run (`--run`, every anchor but the held-out
task), or random adapters of the same shapes (SmolLM2-135M -> Gemma-3-270M, r=8, q/v).
The forward pass is `evaluate_task` of the base model Y on `--examples` examples of
`--task`. Medians over --repeats; the ratio is forward / (all translators together).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from transferlab.translation.features import base_weights, from_factors, load_adapter
from transferlab.translation.protocol import translate
from transferlab.translation.translators import TRANSLATORS

SHAPES = {"smollm2-135m": (30, {"q_proj": (576, 576), "v_proj": (192, 576)}),
          "gemma3-270m": (18, {"q_proj": (1024, 640), "v_proj": (256, 640)})}


def random_anchors(model: str, n: int, rank: int, seed: int) -> list:
    layers, dims = SHAPES[model]
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        factors = {(l, m): (torch.randn(rank, c, generator=g, dtype=torch.float64) / c**0.5,
                            torch.randn(r, rank, generator=g, dtype=torch.float64) * 0.01)
                   for l in range(layers) for m, (r, c) in dims.items()}
        out.append(from_factors(f"task{i}", model, factors))
    return out


def run_anchors(run: Path, model_x: str, model_y: str) -> tuple[list, list]:
    """The anchor pairs of a translation run, matched by task through the training job params."""
    import json

    pairs: dict[str, dict[str, Path]] = {}
    for manifest in (run / "artifacts" / "adapter").glob("*/MANIFEST.json"):
        meta = json.loads(manifest.read_text()).get("meta", {})
        if meta.get("learner") == "anchor":
            pairs.setdefault(meta["task"], {})[meta["model"]] = manifest.parent
    tasks = sorted(t for t, sides in pairs.items() if model_x in sides and model_y in sides)
    xs = [load_adapter(pairs[t][model_x], name=t, expect_base=model_x) for t in tasks]
    ys = [load_adapter(pairs[t][model_y], name=t, expect_base=model_y) for t in tasks]
    return xs, ys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-x", default="smollm2-135m")
    parser.add_argument("--model-y", default="gemma3-270m")
    parser.add_argument("--run", type=Path, help="a translation run directory whose anchors to use")
    parser.add_argument("--anchors", type=int, default=12, help="random anchors (held-out task included)")
    parser.add_argument("--task", default="cities")
    parser.add_argument("--examples", type=int, default=80)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from transferlab import models
    from transferlab.evaluate import evaluate_task
    from transferlab.tasks import get_task

    if args.run:
        xs, ys = run_anchors(args.run, args.model_x, args.model_y)
        source = f"{len(xs)} trained anchors from {args.run}"
    else:
        xs, ys = random_anchors(args.model_x, args.anchors, 8, 0), random_anchors(args.model_y, args.anchors, 8, 1)
        source = f"{len(xs)} random anchors of the real shapes"
    loaded_x, loaded_y = models.load(args.model_x), models.load(args.model_y)
    weights = {"weights_X": base_weights(loaded_x.model, xs[0].tensors),
               "weights_Y": base_weights(loaded_y.model, ys[0].tensors)}
    print(f"{args.model_x} -> {args.model_y}: {source}; held out: {xs[-1].name}, fitted on the other {len(xs) - 1}")
    fits, cold = {}, {}
    for method in TRANSLATORS:
        params = weights if method == "subspace_projection" else ({"k": 8} if method.startswith("topk") else {})
        times = [translate(method, params, xs[:-1], ys[:-1], xs[-1])[1] for _ in range(args.repeats)]
        fits[method], cold[method] = statistics.median(times), times[0]
        print(f"  fit + predict {method:22s} {fits[method]:7.2f} s (first call {cold[method]:.2f} s)")
    task = get_task(args.task)
    examples = task.examples("test")[: args.examples]
    forward = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        evaluate_task(loaded_y.model, loaded_y.tokenizer, task, examples)
        forward.append(time.perf_counter() - start)
    total, fwd = sum(fits.values()), statistics.median(forward)
    print(f"all {len(fits)} translators together : {total:7.2f} s (first calls: {sum(cold.values()):.2f} s; "
          "subspace_projection's first call also takes the SVDs of both models' base weights, cached after)")
    print(f"forward pass of {args.model_y} over {len(examples)} {args.task} examples: {fwd:7.2f} s "
          f"(median of {args.repeats})")
    print(f"ratio forward / all fits          : {fwd / total:7.2f}x ({'fits are cheaper' if total < fwd else 'FITS ARE SLOWER'}); "
          f"with first calls {fwd / sum(cold.values()):.2f}x")


if __name__ == "__main__":
    main()
