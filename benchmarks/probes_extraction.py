"""Extraction throughput vs a bare batched forward pass of the same model on the same tokens.

    .venv/bin/python benchmarks/probes_extraction.py --model smollm2-135m --rows 96 --repeats 3

Both sides run the same padded batches (sorted by length) through the base model; ours
adds the hooks that keep every layer's last-token residual stream. Prints tokens/s of each
and the ratio (ours / bare; the target is >= 0.8), medians over repeats.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from transferlab.models import load
from transferlab.probes.activations import batches_by_length, decoder_layers, extract, pad_batch, tokenize
from transferlab.probes.datasets import load_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--rows", type=int, default=96, help="Texts per dataset (cities and MMLU).")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    m = load(args.model)
    texts = load_dataset("cities", limit=args.rows).texts[: args.rows]
    texts += load_dataset("mmlu", limit=args.rows, max_chars=300).texts[: args.rows]
    tokens = tokenize(m.tokenizer, texts)
    n_tokens = sum(len(t) for t in tokens)
    base, _ = decoder_layers(m.model)
    pad = m.tokenizer.pad_token_id
    batches = batches_by_length([len(t) for t in tokens], args.batch_size, 8192)

    def bare() -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            for batch in batches:
                ids, mask = pad_batch([tokens[i] for i in batch], pad)
                base(input_ids=ids, attention_mask=mask, use_cache=False)
        return time.perf_counter() - start

    def ours() -> float:
        start = time.perf_counter()
        extract(m.model, m.tokenizer, texts, "all", batch_size=args.batch_size)
        return time.perf_counter() - start

    bare(), ours()  # warm up
    bare_times, our_times = [], []
    for _ in range(args.repeats):  # interleaved, so load changes hit both sides alike
        bare_times.append(bare())
        our_times.append(ours())
    t_bare, t_ours = statistics.median(bare_times), statistics.median(our_times)
    print(f"{args.model}: {len(texts)} texts, {n_tokens} tokens, batch {args.batch_size}, "
          f"{len(decoder_layers(m.model)[1])} layers kept, {args.repeats} repeats (median)")
    print(f"bare forward pass : {n_tokens / t_bare:8.0f} tokens/s ({t_bare:.2f} s)")
    print(f"extraction (ours) : {n_tokens / t_ours:8.0f} tokens/s ({t_ours:.2f} s)")
    print(f"ratio ours/bare   : {t_bare / t_ours:.2f}x (target >= 0.8)")


if __name__ == "__main__":
    main()
