"""Training throughput: our LoRA SFT loop against PEFT + Hugging Face `Trainer`, side by side.

Same model, same examples, same LoRA config, same batch size, steps and schedule; both
mask the prompt tokens out of the loss. Throughput = non-padding tokens processed per
second of training (model loading excluded). Prints each median over repeats and the ratio.

    .venv/bin/python benchmarks/train_throughput.py --task cities --steps 20 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def ours(loaded, task, examples, config) -> float:
    from transferlab.learn.sft import train_lora

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        train_lora(loaded, task, examples, config, Path(out))
        return time.perf_counter() - start


def hf_trainer(loaded, task, examples, config) -> float:
    from peft import get_peft_model
    from transformers import Trainer, TrainingArguments

    from transferlab.learn.sft import collate, tokenize

    rows = tokenize(task, examples, loaded.tokenizer, config.max_seq_len)
    dataset = [{"ids": ids, "n_prompt": n} for ids, n in rows]

    def collator(batch):
        ids, mask, labels = collate([(b["ids"], b["n_prompt"]) for b in batch], loaded.tokenizer.pad_token_id)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    model = get_peft_model(loaded.model, config.lora_config())
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=config.batch_size, max_steps=config.steps,
                                 learning_rate=config.learning_rate, warmup_steps=int(config.warmup_ratio * config.steps),
                                 lr_scheduler_type="cosine", weight_decay=config.weight_decay,
                                 max_grad_norm=config.grad_clip, logging_strategy="no", save_strategy="no",
                                 report_to=[], seed=config.seed, remove_unused_columns=False, use_cpu=True,
                                 dataloader_num_workers=0, disable_tqdm=True)
        trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator)
        start = time.perf_counter()
        trainer.train()
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
    args = parser.parse_args()

    from transferlab import models
    from transferlab.tasks import get_task
    from transferlab.learn.sft import TrainConfig, tokenize

    torch.manual_seed(0)
    loaded = models.load(args.model)
    task = get_task(args.task)
    examples = task.examples("train")[: args.steps * args.batch_size]
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size)
    tokens = sum(len(ids) for ids, _ in tokenize(task, examples, loaded.tokenizer, config.max_seq_len))
    timings: dict[str, list[float]] = {"transferlab": [], "hf_trainer": []}
    for _ in range(args.repeats):  # interleaved, so drift in machine load hits both alike
        timings["transferlab"].append(ours(loaded, task, examples, config))
        timings["hf_trainer"].append(hf_trainer(loaded, task, examples, config))
    rates = {name: tokens / statistics.median(t) for name, t in timings.items()}
    for name, rate in rates.items():
        print(f"{name:12s} median {statistics.median(timings[name]):6.1f} s  {rate:7.1f} tokens/s  "
              f"(runs: {', '.join(f'{t:.1f}' for t in timings[name])})")
    print(f"ratio transferlab / hf_trainer: {rates['transferlab'] / rates['hf_trainer']:.2f}x "
          f"({args.task}, {args.steps} steps x batch {args.batch_size}, {tokens} tokens)")


if __name__ == "__main__":
    main()
