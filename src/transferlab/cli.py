"""The `transferlab` command line: models, tasks, run, report, results, demo."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from transferlab.errors import TransferlabError

app = typer.Typer(help="When something is learned on A, how much of it holds on B? "
                       "Train LoRA adapters on sources, evaluate on every target, get the transfer matrix.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
models_app = typer.Typer(help="List, inspect and prepare models.", no_args_is_help=True)
tasks_app = typer.Typer(help="List, inspect and preview tasks.", no_args_is_help=True)
results_app = typer.Typer(help="Export, import and show the tidy results table.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(tasks_app, name="tasks")
app.add_typer(results_app, name="results")
from transferlab.probes.cli import probes_app  # noqa: E402

app.add_typer(probes_app, name="probes")
from transferlab.translation.cli import translation_app  # noqa: E402

app.add_typer(translation_app, name="translation")
from transferlab.figure_command import figure_app  # noqa: E402

app.add_typer(figure_app, name="figure")
out = Console()
err = Console(stderr=True)

DEMO_SPEC = Path(__file__).parent / "specs" / "demo.yaml"


@app.callback()
def _global(cache_dir: Optional[Path] = typer.Option(
        None, "--cache-dir", envvar="TRANSFERLAB_CACHE",
        help="Where converted models and hashes are cached (default ~/.cache/transferlab).")) -> None:
    """When something is learned on A, how much of it holds on B?"""
    import os

    if cache_dir:
        os.environ["TRANSFERLAB_CACHE"] = str(cache_dir)


def _include(paths: list[Path] | None) -> None:
    from transferlab.tasks.yaml_task import register_task_file

    for p in paths or []:
        register_task_file(p)


IncludeOpt = typer.Option(None, "--include", "-I", help="A YAML task file to register (repeatable).")


# ---- models ------------------------------------------------------------------------------
@models_app.command("list")
def models_list() -> None:
    """List the built-in models and whether they are installed and converted."""
    from transferlab.models import BUILTIN_MODELS, DEFAULT_MODEL, converted_dir
    from transferlab.packages import package_root

    table = Table("name", "family", "installed", "converted", "description")
    for m in BUILTIN_MODELS.values():
        try:
            package_root(m.distribution, m.install)
            installed = "yes"
        except TransferlabError:
            installed = f"no: {m.install}"
        converted = "yes" if (converted_dir(m) / "transferlab.json").exists() else "no"
        table.add_row(m.name + (" (default)" if m.name == DEFAULT_MODEL else ""), m.family, installed, converted,
                      m.description)
    out.print(table)
    out.print("Also accepted: a local Hugging Face model directory, or a hub id (from the local HF cache).")


@models_app.command("pull")
def models_pull(name: str = typer.Argument("smollm2-135m", help="Built-in model name."),
                force: bool = typer.Option(False, help="Convert again even if cached."),
                cache: Optional[Path] = typer.Option(None, help="Cache directory (default: --cache-dir, "
                                                                 "$TRANSFERLAB_CACHE or ~/.cache/transferlab).")) -> None:
    """Convert a bundled GGUF model into the safetensors cache (done once; later loads take < 2 s)."""
    from transferlab.models import pull

    start = time.perf_counter()
    with err.status(f"converting {name} (dequantising GGUF, ~30 s the first time)"):
        where = pull(name, cache, force=force)
    out.print(f"{name} ready in {where} ({time.perf_counter() - start:.1f} s)")


@models_app.command("info")
def models_info(name: str = typer.Argument("smollm2-135m", help="Model reference."),
                device: str = typer.Option("auto", help="cpu, cuda, or auto."),
                dtype: str = typer.Option("auto", help="float32, bfloat16, float16, or auto.")) -> None:
    """Load a model and show its architecture, size, identity and load time."""
    from transferlab.models import check_device, load

    check_device(device, dtype)
    m = load(name, device=device, dtype=dtype)
    cfg = m.model.config
    params = sum(p.numel() for p in m.model.parameters())
    info = {"name": m.name, "kind": m.ref.kind, "identity": m.identity, "architecture": cfg.model_type,
            "layers": cfg.num_hidden_layers, "hidden_size": cfg.hidden_size, "parameters": params,
            "vocab_size": cfg.vocab_size, "device": m.device, "dtype": str(m.dtype).replace("torch.", ""),
            "chat_template": bool(getattr(m.tokenizer, "chat_template", None)), "load_seconds": round(m.load_seconds, 2)}
    out.print_json(json.dumps(info))


# ---- tasks -------------------------------------------------------------------------------
@tasks_app.command("list")
def tasks_list(counts: bool = typer.Option(False, "--counts", help="Load every task to count its examples "
                                                                    "(slower)."),
               domain: Optional[str] = typer.Option(None, help="Only tasks of this domain."),
               tsv: bool = typer.Option(False, "--tsv", help="Tab-separated output, for scripts."),
               include: Optional[list[Path]] = IncludeOpt) -> None:
    """List the registered tasks, where their data is (offline package, or the hub: cached or to download),
    and example counts per split when --counts."""
    from transferlab.tasks import SPLITS, get_task, task_names
    from transferlab.tasks.hub import data_status, download_commands

    _include(include)
    header = ("task", "domain", "type", "primary metric", "data", *([*SPLITS] if counts else []))
    table = Table(*header)
    if tsv:
        out.print("\t".join(header), markup=False, highlight=False, soft_wrap=True)
    shown = []
    for name in task_names():
        task = get_task(name)
        if domain and task.domain != domain:
            continue
        shown.append(task)
        extra = [data_status(task)]
        if counts:
            try:
                extra += [str(len(task.examples(s))) for s in SPLITS]
            except TransferlabError as e:
                extra += [f"unavailable: {e}", "", ""]
        if tsv:
            out.print("\t".join([name, task.domain, task.output_type, task.primary_metric, *extra]), markup=False,
                      highlight=False, soft_wrap=True)
        else:
            table.add_row(name, task.domain, task.output_type, task.primary_metric, *extra)
    if not tsv:
        out.print(table)
        for command in download_commands(shown):
            out.print(f"needs download: {command}", markup=False, highlight=False, soft_wrap=True)


@tasks_app.command("show")
def tasks_show(name: str, include: Optional[list[Path]] = IncludeOpt) -> None:
    """Show a task's settings and example counts per split."""
    from transferlab.tasks import get_task

    _include(include)
    out.print_json(json.dumps(get_task(name).summary(), default=str))


