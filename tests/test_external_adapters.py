"""Adapters transferlab did not train: PEFT directories, hub ids and folders, keyed by content,
checked against the base model before any work, and evaluated into the transfer and drift tables.

Every adapter here is made by PEFT on the tiny random Llama of tests/tiny_models.py and saved
to a temporary directory; the spec's model is that tiny Llama saved as a local model directory.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from tiny_models import make_tokenizer
from transferlab.engine.external_adapters import (content_key, fitting_adapter, hub_snapshot, parameter_shapes,
                                                  shape_problem, adapter_shapes)
from transferlab.engine.spec import SpecError
from transferlab.engine.store import Store
from transferlab.errors import TransferlabError
from transferlab.models import tiny_llama
from transferlab.transfer.plan import plan_transfer
from transferlab.transfer.spec import parse_spec

TASK_YAML = """\
name: {name}
domain: {domain}
output_type: multiple_choice
source: {{path: {name}.jsonl}}
prompt: "{{{{ q }}}}"
choices: ["Y", "N"]
answer: label
"""
TASKS = {"xa-task": "alpha", "xb-task": "beta"}  # task -> domain


def make_adapter(directory: Path, seed: int, base_name: str | None, *, hidden: int = 64, rank: int = 4,
                 targets: tuple[str, ...] = ("q_proj", "v_proj")) -> Path:
    """A LoRA adapter saved by PEFT, with random non-zero B (PEFT's B = 0 would change nothing)."""
    from peft import LoraConfig, get_peft_model

    tokenizer = make_tokenizer()
    model = tiny_llama(vocab_size=len(tokenizer), hidden=hidden, seed=0)
    peft_model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=list(targets)))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    for config in peft_model.peft_config.values():
        config.base_model_name_or_path = base_name
    peft_model.save_pretrained(str(directory), safe_serialization=True, save_embedding_layers=False)
    return directory


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A local tiny model directory, two YAML tasks, and a folder of two adapters made for the model."""
    root = tmp_path_factory.mktemp("external")
    tokenizer = make_tokenizer()
    tiny_llama(vocab_size=len(tokenizer), seed=0).save_pretrained(root / "tiny", safe_serialization=True)
    tokenizer.save_pretrained(root / "tiny")
    for k, (name, domain) in enumerate(TASKS.items()):
        rows = [{"q": f"{name} {i}? {'N' if (i * (k + 2)) % 3 == 0 else 'Y'}", "label": int((i * (k + 2)) % 3 == 0)}
                for i in range(60)]
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (root / f"{name}.yaml").write_text(TASK_YAML.format(name=name, domain=domain))
    make_adapter(root / "theirs" / "one", 1, str(root / "tiny"))
    make_adapter(root / "theirs" / "two", 2, "tiny", targets=("o_proj", "up_proj"))
    return root


def spec_text(root: Path, adapters: str, out: str = "run", extra: str = "") -> str:
    return f"""\
