"""Global ridge in kernel form (factor-space Grams, N x N) against naive feature-space solves,
on random adapters of the default size of a 3B model pair, X = Qwen2.5-3B (36 layers,
q_proj 2048x2048, v_proj 256x2048) -> Y = Llama-3.2-3B (28 layers, q_proj 3072x3072,
v_proj 1024x3072), r=8, 16 anchors and one query (seed 000's setting).

    .venv/bin/python benchmarks/translation_kernel_vs_naive.py                # full size
    .venv/bin/python benchmarks/translation_kernel_vs_naive.py --layers 4     # quick

Three ways to the same prediction:
- kernel (transferlab): Grams from the LoRA factors (tr(AᵢᵀBᵢᵀBⱼAⱼ), r x r per pair), the
  leave-one-anchor-out λ choice and the solve in the anchor span; ΔW is never formed.
- dense dual: what scikit-learn's Ridge does when features outnumber samples: flatten every
  ΔW (streamed one tensor at a time to fit in RAM), Gram = D Dᵀ, same λ and solve, predicted
  ΔW as a dense weighted sum. Same predictions, checked to 1e-5 relative on every tensor.
- primal: the textbook solve (XᵀX + λI)⁻¹XᵀY in feature space. Its D x D system cannot be
  formed at full size (D ≈ 1.7e8 X features), so it runs on slices of D features for the
  equality check and a timing curve, and the full-size time is extrapolated as D³ (stated so).
Timings are medians over --repeats.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from transferlab.translation.features import AdapterStack, from_factors
from transferlab.translation.protocol import small_algebra
from transferlab.translation.translators import make
from transferlab.translation.translators._kernel import (
    choose_lambda,
    ridge_weights,
)

X_SHAPE = {"layers": 36, "q_proj": (2048, 2048), "v_proj": (256, 2048)}  # Qwen2.5-3B
Y_SHAPE = {"layers": 28, "q_proj": (3072, 3072), "v_proj": (1024, 3072)}  # Llama-3.2-3B


def random_adapters(shape: dict, n: int, rank: int, base: str, seed: int, layers: int | None) -> list:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        factors = {}
        for layer in range(layers or shape["layers"]):
            for module in ("q_proj", "v_proj"):
                rows, cols = shape[module]
                factors[(layer, module)] = (torch.randn(rank, cols, generator=g, dtype=torch.float64) / cols**0.5,
                                            torch.randn(rows, rank, generator=g, dtype=torch.float64) * 0.01)
        out.append(from_factors(f"task{i}", base, factors))
    return out


def kernel_prediction(xs, ys, query):
    """transferlab's global ridge: fit (Grams + LOO λ) and predict, as factors."""
    with small_algebra():
        translator = make("global_ridge").fit(AdapterStack.of(xs), AdapterStack.of(ys))
        return translator.predict(query)


def dense_dual_prediction(xs, ys, query):
    """Flatten every ΔW (one tensor at a time), Gram = D Dᵀ, same λ choice, dense weighted sum."""
    n = len(xs)
    x_tensors, y_tensors = xs[0].tensors, ys[0].tensors
    K = torch.zeros(n, n, dtype=torch.float64)
    k = torch.zeros(n, 1, dtype=torch.float64)
    for t in x_tensors:
        D = torch.stack([a.delta(t).flatten() for a in xs])
        q = query.delta(t).flatten()
        scale = (D * D).sum(1).mean()
        K += (D @ D.T) / scale
        k += (D @ q)[:, None] / scale
        del D
    G = torch.zeros(n, n, dtype=torch.float64)
    for t in y_tensors:
        D = torch.stack([a.delta(t).flatten() for a in ys])
        G += (D @ D.T) / (D * D).sum(1).mean()
        del D
    lam, _ = choose_lambda(K, G)
    w = ridge_weights(K, k, lam)[:, 0]
    return {t: sum(w[i] * ys[i].delta(t) for i in range(n)) for t in y_tensors}