from transferlab.tasks.preview import ChatTemplateOpt, SeparatorOpt, StartTokenOpt, tasks_preview  # noqa: E402

tasks_app.command("preview")(tasks_preview)


# ---- one-off evaluate and train ----------------------------------------------------------
@app.command()
def evaluate(task: str = typer.Argument(..., help="Task name."),
             model: str = typer.Option("smollm2-135m", help="Model reference."),
             adapter: Optional[str] = typer.Option(None, help="A PEFT adapter to apply: a directory, or a hub "
                                                   "id (org/name[@revision]) in the local Hugging Face cache."),
             split: str = typer.Option("test", help="train, dev or test."),
             limit: int = typer.Option(0, min=0, help="Evaluate only the first N examples (0 = all)."),
             batch_size: int = typer.Option(16, min=1, help="Examples per batch."),
             max_new_tokens: int = typer.Option(0, min=0, help="Cap on generated tokens (0 = the task's own)."),
             bootstrap: int = typer.Option(1000, min=10, help="Bootstrap resamples for the CI."),
             device: str = typer.Option("auto"), dtype: str = typer.Option("auto"),
             save: Optional[Path] = typer.Option(None, help="Write per-example scores and outputs to this JSON."),
             chat_template: Optional[str] = ChatTemplateOpt, start_token: Optional[str] = StartTokenOpt,
             separator: Optional[str] = SeparatorOpt, include: Optional[list[Path]] = IncludeOpt) -> None:
    """Score one model (optionally with an adapter) on one task, with bootstrap CIs."""
    from rich.progress import Progress

    from transferlab import adapters
    from transferlab.engine.external_adapters import fitting_adapter
    from transferlab.stats import bootstrap_mean
    from transferlab.evaluate import evaluate_task, request_count
    from transferlab.models import check_device, load
    from transferlab.tasks import get_task
    from transferlab.tasks.preview import options_from_cli
    from transferlab.tasks.prompts import render

    check_device(device, dtype)  # before anything loads
    prompt = options_from_cli(chat_template, start_token, separator)
    _include(include)
    t = get_task(task)
    examples = t.examples(split)[: limit or None]
    where = fitting_adapter(adapter, model) if adapter else None  # it fits the model, before anything loads
    m = load(model, device=device, dtype=dtype)
    if examples:
        render(t, examples[0], m.tokenizer, options=prompt)  # an option the tokenizer cannot meet fails here
    start = time.perf_counter()
    with Progress(console=err) as bars, adapters.applied(m.model, where) as net:
        bar = bars.add_task(f"{task} ({len(examples)} examples)", total=request_count(t, examples))
        result = evaluate_task(net, m.tokenizer, t, examples, split=split, batch_size=batch_size,
                               max_new_tokens=max_new_tokens or None, progress=lambda k: bars.advance(bar, k),
                               prompt=prompt)
    table = Table("task", "metric", "value", "95% CI", "n")
    for metric in t.metrics:
        est = bootstrap_mean(result.scores[metric], bootstrap, weights=result.weights_of(metric))
        table.add_row(task, metric, f"{est.value:.4f}", f"[{est.ci_low:.4f}, {est.ci_high:.4f}]", str(est.n))
    out.print(table)
    out.print(f"{m.name}{' + ' + str(adapter) if adapter else ''}, split {split}, "
              f"{time.perf_counter() - start:.0f} s")
    if save:
        save.write_text(json.dumps(result.to_json()))