name: ext
models: [{root / 'tiny'}]
tasks: [xa-task, xb-task]
task_files: [xa-task.yaml, xb-task.yaml]
{adapters}
budgets: {{eval_examples: 20}}
similarity: []
bootstrap: 50
device: cpu
output: {root / out}
{extra}"""


FOLDER = "adapters: [{folder: theirs, labels: {one: xa-task, two: beta}}]"


def test_the_key_is_the_content_not_the_path(tmp_path):
    first = make_adapter(tmp_path / "a", 1, "tiny")
    key = content_key(first)
    moved = tmp_path / "elsewhere" / "renamed"
    moved.parent.mkdir()
    shutil.move(str(first), moved)
    assert content_key(moved) == key  # moving keeps the key
    config = json.loads((moved / "adapter_config.json").read_text())
    (moved / "adapter_config.json").write_text(json.dumps(config, indent=7))
    assert content_key(moved) == key  # so does reformatting the JSON
    from safetensors.torch import load_file, save_file

    tensors = load_file(moved / "adapter_model.safetensors")
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] + 1e-3
    save_file(tensors, moved / "adapter_model.safetensors")
    assert content_key(moved) != key  # editing the weights makes a new adapter


def test_spec_reads_paths_hub_ids_and_folders(world, tmp_path, monkeypatch):
    snapshot = tmp_path / "hf" / "hub" / "models--someone--tiny-lora" / "snapshots" / "abc123"
    make_adapter(snapshot, 3, "tiny")
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    text = spec_text(world, """learners:
  - {name: lora, type: lora, rank: 2, steps: 1}
  - name: theirs
    type: external
    adapters:
      - {path: theirs/one, label: xa-task}
      - {hub: someone/tiny-lora, label: math}
      - {folder: theirs, labels: {one: beta}}""")
    spec = parse_spec(text, str(world / "spec.yaml"))
    theirs = spec.learners[1]
    assert [(a.label, Path(a.path)) for a in theirs.adapters] == [
        ("xa-task", world / "theirs" / "one"), ("math", snapshot), ("beta", world / "theirs" / "one"),
        ("two", world / "theirs" / "two")]  # a folder's unlabelled subdirectory is labelled by its name
    assert theirs.adapters[1].source == "hub:someone/tiny-lora"
    assert hub_snapshot("someone/tiny-lora") == snapshot
    with pytest.raises(TransferlabError, match=r"`huggingface-cli download someone/missing`") as err:
        parse_spec(text.replace("someone/tiny-lora", "someone/missing"), str(world / "spec.yaml"))
    assert "\n" not in str(err.value) and "adapters.1.hub" in str(err.value)
    plan = plan_transfer(spec)
    imports = [j for j in plan.jobs if j.kind == "import_adapter"]
    assert len(imports) == 3  # theirs/one is listed twice, under two labels: one adapter in the store
    assert plan.labels["math"] == "math" and plan.labels["xa-task"] == "alpha"  # a task label means its domain


@pytest.mark.parametrize("entry, message", [
    ("[{path: theirs/one, label: a}, {folder: theirs, labels: {one: a}}]", "both labelled 'a'"),
    ("[{path: theirs/one, hub: x/y}]", "exactly one of path"),
    ("[{folder: theirs, labels: {three: a}}]", "not subdirectories"),
    ("[{path: theirs/none}]", "no directory"),
    ("[{path: theirs/one, lable: a}]", "did you mean 'label'"),
])
def test_bad_adapter_entries_are_one_line_errors_at_their_line(world, entry, message):
    with pytest.raises(SpecError, match=message) as err:
        parse_spec(spec_text(world, f"adapters: {entry}"), str(world / "spec.yaml"))
    assert "\n" not in str(err.value) and "spec.yaml:5:" in str(err.value)


def test_sources_without_a_learner_that_trains_is_an_error(world):
    with pytest.raises(SpecError, match="no learner here trains"):
        parse_spec(spec_text(world, FOLDER, extra="sources: [xa-task]\n"), str(world / "spec.yaml"))


def test_wrong_base_adapters_are_refused_before_any_work(world, tmp_path):
    wrong_name = make_adapter(tmp_path / "other-name", 1, "someone/another-model")
    wrong_shape = make_adapter(tmp_path / "other-shape", 1, None, hidden=32)  # no recorded base: shapes decide
    for adapter, message in ((wrong_name, "was made for base model 'someone/another-model'"),
                             (wrong_shape, r"lora_A of model\.layers\.0\.self_attn\.q_proj has shape \(4, 32\)")):
        spec = parse_spec(spec_text(world, f"adapters: [{{path: {adapter}, label: xa-task}}]", out="wrong"),
                          str(world / "spec.yaml"))
        with pytest.raises(TransferlabError, match=message) as err:
            plan_transfer(spec)
        assert f"adapter {adapter} (learner external)" in str(err.value) and "\n" not in str(err.value)
        from transferlab.transfer.study import run_study

        with pytest.raises(TransferlabError):
            run_study(spec, quiet=True)
        assert not (world / "wrong" / "artifacts").exists() and not Store(world / "wrong").jobs()


def test_shape_check_reads_linear_and_embedding_loras():
    model = {"m.q.weight": (16, 8), "m.emb.weight": (100, 8)}
    assert shape_problem({"base_model.model.m.q.lora_A.weight": (2, 8), "base_model.model.m.q.lora_B.weight": (16, 2),
                          "base_model.model.m.emb.lora_embedding_A": (2, 100),
                          "base_model.model.m.emb.lora_embedding_B": (8, 2)}, model) is None
    assert "lora_B of m.q" in shape_problem({"base_model.model.m.q.lora_B.weight": (8, 2)}, model)
    assert "lora_embedding_A of m.emb" in shape_problem({"base_model.model.m.emb.lora_embedding_A": (2, 99)}, model)
    assert "does not have" in shape_problem({"base_model.model.m.k.lora_A.weight": (2, 8)}, model)
    assert shape_problem({"base_model.model.m.q.lora_A.weight": (2, 16)}, model, fan_in_fan_out=True) is None


def test_every_parameter_of_the_model_is_seen_tied_ones_too(world):
    shapes = parameter_shapes(str(world / "tiny"))
    assert shapes["lm_head.weight"] == shapes["model.embed_tokens.weight"]  # tied, still a module PEFT can target
    assert shape_problem(adapter_shapes(world / "theirs" / "one"), shapes) is None


@pytest.fixture(scope="module")
def folder_study(world):
    """A spec of nothing but a folder of someone else's adapters, run end to end."""
    from transferlab.transfer.study import run_study

    spec = parse_spec(spec_text(world, FOLDER), str(world / "spec.yaml"))
    plan, report, where = run_study(spec, quiet=True)
    assert not report.failed
    return spec, plan, where


