"""The probe sweep at seed 003's size against mishajw/repeng's way, side by side, on default threads and on one.

    .venv/bin/python benchmarks/probes_sweep.py                       # 17 datasets x 30 layers x 576, 8 algorithms
    .venv/bin/python benchmarks/probes_sweep.py --datasets 4 --layers 6 --reference-repeats 1   # a quick look

The work: 17 datasets (8 of contrast pairs like DLK's, 5 of four-option questions like RepE's,
4 of ungrouped true/false statements like Geometry of Truth's; a few hundred rows each, split
by group into train / hparams / validation), 30 layers of width 576 (SmolLM2-135M's shape),
synthetic activations with a planted truth direction (part shared by every dataset, part its
own, stronger in later layers) over a per-question nuisance and noise. Each of the 8 study
algorithms is fitted on every dataset's train split at every layer, and every probe is scored
on every dataset's hparams and validation splits: 3,720 probes (the grouped algorithms skip the
ungrouped datasets, as in repeng), 126,480 scores.

Ours: `protocol.fit_bank` + `protocol.score_bank` per split, as the study's fit and score jobs
run them (every layer in one batched call; closed forms, LDA and PCA from n x n Gram matrices,
LR by batched dual Newton, CCS's restarts batched over layers; every probe on a dataset as one
matrix product), under `protocol: repeng` so both sides follow the same conventions (sign and
threshold chosen on the evaluated split, LDA = scikit-learn's default solver, LR at
scikit-learn's tolerance). Baseline: `repeng_way.sweep`, repeng's own method re-implemented with
its libraries and settings (see that module): one scikit-learn / torch probe per (dataset,
algorithm, layer), each scored on one dataset split at a time.

Both sides see the same activations. "default" threads: nothing set (torch's and the BLAS
libraries' own defaults; ours then sets its threads as `probes.threads` says); "one thread":
torch.set_num_threads(1) and threadpoolctl's limit of 1 for both. Runs alternate between the
sides; prints the medians, the speed-ups (target >= 20x each way) and how far the accuracies of
the deterministic algorithms agree, and writes docs/results/benchmarks/probes_sweep.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import repeng_way  # noqa: E402

from transferlab.probes import conventions, protocol  # noqa: E402
from transferlab.probes.algorithms import STUDY_ALGORITHMS  # noqa: E402

OUT = Path(__file__).parents[1] / "docs" / "results" / "benchmarks" / "probes_sweep.json"
TARGET = 20.0  # issue 14: at least 20x repeng's way, with default threads and with one
SPLITS = ("hparams", "validation")
KINDS = (("pairs", 2), ("choices", 4), ("statements", 1))  # (name, rows per question)
# why an algorithm's accuracies are not expected to agree cell for cell (the others are checked)
UNCHECKED = {"lat": "repeng pairs its rows by an unseeded shuffle",
             "ccs": "repeng fits one start by LBFGS, ours five by Adam",
             "pca": "scikit-learn's PCA picks its randomized solver at this size, inexact where the top "
                    "eigenvalues are close (as they are for a few hundred rows in 576 dimensions)",
             "pca-g": "as pca"}


def synthetic(n_datasets: int, layers: int, width: int, rows: int, seed: int = 0) -> list[protocol.Data]:
    """Activations (layers, rows, width) with a planted truth direction, per dataset kind (see the docstring)."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=(layers, width))
    shared /= np.linalg.norm(shared, axis=1, keepdims=True)
    strength = np.linspace(0.3, 3.0, layers)[:, None, None]
    spectrum = 1 + 0.5 * 0.7 ** np.arange(width)  # a few wider feature directions, as real activations have
    out = []
    for k in range(n_datasets):
        # seed 003's mix, 8 : 5 : 4 (DLK, RepE, Geometry of Truth), at any number of datasets
        kind, size = KINDS[0 if k < round(8 * n_datasets / 17) else 1 if k < round(13 * n_datasets / 17) else 2]
        questions = rows // size
        if size == 1:
            labels = rng.integers(0, 2, size=questions)
        else:
            labels = np.zeros((questions, size), dtype=np.int64)
            labels[np.arange(questions), rng.integers(0, size, questions)] = 1
            labels = labels.reshape(-1)
        n = len(labels)
        split_of = np.array(["train"] * (questions // 2) + ["hparams"] * (questions // 5)
                            + ["validation"] * (questions - questions // 2 - questions // 5))
        own = rng.normal(size=(layers, width))
        own /= np.linalg.norm(own, axis=1, keepdims=True)
        X = rng.normal(size=(layers, n, width)) * spectrum
        if size > 1:  # what the rows of one question share
            X += 2 * rng.normal(size=(layers, questions, 1, width)).repeat(size, axis=2).reshape(layers, n, width)
        X += strength * (labels - 0.5)[None, :, None] * (shared + 0.7 * own)[:, None, :]
        out.append(protocol.Data(f"{kind}_{k}", X.astype(np.float32), labels, np.repeat(np.arange(questions), size).astype(str),
                                 np.array(["statement"] * n), np.repeat(split_of, size)))
    return out


def fresh(data: list[protocol.Data]) -> list[protocol.Data]:
    """The same arrays in new Data objects, so no run reuses another's converted rows."""
    return [protocol.Data(d.name, d.acts, d.labels, d.groups, d.answer_types, d.splits) for d in data]


def run_ours(data: list[protocol.Data], protocol_name: str) -> dict:
    algorithms = {a: conventions.fit_params(protocol_name, a) for a in STUDY_ALGORITHMS}
    layers = list(range(data[0].acts.shape[0]))
    bank = protocol.fit_bank(data, algorithms, layers)
    acc = {}
    for split in SPLITS:
        for scores in protocol.score_bank(bank, data, split, protocol_name):
            values = scores.accuracy.numpy()
            for p in range(len(bank)):
                for layer in layers:
                    acc[bank.trained_on[p], bank.algorithm[p], layer, scores.dataset, split] = float(values[p, layer])
    return acc


def run_reference(data: list[protocol.Data], label: str = "") -> dict:
    start = time.perf_counter()

    def progress(k: int) -> None:
        if label:
            print(f"    [{label}] repeng's way: {k}/{len(data)} datasets trained on, {time.perf_counter() - start:.0f} s",
                  flush=True)

    return repeng_way.sweep(data, list(STUDY_ALGORITHMS), list(range(data[0].acts.shape[0])), SPLITS,
                            progress=progress)


def timed(run, cpu: list[float], *args) -> tuple[float, dict]:
    """Wall seconds of `run(*args)` (the measure) and its result; its CPU seconds, all threads, go to `cpu`."""
    start, start_cpu = time.perf_counter(), time.process_time()
    out = run(*args)
    cpu.append(time.process_time() - start_cpu)
    return time.perf_counter() - start, out


def measure(data, mode: str, repeats: int, reference_repeats: int, protocol_name: str) -> dict:
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    limits = None
    if mode == "one thread":
        torch.set_num_threads(1)
        limits = threadpool_limits(1)
    ours_times, ref_times, ours, ref = [], [], {}, {}
    cpu: dict[str, list[float]] = {"ours": [], "reference": []}
    try:
        for i in range(max(repeats, reference_repeats)):  # alternating, so load drift hits both sides
            if i < repeats:
                seconds, ours = timed(run_ours, cpu["ours"], fresh(data), protocol_name)
                ours_times.append(seconds)
                print(f"  [{mode}] ours {seconds:.1f} s", flush=True)
            if i < reference_repeats:
                seconds, ref = timed(run_reference, cpu["reference"], fresh(data), mode)
                ref_times.append(seconds)
                print(f"  [{mode}] repeng's way {seconds:.1f} s", flush=True)
    finally:
        if limits is not None:
            limits.restore_original_limits()
        torch.set_num_threads(before)
    t_ours, t_ref = statistics.median(ours_times), statistics.median(ref_times)
    print(f"{mode:12s} ours {t_ours:8.2f} s (runs {', '.join(f'{t:.1f}' for t in ours_times)})  repeng's way "
          f"{t_ref:8.1f} s (runs {', '.join(f'{t:.1f}' for t in ref_times)})  speed-up {t_ref / t_ours:6.1f}x "
          f"(target >= {TARGET:.0f}x)", flush=True)
    return {"ours": ours_times, "reference": ref_times, "ratio": t_ref / t_ours, "acc": (ours, ref), "cpu": cpu}


def agreement(ours: dict, ref: dict) -> dict:
    """Per algorithm: cells on both sides, max |accuracy difference|, share of cells equal."""
    out = {}
    for algorithm in STUDY_ALGORITHMS:
        keys = [k for k in ref if k[1] == algorithm]
        missing = [k for k in keys if k not in ours]
        diffs = np.array([abs(ours[k] - ref[k]) for k in keys if k in ours])
        out[algorithm] = {"cells": len(keys), "missing_on_ours": len(missing),
                          "max_abs_diff": float(diffs.max()) if len(diffs) else None,
                          "share_equal": float((diffs < 1e-6).mean()) if len(diffs) else None,
                          "not_checked_because": UNCHECKED.get(algorithm)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=17)
    parser.add_argument("--layers", type=int, default=30)
    parser.add_argument("--width", type=int, default=576)
    parser.add_argument("--rows", type=int, default=300, help="rows per dataset (before the split)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reference-repeats", type=int, default=1, help="repeng's way takes minutes per run")
    parser.add_argument("--modes", default="default,one thread")
    parser.add_argument("--protocol", default="repeng", choices=sorted(conventions.PROTOCOLS))
    parser.add_argument("--no-write", action="store_true", help="print only; leave the results JSON as it is")
    args = parser.parse_args()
    data = synthetic(args.datasets, args.layers, args.width, args.rows)
    n_probes = sum(len(STUDY_ALGORITHMS) - (3 if d.name.startswith("statements") else 0) for d in data) * args.layers
    print(f"{len(data)} datasets ({sum(len(d.labels) for d in data)} rows), {args.layers} layers x {args.width}, "
          f"{len(STUDY_ALGORITHMS)} algorithms -> {n_probes} probes, each scored on {len(data)} datasets x "
          f"{len(SPLITS)} splits; torch threads by default: {torch.get_num_threads()}", flush=True)
    # first calls load libraries and kernels: not part of either side's time
    warm = [protocol.Data(d.name, d.acts[:2], d.labels, d.groups, d.answer_types, d.splits) for d in data[:3]]
    run_ours(warm, args.protocol)
    run_reference(warm[:1])
    results = {mode: measure(data, mode, args.repeats, args.reference_repeats, args.protocol)
               for mode in args.modes.split(",")}
    last = results[list(results)[-1]]
    agree = agreement(*last["acc"])
    for algorithm, a in agree.items():
        why = f" (not checked: {a['not_checked_because']})" if a["not_checked_because"] else ""
        print(f"  {algorithm:6s} {a['cells']} cells, max |acc diff| {a['max_abs_diff']:.4f}, equal (< 1e-6) in "
              f"{a['share_equal']:.4f}{why}")
    ratio = min(r["ratio"] for r in results.values())
    print(f"ratio (the smaller): {ratio:.1f}x (target {TARGET:.0f}x)")
    if args.no_write:
        return
    from transferlab.probes.threads import idle_cores

    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "ratio": round(ratio, 2), "target": TARGET, "lower_is_better": False,
        "baseline": ("mishajw/repeng's way (benchmarks/repeng_way.py, its method re-implemented with its libraries "
                     "and settings): one scikit-learn / torch probe per (dataset, algorithm, layer) on float32 rows "
                     "(LinearDiscriminantAnalysis(), LogisticRegression newton-cg C=1, PCA(n_components=1), LAT "
                     "pairs + PCA, CCS by LBFGS), each scored on one dataset split at a time as "
                     "repeng/evals/probes.py does (roc_curve threshold, F1/precision/recall/accuracy/ROC AUC, "
                     "question loop); same synthetic activations; ratio = the smaller of default threads and one "
                     "thread"),
        "command": " ".join(["python benchmarks/probes_sweep.py", *sys.argv[1:]]),
        "ratios": {mode: round(r["ratio"], 2) for mode, r in results.items()},
        "seconds": {mode: {"ours": round(statistics.median(r["ours"]), 2),
                           "reference": round(statistics.median(r["reference"]), 1)} for mode, r in results.items()},
        "runs": {mode: {"ours": [round(t, 2) for t in r["ours"]], "reference": [round(t, 1) for t in r["reference"]]}
                 for mode, r in results.items()},
        "cpu_seconds": {mode: {side: [round(t, 1) for t in v] for side, v in r["cpu"].items()}
                        for mode, r in results.items()},
        "size": {"datasets": len(data), "layers": args.layers, "width": args.width, "rows_per_dataset": args.rows,
                 "algorithms": list(STUDY_ALGORITHMS), "probes": n_probes, "splits_scored": list(SPLITS)},
        "protocol": args.protocol, "accuracy_agreement": agree,
        "machine": {"cores": len(os.sched_getaffinity(0)), "load_average": os.getloadavg(),
                    "idle_cores_at_end": idle_cores(), "torch_default_threads": torch.get_num_threads()},
    }, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