@app.command()
def train(task: str = typer.Argument(..., help="Source task to train on (its train split)."),
          out_dir: Path = typer.Option(..., "--out", help="Where to save the PEFT adapter."),
          model: str = typer.Option("smollm2-135m", help="Model reference."),
          examples: int = typer.Option(256, min=0, help="Training examples (0 = the whole train split)."),
          steps: int = typer.Option(0, min=0, help="Optimizer steps (0 = one epoch)."),
          rank: int = typer.Option(8, min=1, max=4096), alpha: int = typer.Option(16, min=1),
          target_modules: str = typer.Option("q_proj,v_proj", help="Comma-separated module names."),
          learning_rate: float = typer.Option(2e-4), batch_size: int = typer.Option(8, min=1),
          seed: int = typer.Option(0, min=0), device: str = typer.Option("auto"), dtype: str = typer.Option("auto"),
          include: Optional[list[Path]] = IncludeOpt) -> None:
    """Train one LoRA adapter with SFT (loss on the answer tokens only) and save it in PEFT format."""
    from rich.progress import Progress

    from transferlab.models import check_device, load
    from transferlab.tasks import get_task
    from transferlab.learn.sft import TrainConfig, train_lora

    check_device(device, dtype)
    _include(include)
    t = get_task(task)
    chosen = t.examples("train")[: examples or None]
    modules = tuple(m.strip() for m in target_modules.split(",") if m.strip())
    config = TrainConfig(rank=rank, alpha=alpha, target_modules=modules,
                         learning_rate=learning_rate, steps=steps, batch_size=batch_size, seed=seed)
    m = load(model, device=device, dtype=dtype)
    with Progress(console=err) as bars:
        bar = bars.add_task(f"train on {task}", total=steps or None)
        result = train_lora(m, t, chosen, config, out_dir,
                            progress=lambda s, loss: bars.update(bar, completed=s, description=f"loss {loss:.3f}"))
    out.print(f"saved adapter to {out_dir}: {result.steps} steps, final loss {result.losses[-1]:.4f}, "
              f"{result.tokens_per_second:.0f} answer tokens/s")


# ---- studies -----------------------------------------------------------------------------
from transferlab.engine.run_command import run  # noqa: E402  (kept out of this module, as `results import`)

app.command()(run)


def _report(run_dir: Path, title: str) -> list[Path]:
    from transferlab.transfer.study import write_run_report

    return write_run_report(run_dir, title, out)


@app.command()
def report(run_dir: Optional[Path] = typer.Argument(None, help="A run's output directory (holds results.sqlite)."),
           title: str = typer.Option("", help="Report title [default: the run's spec name]."),
           index: Optional[Path] = typer.Option(None, "--index", help="Write DIR/index.html: a card per run.")) -> None:
    """Redraw the heatmaps, summary and report.html from the results table alone (no model is loaded)."""
    if index is not None:
        from transferlab.html.index import write_index

        return out.print(f"index: {write_index(index)}")
    if run_dir is None:
        raise TransferlabError("give a run's output directory (transferlab report RUN), or --index DIR")
    if not (run_dir / "results.sqlite").exists() and not (run_dir / "tables" / "summary.json").is_file():
        raise TransferlabError(f"{run_dir} holds no results.sqlite: give the output directory of a run")
    from transferlab.translation.wide_table import is_imported, print_report

    if is_imported(run_dir):  # a wide table imported by `results import`: the translation study's flags
        return print_report(run_dir, out)
    _other_study_report(run_dir) or _report(run_dir, title or _run_name(run_dir))