def test_a_folder_of_their_adapters_becomes_a_drift_table(folder_study, one_thread):
    from transferlab.transfer.drift import drift_table

    spec, plan, where = folder_study
    assert (plan.count("train"), plan.count("import_adapter"), plan.count("evaluate")) == (0, 2, 6)
    assert "2 adapters made elsewhere" in plan.describe()
    store = Store(where)
    frame = store.results()
    gains = frame[frame.metric == "gain:acc"]
    cells = set(zip(gains.trained_on, gains.evaluated_on, gains.condition))
    assert cells == {("xa-task", "xa-task", "direct"), ("xa-task", "xb-task", "transfer"),
                     ("beta", "xa-task", "transfer"), ("beta", "xb-task", "transfer")}  # the label is trained_on
    assert set(frame[frame.trained_on == "beta"].learner) == {"external"}
    table = drift_table(frame, labels=store.labels())
    rows = table.set_index("trained_on")
    assert list(rows.index) == ["beta", "xa-task"]
    assert rows.loc["xa-task", "label"] == "alpha" and rows.loc["xa-task", "on_label_targets"] == "xa-task"
    assert rows.loc["beta", "label"] == "beta" and rows.loc["beta", "on_label_targets"] == "xb-task"
    for trained_on, row in rows.iterrows():
        on = gains[(gains.trained_on == trained_on) & (gains.evaluated_on == row.on_label_targets)].iloc[0]
        off = gains[(gains.trained_on == trained_on) & (gains.evaluated_on != row.on_label_targets)].iloc[0]
        assert row.on_label_gain == pytest.approx(on.value)
        assert row.drift_score == pytest.approx(off.value - on.value)  # mean off-label minus on-label gain


def test_their_adapter_scores_as_if_applied_by_hand(folder_study, world, one_thread):
    """The stored evaluation is the adapter's own: the same accuracy as PEFT applying it directly."""
    from transferlab import adapters
    from transferlab.evaluate import evaluate_task
    from transferlab.models import load
    from transferlab.tasks import get_task

    _, _, where = folder_study
    frame = Store(where).results()
    loaded = load(str(world / "tiny"), device="cpu", dtype="float32")
    task = get_task("xb-task")
    examples = task.examples("test")[:20]
    with adapters.applied(loaded.model, world / "theirs" / "two") as model:
        by_hand = evaluate_task(model, loaded.tokenizer, task, examples, split="test").mean("acc")
    base = evaluate_task(loaded.model, loaded.tokenizer, task, examples, split="test").mean("acc")
    row = frame[frame.trained_on == "beta"]  # the folder's `two`, labelled beta
    stored = row[(row.evaluated_on == "xb-task") & (row.metric == "acc")].value.iloc[0]
    assert stored == pytest.approx(by_hand)
    assert frame[(frame.condition == "baseline") & (frame.evaluated_on == "xb-task")
                 & (frame.metric == "acc")].value.iloc[0] == pytest.approx(base)


def test_moving_the_folder_reuses_everything_and_new_weights_are_a_new_adapter(folder_study, world, one_thread):
    from transferlab.transfer.study import run_study

    spec, plan, _ = folder_study
    shutil.copytree(world / "theirs", world / "moved")
    moved = parse_spec(spec_text(world, FOLDER.replace("theirs", "moved")), str(world / "spec.yaml"))
    assert {j.key for j in plan_transfer(moved).jobs} == {j.key for j in plan.jobs}
    _, again, _ = run_study(moved, quiet=True)
    assert not again.done and len(again.reused) == len(plan.jobs)
    make_adapter(world / "moved" / "two", 7, "tiny", targets=("o_proj", "up_proj"))  # new weights, same place
    changed = {j.key for j in plan_transfer(moved).jobs} - {j.key for j in plan.jobs}
    assert len(changed) == 1 + 2  # its import and its two evaluations; the other adapter and the base keep theirs


def test_evaluate_command_takes_a_hub_id_and_refuses_a_wrong_base(world, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from transferlab.cli import app

    snapshot = tmp_path / "hub" / "models--someone--lora" / "snapshots" / "0123"
    shutil.copytree(world / "theirs" / "one", snapshot)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert fitting_adapter("someone/lora", str(world / "tiny")) == snapshot
    include = ["--include", str(world / "xa-task.yaml")]
    common = ["evaluate", "xa-task", "--model", str(world / "tiny"), "--limit", "6", "--device", "cpu", *include]
    result = CliRunner().invoke(app, [*common, "--adapter", "someone/lora"])
    assert result.exit_code == 0, result.output
    assert "someone/lora" in result.output
    wrong = make_adapter(tmp_path / "wrong", 1, "someone/another-model")
    result = CliRunner().invoke(app, [*common, "--adapter", str(wrong)])
    assert result.exit_code != 0 and "was made for base model 'someone/another-model'" in str(result.exception)


def test_plain_lora_specs_keep_their_keys(world):
    """Adding external learners changes nothing for the learners that train."""
    plain = spec_text(world, "learners: [{name: lora, type: lora, rank: 2, steps: 1}]")
    both = spec_text(world, f"learners: [{{name: lora, type: lora, rank: 2, steps: 1}}]\n{FOLDER}")
    keys = {j.key for j in plan_transfer(parse_spec(plain, str(world / "spec.yaml"))).jobs}
    assert keys < {j.key for j in plan_transfer(parse_spec(both, str(world / "spec.yaml"))).jobs}

