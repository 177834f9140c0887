"""Training throughput: our LoRA SFT loop against PEFT + Hugging Face `Trainer`, side by side.

Same model (fp32), the same examples (each trained on once: steps x batch size rows), the same
LoRA config, batch size, steps, learning rate and schedule, the same torch and BLAS threads;
both mask the prompt tokens out of the loss. The Trainer gets the strongest settings a user
would pick on CPU: batches grouped by length (as ours are), no logging, no checkpoints, no
dataloader workers. Both sides are timed from the tokenised rows to the saved adapter (PEFT
wrapping and Trainer construction included on its side; tokenising, wrapping and saving on
ours), model loading excluded. Throughput = non-padding tokens of the rows trained on, per
second. Runs are interleaved so drift in machine load hits both alike. Prints the medians over
repeats and the ratio, and writes docs/results/benchmarks/train_throughput.json.

Our loop computes vocabulary logits only at the completion positions and runs the prefix that
every row of a batch shares (a chat template's system prompt, a task's instruction) once per
batch (`sft.prefix_shared_loss`); a third side, ours with that turned off, shows what each
part gives.

    .venv/bin/python benchmarks/train_throughput.py --task cities --steps 20 --repeats 3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

OUT = Path(__file__).parents[1] / "docs" / "results" / "benchmarks" / "train_throughput.json"
TARGET = 1.5  # issue 14: SFT tokens/s at least 1.5x PEFT + HF Trainer


def ours(loaded, task, examples, config, share_prefix: bool = True) -> float:
    from transferlab.learn import sft

    plain = sft.prefix_shared_loss
    if not share_prefix:
        sft.prefix_shared_loss = lambda model, ids, mask, labels, prefix: sft.completion_loss(model, ids, mask, labels)
    try:
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            sft.train_lora(loaded, task, examples, config, Path(out))
            return time.perf_counter() - start
    finally:
        sft.prefix_shared_loss = plain


def hf_trainer(loaded, task, examples, config) -> float:
    from peft import get_peft_model
    from transformers import Trainer, TrainingArguments

    from transferlab.learn.sft import collate, tokenize

    def collator(batch):
        ids, mask, labels = collate([(b["input_ids"], b["n_prompt"]) for b in batch], loaded.tokenizer.pad_token_id)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    grouped = ({"train_sampling_strategy": "group_by_length"} if "train_sampling_strategy" in fields
               else {"group_by_length": True})
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        rows = tokenize(task, examples, loaded.tokenizer, config.max_seq_len)
        dataset = [{"input_ids": ids, "n_prompt": n} for ids, n in rows]
        model = get_peft_model(loaded.model, config.lora_config())
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=config.batch_size, max_steps=config.steps,
                                 learning_rate=config.learning_rate, warmup_steps=int(config.warmup_ratio * config.steps),
                                 lr_scheduler_type="cosine", weight_decay=config.weight_decay,
                                 max_grad_norm=config.grad_clip, logging_strategy="no", save_strategy="no",
                                 report_to=[], seed=config.seed, remove_unused_columns=False, use_cpu=True,
                                 dataloader_num_workers=0, disable_tqdm=True, **grouped)
        trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator)
        trainer.train()
        model.save_pretrained(out + "/adapter", safe_serialization=True, save_embedding_layers=False)
        seconds = time.perf_counter() - start
    model.unload()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--task", default="cities")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch and BLAS threads for both sides (0 = torch's default)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave the results JSON as it is")
    args = parser.parse_args()

    from threadpoolctl import threadpool_limits

    from transferlab import models
    from transferlab.learn.sft import TrainConfig, length_bucketed_batches, shared_prefix, tokenize
    from transferlab.tasks import get_task

    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    limits = threadpool_limits(threads)
    torch.manual_seed(0)
    loaded = models.load(args.model)
    task = get_task(args.task)
    examples = task.examples("train")[: args.steps * args.batch_size]
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size)
    rows = tokenize(task, examples, loaded.tokenizer, config.max_seq_len)
    tokens = sum(len(ids) for ids, _ in rows)
    batches = length_bucketed_batches([len(r[0]) for r in rows], config.batch_size, config.steps, config.seed)
    shared = sum(shared_prefix([rows[i] for i in b]) * (len(b) - 1) for b in batches)
    sides = {"transferlab": lambda: ours(loaded, task, examples, config),
             "hf_trainer": lambda: hf_trainer(loaded, task, examples, config),
             "transferlab_no_prefix_sharing": lambda: ours(loaded, task, examples, config, share_prefix=False)}
    warm = dataclasses.replace(config, steps=1)  # first calls import and allocate: not part of either side's time
    ours(loaded, task, examples[: args.batch_size], warm)
    hf_trainer(loaded, task, examples[: args.batch_size], warm)
    timings: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(args.repeats):  # interleaved, so drift in machine load hits every side alike
        for name, run in sides.items():
            timings[name].append(run())
            print(f"  {name}: {timings[name][-1]:.1f} s", flush=True)
    limits.restore_original_limits()
    rates = {name: tokens / statistics.median(t) for name, t in timings.items()}
    for name, rate in rates.items():
        print(f"{name:30s} median {statistics.median(timings[name]):6.1f} s  {rate:7.1f} tokens/s  "
              f"(runs: {', '.join(f'{t:.1f}' for t in timings[name])})")
    ratio = rates["transferlab"] / rates["hf_trainer"]
    without = rates["transferlab_no_prefix_sharing"] / rates["hf_trainer"]
    print(f"ratio transferlab / hf_trainer: {ratio:.2f}x (target {TARGET}x); without prefix sharing {without:.2f}x "
          f"({args.task}, {args.steps} steps x batch {args.batch_size}, {tokens} tokens, {shared} of them not recomputed "
          f"as prefixes shared within a batch)")
    if args.no_write:
        return
    command = " ".join(["python benchmarks/train_throughput.py", *sys.argv[1:]])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "ratio": round(ratio, 3), "target": TARGET, "lower_is_better": False,
        "baseline": (f"PEFT get_peft_model + HF Trainer (train_sampling_strategy group_by_length, no logging or "
                     f"checkpoints) on the same {len(rows)} {args.task} rows, {args.steps} steps x batch "
                     f"{args.batch_size}, LoRA r={config.rank} alpha={config.alpha} on "
                     f"{'/'.join(config.target_modules)}, AdamW lr {config.learning_rate} with warm-up and cosine "
                     f"decay, grad clip {config.grad_clip}, prompt tokens masked, fp32, {threads} torch/BLAS "
                     "threads both sides; timed from tokenising to the saved adapter; tokens/s of non-padding tokens"),
        "command": command,
        "tokens_per_second": {k: round(v, 1) for k, v in rates.items()},
        "seconds": {k: round(statistics.median(v), 2) for k, v in timings.items()},
        "runs": {k: [round(t, 2) for t in v] for k, v in timings.items()},
        "ratio_without_prefix_sharing": round(without, 3),
        "tokens": tokens, "prefix_tokens_not_recomputed": shared,
        "model": args.model, "task": args.task, "steps": args.steps, "batch_size": args.batch_size,
        "threads": threads, "torch": torch.__version__,
    }, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
