"""The Ray executor on a real cluster, run by tests/test_ray_executor.py in a network namespace of
its own that has only `lo` (so Ray binds every node to 127.0.0.1 and nothing leaves the machine):

    unshare -n sh -c 'ip link set lo up && exec .venv/bin/python tests/ray_scenarios.py cluster OUT'
    .venv/bin/python tests/ray_scenarios.py no-ray OUT

cluster: a demo-sized transfer study (three toy tasks, one LoRA learner, baseline / transfer /
  direct, one seed: 3 trainings and 12 evaluations, as `specs/demo.yaml`) on a tiny random Llama
  saved as a model directory. It runs with the local executor, then on a two-node
  `ray.cluster_utils.Cluster` through `transferlab run --address`, while a watcher kills, by its
  pid, the worker process of a training in flight once another job has finished. OUT/cluster.json
  holds what the test checks: both exports, every artifact's creation time before the kill and
  after the run, the jobs table, the nodes the jobs ran on, the console. Then, on the same
  cluster, translate jobs (they name no model: plain Ray tasks) over stored random adapters,
  one of which fails and one of which depends on the failed one, against the local executor.
no-ray: `transferlab run --executor ray` with `import ray` failing; the test reads its stderr.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tiny_models, as the tests import it

TASK_YAML = """\
name: {name}
domain: {name}
output_type: multiple_choice
source: {{path: {name}.jsonl}}
prompt: "{{{{ q }}}}"
choices: ["Y", "N"]
answer: label
"""

SPEC = """\
name: demo-tiny
models: [{model}]
tasks: [ta, tb, tc]
task_files: [ta.yaml, tb.yaml, tc.yaml]
learners:
  - {{name: lora-r8, type: lora, rank: 8, alpha: 16, target_modules: [q_proj, v_proj], learning_rate: 5.0e-2,
      steps: {steps}, batch_size: 8, max_seq_len: 64}}
conditions: [baseline, transfer, direct]
seeds: [0]
budgets: {{train_examples: 24, eval_examples: 20, eval_batch_size: 16}}
similarity: []
bootstrap: 200
device: cpu
output: {out}
executor:
  kind: ray
  resources: {{default: {{num_cpus: 1}}}}
  max_retries: 1
"""


def write_study(root: Path, steps: int = 20) -> Path:
    """The tiny model, three toy tasks (the answer is in the question, so training moves the scores)
    and the spec; returns the spec's path."""
    from tiny_models import make_tokenizer

    from transferlab.models import tiny_llama

    root.mkdir(parents=True, exist_ok=True)
    tokenizer = make_tokenizer()
    tiny_llama(vocab_size=len(tokenizer), seed=0).save_pretrained(root / "tiny", safe_serialization=True)
    tokenizer.save_pretrained(root / "tiny")
    for k, name in enumerate(("ta", "tb", "tc")):
        rows = [{"q": f"{name} {i}? {'N' if (i * (k + 2)) % 3 == 0 else 'Y'}", "label": int((i * (k + 2)) % 3 == 0)}
                for i in range(60)]
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (root / f"{name}.yaml").write_text(TASK_YAML.format(name=name))
    spec = root / "spec.yaml"
    spec.write_text(SPEC.format(model=root / "tiny", steps=steps, out=root / "run"))
    return spec


def cli(*args: str) -> str:
    """`transferlab ARGS` in this process; returns what it printed on stderr."""
    from transferlab.cli import app

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        app(list(args), standalone_mode=False)
    return err.getvalue()


def artifacts_made(artifacts: Path) -> dict[str, float]:
    """kind/key -> creation time (from its manifest) of every finished artifact."""
    made = {}
    for manifest in artifacts.glob("*/*/MANIFEST.json"):
        try:
            made[f"{manifest.parent.parent.name}/{manifest.parent.name}"] = json.loads(manifest.read_text())["created"]
        except (OSError, ValueError):
            pass  # being renamed into place
    return made


def kill_a_training(artifacts: Path, record: dict, stop: threading.Event) -> None:
    """Once a job has finished, kill the worker of a training in flight: its process id is in the
    name of the temporary directory its adapter is being written to (`store.temp_name`)."""
    while not stop.is_set():
        made = artifacts_made(artifacts)
        for tmp in (artifacts / "adapter").glob(".*.tmp") if made else ():
            parts = tmp.name[1:-len(".tmp")].split(".")
            key, pid = parts[0], int(".".join(parts[1:-1]).rpartition("-")[2])
            if f"adapter/{key}" in made:
                continue
            record.update(killed=key, pid=pid, at=time.time(), before=made)
            os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.02)


def store_anchors(store, count: int = 8) -> dict[str, dict[str, str]]:
    """Paired random LoRA adapters for two models (tests/translation) stored as adapter artifacts;
    side -> task -> key."""
    sys.path.insert(0, str(Path(__file__).resolve().parent / "translation"))
    from translation_helpers import paired_adapters

    from transferlab.translation.features import write_adapter

    keys: dict[str, dict[str, str]] = {"x": {}, "y": {}}
    for side, adapters in zip(("x", "y"), paired_adapters(count)):
        for adapter in adapters:
            key = keys[side][adapter.name] = f"anchor{side}{adapter.name}"
            with store.writing("adapter", key) as where:
                factors = {t: (adapter.A[t], adapter.B[t]) for t in adapter.tensors}
                write_adapter(factors, adapter, adapter.base_model, where)
    return keys