def primal_slice(xs, ys, query, d: int):
    """The primal solve on the first d X features and d Y features, against the kernel form on the same slice."""
    def flat(adapters, width):
        rows = []
        for a in adapters:
            parts, have = [], 0
            for t in a.tensors:
                part = a.delta(t).flatten()[: width - have]
                parts.append(part)
                have += part.numel()
                if have >= width:
                    break
            rows.append(torch.cat(parts))
        return torch.stack(rows)

    X, Y, q = flat(xs, d), flat(ys, d), flat([query], d)
    n = X.shape[0]
    lam = 0.1
    start = time.perf_counter()
    Xc, Yc, mean_x = X - X.mean(0), Y - Y.mean(0), X.mean(0)
    penalty = lam * float((Xc * Xc).sum()) / n
    coef = torch.linalg.solve(Xc.T @ Xc + penalty * torch.eye(d, dtype=torch.float64), Xc.T @ Yc)
    primal = Y.mean(0) + (q - mean_x) @ coef
    primal_s = time.perf_counter() - start
    start = time.perf_counter()
    w = ridge_weights(X @ X.T, X @ q.T, torch.tensor(lam, dtype=torch.float64))[:, 0]
    kernel = w @ Y
    kernel_s = time.perf_counter() - start
    rel = float((primal[0] - kernel).abs().max() / kernel.abs().max())
    return primal_s, kernel_s, rel


def n_features(adapter) -> int:
    return sum(adapter.B[t].shape[0] * adapter.A[t].shape[1] for t in adapter.tensors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--anchors", type=int, default=16)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--layers", type=int, default=0, help="layers per model for the kernel run (0 = 36 and 28)")
    parser.add_argument("--dense-layers", type=int, default=2,
                        help="layers per model on which the dense dual runs (its time is linear in the tensor "
                             "count, so it is scaled up to the full model)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slices", default="1024,2048,4096", help="feature counts for the primal solve")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    def problem(layers):
        xs = random_adapters(X_SHAPE, args.anchors + 1, args.rank, "qwen2.5-3b", 0, layers)
        ys = random_adapters(Y_SHAPE, args.anchors, args.rank, "llama-3.2-3b", 1, layers)
        return xs[:-1], ys, xs[-1]

    def timed(fn, repeats):
        times, result = [], None
        for _ in range(repeats):
            start = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times), result

    # 1) the kernel form at full size
    xs, ys, query = problem(args.layers or None)
    dx, dy = n_features(xs[0]), n_features(ys[0])
    full_tensors = len(xs[0].tensors) + len(ys[0].tensors)
    print(f"{args.anchors} anchors + 1 query, r={args.rank}; X: {len(xs[0].tensors)} tensors, {dx:,} dense ΔW "
          f"features; Y: {len(ys[0].tensors)} tensors, {dy:,} features")
    kernel_full, _ = timed(lambda: kernel_prediction(xs, ys, query), args.repeats)
    print(f"kernel form, full size              : {kernel_full:9.2f} s (median of {args.repeats}; fit incl. "
          "leave-one-out λ, and predict)")
    del xs, ys, query

    # 2) equality and the dense dual on a slice of layers, scaled to the full tensor count
    xs, ys, query = problem(args.dense_layers)
    kernel_slice, prediction = timed(lambda: kernel_prediction(xs, ys, query), args.repeats)
    dense_slice, dense = timed(lambda: dense_dual_prediction(xs, ys, query), max(1, args.repeats - 2))
    worst = 0.0
    for t, value in dense.items():
        a, b = prediction.factors[t]
        worst = max(worst, float((b @ a - value).abs().max() / value.abs().max()))
    scale = full_tensors / (len(xs[0].tensors) + len(ys[0].tensors))
    print(f"on {args.dense_layers} layers per model: kernel {kernel_slice:.2f} s, dense dual {dense_slice:.2f} s "
          f"({dense_slice / kernel_slice:.0f}x); max |Δ| / max |ΔW| over all Y tensors {worst:.1e} "
          f"({'OK' if worst < 1e-5 else 'MISMATCH'}: need < 1e-5)")
    dense_full = dense_slice * scale
    print(f"dense dual, full size (x{scale:.0f} tensors): {dense_full:9.1f} s (scaled from the measured slice)")
    print(f"ratio dense dual / kernel form      : {dense_full / kernel_full:9.1f}x")

    # 3) the primal solve in feature space, on slices of D features
    curve = []
    for d in [int(v) for v in args.slices.split(",") if v]:
        primal_s, kernel_s, rel = primal_slice(xs, ys, query, d)
        curve.append((d, primal_s))
        print(f"primal solve, D={d:>6} X and Y features: {primal_s:7.2f} s; kernel on the same slice "
              f"{kernel_s * 1e3:6.2f} ms; max rel diff {rel:.1e}")
    d_last, t_last = curve[-1]
    estimate = t_last * (dx / d_last) ** 3
    print(f"primal at full size (D={dx:,}): not formable (the D x D system is {dx**2 * 8 / 2**50:.0f} PiB); "
          f"D³ extrapolation from D={d_last}: ~{estimate:.0e} s = {estimate / kernel_full:.0e}x the kernel form")


if __name__ == "__main__":
    main()