def _other_study_report(run_dir: Path) -> bool:
    """Draw a probe or translation run's report (Markdown, PNGs, report.html); False for a transfer run."""
    from transferlab.engine.store import Store
    from transferlab.probes.results import has_probe_results

    if (run_dir / "tables" / "summary.json").is_file():
        from transferlab.translation.report import write_report
    elif Store.existing(run_dir) and has_probe_results(run_dir):  # Store first: a damaged database is one line
        from transferlab.probes.report import write_report  # type: ignore[no-redef]
    else:
        return False
    write_report(run_dir)
    out.print(f"report: {run_dir / 'report'}\npage: {run_dir / 'report' / 'report.html'}")
    return True


def _run_name(run_dir: Path) -> str:
    """The name in the run's spec.json (what `transferlab run` titles its report), else a generic title."""
    try:
        return str(json.loads((run_dir / "spec.json").read_text())["name"])
    except (OSError, ValueError, KeyError, TypeError):
        return "Transfer study"


@app.command()
def demo(output: Path = typer.Option(Path("demo-output"), "--out", help="Where to write the demo's outputs.")) -> None:
    """A small real transfer study on the default model: adapters, matrix heatmap with CIs, summary."""
    import dataclasses

    from transferlab.transfer.spec import load_spec
    from transferlab.transfer.study import run_study

    start = time.perf_counter()
    spec = dataclasses.replace(load_spec(DEMO_SPEC), output=str(output))
    err.print(f"demo: {', '.join(spec.tasks)} on {spec.models[0]} (spec: {DEMO_SPEC})")
    run_study(spec, console=err)
    written = _report(output, "transferlab demo")
    out.print(f"demo finished in {time.perf_counter() - start:.0f} s; outputs in {output.resolve()}")
    _ = written


# ---- results -----------------------------------------------------------------------------
@results_app.command("export")
def results_export(run_dir: Path = typer.Argument(..., help="A run's output directory."),
                   path: Path = typer.Argument(..., help="Target file: .csv or .parquet.")) -> None:
    """Write the tidy results table to CSV or Parquet."""
    from transferlab.engine.store import Store, export_results

    out.print(f"wrote {export_results(Store.existing(run_dir), path)} rows to {path}")


from transferlab.engine.import_command import results_import  # noqa: E402

results_app.command("import")(results_import)
from transferlab.engine.samples import results_samples  # noqa: E402

results_app.command("samples")(results_samples)


@results_app.command("show")
def results_show(run_dir: Path = typer.Argument(..., help="A run's output directory."),
                 metric: Optional[str] = typer.Option(None, help="Only this metric.")) -> None:
    """Print the results table."""
    from transferlab.engine.store import Store

    frame = Store.existing(run_dir).results()
    if metric:
        frame = frame[frame["metric"] == metric]
    out.print(frame.to_string(index=False))


@results_app.command("jobs")
def results_jobs(run_dir: Path = typer.Argument(..., help="A run's output directory.")) -> None:
    """List the jobs of a run with their status (done, failed with the reason, skipped)."""
    from transferlab.engine.store import Store

    table = Table("kind", "status", "seconds", "key", "detail")
    for j in Store.existing(run_dir).jobs():
        table.add_row(j["kind"], j["status"], f"{j['seconds']:.0f}", j["key"], j["detail"][:120])
    out.print(table)


@results_app.command("rebuild")
def results_rebuild(run_dir: Path = typer.Argument(..., help="A run's output directory."),
                    spec: Optional[Path] = typer.Option(None, help="The spec that made the run [default: the one "
                                                                   "it recorded].")) -> None:
    """Recreate a run's results table from its stored artifacts (the old file is moved aside)."""
    from transferlab.engine.rebuild import rebuild_run

    rebuild_run(run_dir, spec, err)
    out.print(f"rebuilt {run_dir / 'results.sqlite'}")


def main() -> None:
    from transferlab.entry import run_app

    run_app(app, err)