def translate_jobs(keys: dict[str, dict[str, str]]) -> list:
    """Jobs that name no model, so they are plain Ray tasks: one translation that works, one whose
    method has too few anchors (it fails), one that takes the failed one's output (it is skipped)."""
    import transferlab.translation.jobs  # noqa: F401  (registers the translate job kind)
    from transferlab.engine.jobs import Job

    def job(key: str, method: str, anchors: list[str], held_out: str, query: str | None = None) -> Job:
        tasks = [*anchors, held_out]
        source = {t: keys["x"][t] for t in tasks} | ({held_out: query} if query else {})
        params = {"method": method, "params": {}, "anchors": anchors, "held_out": held_out,
                  "source_model": "model-x", "target_model": "model-y", "source_adapters": source,
                  "target_adapters": {t: keys["y"][t] for t in tasks}}
        deps = tuple(dict.fromkeys([*source.values(), *params["target_adapters"].values()]))
        return Job("translate", key, params, deps=deps, label=f"translate {method} for {held_out}")

    return [job("ridge", "global_ridge", [f"task{i}" for i in range(6)], "task7"),
            job("too-few", "global_ridge", ["task0", "task1"], "task6"),
            job("after-failed", "mean", ["task0", "task1"], "task5", query="too-few")]


def run_translations(root: Path, executor) -> dict:
    """The translate jobs on `executor`, in a store of their own: what happened, and the outputs' digests."""
    from transferlab.engine.jobs import Runtime
    from transferlab.engine.store import Store

    store = Store(root)
    report = executor.run(translate_jobs(store_anchors(store)), Runtime(store))
    made = {}
    for key in report.done:  # the adapter's files, and its record but for the wall time it took
        files = json.loads((store.path("adapter", key) / "MANIFEST.json").read_text())["files"]
        record = store.read_json("adapter", key, "translation.json")
        made[key] = {**{k: v for k, v in files.items() if k != "translation.json"},
                     "translation.json": {k: v for k, v in record.items() if k != "seconds"}}
    return {"done": report.done, "failed": report.failed, "skipped": report.skipped, "files": made,
            "jobs": {j["key"]: j["status"] for j in store.jobs()}}


def cluster(out: Path) -> None:
    from ray.cluster_utils import Cluster

    started = time.perf_counter()
    spec = write_study(out / "study")
    local = cli("run", str(spec), "--out", str(out / "local"), "--no-report", "--executor", "local")
    local_seconds = time.perf_counter() - started

    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    nodes.add_node(num_cpus=1)
    nodes.wait_for_nodes()
    record: dict = {}
    stop = threading.Event()
    watcher = threading.Thread(target=kill_a_training, args=(out / "ray" / "artifacts", record, stop), daemon=True)
    ray_started = time.perf_counter()
    watcher.start()
    try:
        console = cli("run", str(spec), "--out", str(out / "ray"), "--no-report", "--address", nodes.address)
    finally:
        stop.set()
    ray_seconds = time.perf_counter() - ray_started
    for run in ("local", "ray"):
        cli("results", "export", str(out / run), str(out / f"{run}.csv"))
    from rich.console import Console

    from transferlab.engine.execute import LocalExecutor
    from transferlab.engine.executors import ExecutorConfig, Resources
    from transferlab.engine.jobs import Job, Runtime
    from transferlab.engine.ray_executor import RayExecutor
    from transferlab.engine.store import Store
    from transferlab.errors import TransferlabError

    said = io.StringIO()
    tasks = {"local": run_translations(out / "translate-local", LocalExecutor(Console(file=io.StringIO()), quiet=True)),
             "ray": run_translations(out / "translate-ray", RayExecutor(ExecutorConfig(kind="ray"),
                                                                        Console(file=said, width=200), quiet=True))}
    try:  # a shape no node has would wait forever: refused before anything runs
        wants_gpu = ExecutorConfig(kind="ray", resources={"translate": Resources(num_gpus=1)})
        RayExecutor(wants_gpu, quiet=True).run([Job("translate", "k", {})], Runtime(Store(out / "gpu")))
        infeasible = ""
    except TransferlabError as err:
        infeasible = str(err)

    report = {"local_csv": (out / "local.csv").read_text(), "ray_csv": (out / "ray.csv").read_text(),
              "kill": record, "after": artifacts_made(out / "ray" / "artifacts"), "jobs": Store(out / "ray").jobs(),
              "console": console, "local_console": local, "local_seconds": local_seconds, "ray_seconds": ray_seconds,
              "claims_left": sorted(p.name for p in (out / "ray" / "artifacts" / "claims").iterdir()),
              "temporaries_left": sorted(p.name for p in (out / "ray" / "artifacts").glob("*/.*.tmp")),
              "translations": tasks, "translate_console": said.getvalue(), "infeasible": infeasible,
              "gpu_run_made": sorted(str(p.relative_to(out / "gpu")) for p in (out / "gpu").rglob("*"))}
    (out / "cluster.json").write_text(json.dumps(report, indent=1))
    import ray

    ray.shutdown()
    nodes.shutdown()


def no_ray(out: Path) -> None:
    """The command line as a user without Ray sees it: `import ray` fails."""
    sys.modules["ray"] = None  # type: ignore[assignment]  # makes `import ray` raise ImportError
    out.mkdir(parents=True, exist_ok=True)
    spec = out / "spec.yaml"
    spec.write_text("models: [smollm2-135m]\ntasks: [cities, larger_than]\nexecutor: ray\n")
    sys.argv = ["transferlab", "run", str(spec), "--out", str(out / "run"), "--executor", "ray"]
    from transferlab.cli import main

    main()


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    {"cluster": cluster, "no-ray": no_ray}[sys.argv[1]](Path(sys.argv[2]))
