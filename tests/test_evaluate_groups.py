"""Evaluations sharing a pass (engine.evaluate_groups) end exactly as evaluated one at a time.

A tiny transfer study (the tiny random Llama saved as a local model, a multiple-choice task
whose contexts share a system prompt and a generation task, two trained LoRA adapters and a folder of adapters made elsewhere: two random
LoRA with non-zero B and one DoRA, which cannot share a batch) runs with grouping on and with
`eval_adapters_per_pass: 1`: the exported results are identical and every evaluation's record
is the same but for its timing. Then the leader of a pass is run by hand against claims of
another worker, a missing adapter, a finished peer and an adapter that does not fit.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from tiny_models import TinyLoaded, make_tokenizer
from toy_tasks import Comparison, Echo
from transferlab.engine import claims
from transferlab.engine.adapter_jobs import run_evaluate
from transferlab.engine.evaluate_groups import MEMO, PEERS, group_evaluations, own_params, peer_params
from transferlab.engine.jobs import Job, Runtime
from transferlab.engine.store import MANIFEST, Store, export_results
from transferlab.errors import TransferlabError
from transferlab.models import tiny_llama
from transferlab.tasks.registry import TASKS
from transferlab.transfer.plan import plan_transfer
from transferlab.transfer.spec import parse_spec
from transferlab.transfer.study import run_study

TOLERANCE = 1e-4  # max abs log-prob difference in fp32


def make_adapter(directory: Path, seed: int, base_name: str, *, dora: bool = False, hidden: int = 64) -> Path:
    """A LoRA adapter saved by PEFT with random non-zero B (PEFT's B = 0 would change nothing)."""
    from peft import LoraConfig, get_peft_model

    model = tiny_llama(vocab_size=len(make_tokenizer()), hidden=hidden, seed=0)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                  lora_dropout=0.0, use_dora=dora))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    for config in peft_model.peft_config.values():
        config.base_model_name_or_path = base_name
    peft_model.save_pretrained(str(directory), safe_serialization=True, save_embedding_layers=False)
    return directory


class Instructed(Comparison):
    """Every context starts with the same system prompt: a pass runs it once per adapter (prefix_scoring)."""

    system_prompt = "Compare the two numbers below, then say whether the claim is True or False."


@pytest.fixture(scope="module")
def toy_tasks():
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(TASKS._factories, "toy-compare", Instructed)
        patch.setitem(TASKS._factories, "toy-echo", Echo)
        yield


@pytest.fixture(scope="module")
def world(tmp_path_factory, toy_tasks, one_thread):
    root = tmp_path_factory.mktemp("groups")
    tokenizer = make_tokenizer()
    tiny_llama(vocab_size=len(tokenizer), seed=0).save_pretrained(root / "tiny", safe_serialization=True)
    tokenizer.save_pretrained(root / "tiny")
    make_adapter(root / "theirs" / "one", 1, str(root / "tiny"))
    make_adapter(root / "theirs" / "two", 2, str(root / "tiny"))
    make_adapter(root / "theirs" / "three-dora", 3, str(root / "tiny"), dora=True)
    return root


def spec_text(root: Path, out: str, per_pass: int | None = None, batch_tokens: int = 0) -> str:
    budget = "" if per_pass is None else f", eval_adapters_per_pass: {per_pass}"
    budget += f", eval_batch_tokens: {batch_tokens}" if batch_tokens else ""
    return f"""\
name: groups
models: [{root / 'tiny'}]
tasks: [toy-compare, toy-echo]
learners:
  - {{name: lora, type: lora, rank: 4, steps: 2, batch_size: 4, learning_rate: 0.05}}
  - {{name: theirs, type: external, adapters: [{{folder: theirs}}]}}
prompt_templates: [default, qa]
budgets: {{train_examples: 8, eval_examples: 10, max_new_tokens: 4{budget}}}
similarity: []
bootstrap: 50
device: cpu
output: {root / out}
"""


@pytest.fixture(scope="module")
def studies(world):
    """The same study run grouped (the default) and one evaluation at a time, each in its own store;
    the second also batches its generations by a token budget small enough to bind (a few rows)."""
    runs = {}
    for name, per_pass, tokens in (("grouped", None, 0), ("alone", 1, 60)):
        spec = parse_spec(spec_text(world, name, per_pass, tokens), str(world / f"{name}.yaml"))
        runs[name] = run_study(spec, quiet=True)
    return runs


def records(where: Path, plan) -> dict[str, dict]:
    store = Store(where)
    return {j.key: store.read_json("evaluation", j.key, "evaluation.json") for j in plan.jobs if j.kind == "evaluate"}


def assert_same_record(ours: dict, theirs: dict) -> None:
    """Equal but for the timing; log-probs within TOLERANCE."""
    worst = max((abs(x - y) for xs, ys in zip(ours.get("choice_logprobs", []), theirs.get("choice_logprobs", []))
                 for x, y in zip(xs, ys)), default=0.0)
    assert worst < TOLERANCE
    strip = {"seconds", "choice_logprobs"}
    assert {k: v for k, v in ours.items() if k not in strip} == {k: v for k, v in theirs.items() if k not in strip}


def test_grouped_study_equals_one_at_a_time(studies, tmp_path):
    (grouped_plan, grouped, grouped_dir), (alone_plan, alone, alone_dir) = studies["grouped"], studies["alone"]
    assert {j.key for j in grouped_plan.jobs} == {j.key for j in alone_plan.jobs}  # grouping never changes a key
    assert {j.params.get("batch_tokens") for j in alone_plan.jobs if j.kind == "evaluate"} == {60}  # nor a budget
    assert not grouped.failed and not alone.failed
    assert len(grouped.done) == len(grouped_plan.jobs) and len(alone.done) == len(alone_plan.jobs)
    for name, where in (("grouped", grouped_dir), ("alone", alone_dir)):
        export_results(Store(where), tmp_path / f"{name}.csv")
    assert (tmp_path / "grouped.csv").read_bytes() == (tmp_path / "alone.csv").read_bytes()
    ours, theirs = records(grouped_dir, grouped_plan), records(alone_dir, alone_plan)
    assert ours.keys() == theirs.keys() and len(ours) == 2 * 2 * 6  # 2 targets x 2 templates x (base + 5 adapters)
    for key in ours:
        assert_same_record(ours[key], theirs[key])  # byte for byte but the timing; log-probs within 1e-4
    answers: dict[tuple, set] = {}  # the members of a pass answer differently: a mix-up would show above
    for job in (j for j in grouped_plan.jobs if j.kind == "evaluate"):
        record = ours[job.key]
        answer = tuple(round(x, 3) for xs in record.get("choice_logprobs", []) for x in xs) or tuple(record["outputs"])
        answers.setdefault((job.params["task"], job.params.get("template")), set()).add(answer)
    assert len(answers) == 4 and all(len(a) >= 4 for a in answers.values())
    for key in ours:  # what each artifact records of its job is its own params, never its group
        manifest = json.loads((Store(grouped_dir).path("evaluation", key) / MANIFEST).read_text())
        assert PEERS not in manifest["meta"]
    shared = {j["key"]: j["detail"] for j in Store(grouped_dir).jobs() if "one_pass_with" in (j["detail"] or "")}
    dora = {j.key for j in grouped_plan.jobs if j.kind == "evaluate" and "three-dora" in j.label}
    assert len(shared) == len(ours) - len(dora)  # every evaluation but the DoRA adapter's shared a pass of 5
    assert all("'one_pass_with': 4" in detail for detail in shared.values()) and not dora & shared.keys()
    assert not any(j["detail"] and "one_pass_with" in j["detail"] for j in Store(alone_dir).jobs())
    assert not list((grouped_dir / "artifacts" / "claims").iterdir())  # every claim taken was released


def test_rerun_reuses_everything_and_a_lost_evaluation_is_redone_alone(studies, world, tmp_path):
    plan, _, where = studies["grouped"]
    before = records(where, plan)
    export_results(Store(where), tmp_path / "before.csv")
    spec = parse_spec(spec_text(world, "grouped"), str(world / "grouped.yaml"))
    _, again, _ = run_study(spec, quiet=True)
    assert not again.done and len(again.reused) == len(plan.jobs)
    victim = next(j for j in plan.jobs if j.kind == "evaluate" and j.params.get("adapter"))
    shutil.rmtree(Store(where).path("evaluation", victim.key))
    _, third, _ = run_study(spec, quiet=True)
    assert third.done == [victim.key]  # its peers' artifacts exist: they are never recomputed
    assert_same_record(records(where, plan)[victim.key], before[victim.key])
    export_results(Store(where), tmp_path / "after.csv")
    assert (tmp_path / "after.csv").read_bytes() == (tmp_path / "before.csv").read_bytes()


def test_a_plan_marks_its_groups_without_changing_keys(world):
    plans = {n: plan_transfer(parse_spec(spec_text(world, "p", n), str(world / "p.yaml"))) for n in (None, 1, 4, 0)}
    keys = [j.key for j in plans[1].jobs]
    assert all(sorted(j.key for j in p.jobs) == sorted(keys) for p in plans.values())
    assert not any(PEERS in j.params for j in plans[1].jobs)  # one at a time: nothing marked
    for n, plan in plans.items():
        evaluations = [j for j in plan.jobs if j.kind == "evaluate"]
        by_key = {j.key: j for j in evaluations}
        groups: dict[str, list[Job]] = {}
        for job in evaluations:
            groups.setdefault(json.dumps(job.params[PEERS]) if PEERS in job.params else job.key, []).append(job)
        if n == 1:
            continue
        sizes = sorted(len(g) for g in groups.values())
        assert sizes == ({4: [3, 3] * 4, 0: [6] * 4}.get(n, [6] * 4))  # 6 per (target, template), cut evenly
        at = [i for i, j in enumerate(plan.jobs) if j.kind == "evaluate"]
        for members in groups.values():
            first = plan.jobs.index(members[0])
            assert [j.key for j in plan.jobs[first : first + len(members)]] == [m.key for m in members]  # together
            peers = members[0].params[PEERS]
            assert [p["key"] for p in peers] == [m.key for m in members]
            for peer in peers:  # a peer's own params are rebuilt exactly from the group's
                assert peer_params(members[0], peer) == own_params(by_key[peer["key"]].params)
            shared = {json.dumps({k: v for k, v in m.params.items() if k not in ("adapter", "learner", "trained_on",
                                                                                   "condition", "seed", PEERS)},
                                 sort_keys=True) for m in members}
            assert len(shared) == 1  # one model, target, split, budget and template per pass
        assert at == list(range(at[0], at[0] + len(at)))  # after the imports and trainings, as before
    with pytest.raises(TransferlabError, match="eval_adapters_per_pass"):
        group_evaluations(plans[1].jobs, -1)


# ---- the leader of a pass, by hand ---------------------------------------------------------
def _runtime(root: Path) -> Runtime:
    rt = Runtime(Store(root / "run"))
    rt.loaded["tiny"] = TinyLoaded()
    return rt


def _store_adapter(rt: Runtime, key: str, directory: Path) -> None:
    with rt.store.writing("adapter", key) as out:
        for f in directory.iterdir():
            shutil.copy(f, out / f.name)


def _jobs(adapters: list[str | None], task: str = "toy-compare", prompt: dict | None = None) -> list[Job]:
    jobs = []
    for i, adapter in enumerate(adapters):
        params = {"model": "tiny", "task": task, "split": "test", "eval_examples": 8, "max_new_tokens": 4,
                  "batch_size": 4, "seed": 0, "adapter": adapter, "learner": "lora" if adapter else None,
                  "trained_on": adapter, "condition": "transfer" if adapter else "baseline",
                  **({"prompt": prompt} if prompt else {})}
        jobs.append(Job("evaluate", f"eval{i}", params, deps=(adapter,) if adapter else ()))
    return group_evaluations(jobs, 0)


def _alone(job: Job, root: Path) -> dict:
    """The record of `job` evaluated alone, in a store of its own."""
    rt = _runtime(root)
    for key in filter(None, [job.params.get("adapter")]):
        _store_adapter(rt, key, root.parent / "made" / key)
    run_evaluate(Job(job.kind, job.key, own_params(job.params), job.deps), rt, lambda *a: None)
    return rt.store.read_json("evaluation", job.key, "evaluation.json")


@pytest.fixture
def made(tmp_path, toy_tasks, one_thread) -> Path:
    for i, name in enumerate(("a1", "a2", "a3", "a4")):
        make_adapter(tmp_path / "made" / name, 10 + i, "tiny")
    make_adapter(tmp_path / "made" / "wide", 9, "tiny", hidden=32)  # another base model's shapes
    return tmp_path


def test_the_leader_scores_only_the_peers_it_may_claim(made):
    rt = _runtime(made)
    for name in ("a1", "a2", "a3"):  # a4's adapter is still being made
        _store_adapter(rt, name, made / "made" / name)
    base, a1, a2, a3, a4 = jobs = _jobs([None, "a1", "a2", "a3", "a4"])
    held = claims.take(rt.store.artifacts / "claims", a2.key)
    held.write_text(json.dumps({"host": "another-node", "pid": 1}))  # another worker's, alive for all we know
    run_evaluate(Job(a3.kind, a3.key, own_params(a3.params), a3.deps), rt, lambda *a: None)  # a3 finished alone
    finished = rt.store.path("evaluation", a3.key) / "evaluation.json"
    stamp = finished.stat().st_mtime_ns
    passes = []
    original = rt.loaded["tiny"].model.forward

    def counting(*args, **kwargs):
        passes.append(kwargs["input_ids"].shape[0])
        return original(*args, **kwargs)

    rt.loaded["tiny"].model.forward = counting
    summary = run_evaluate(base, rt, lambda *a: None)
    assert summary["one_pass_with"] == 1  # a1 only: a2 is held elsewhere, a3 is done, a4 has no adapter yet
    assert set(k for _, k in rt.memo) == {a1.key}
    assert finished.stat().st_mtime_ns == stamp  # a finished evaluation is never recomputed
    assert sorted(p.name for p in (rt.store.artifacts / "claims").iterdir()) == [a2.key]  # ours released
    calls = len(passes)
    assert run_evaluate(a1, rt, lambda *a: None)["one_pass_with"] == 1
    assert len(passes) == calls and not rt.memo  # a1 wrote what the pass left it, without a forward pass
    claims.release(held)
    _store_adapter(rt, "a4", made / "made" / "a4")
    assert run_evaluate(a2, rt, lambda *a: None)["one_pass_with"] == 1  # a2 leads a pass of its own, with a4
    assert run_evaluate(a4, rt, lambda *a: None)["one_pass_with"] == 1
    for job in jobs:
        assert_same_record(rt.store.read_json("evaluation", job.key, "evaluation.json"), _alone(job, made / job.key))


@pytest.mark.parametrize("task", ["toy-compare", "toy-echo"])
def test_a_pass_that_cannot_be_shared_falls_back_to_one_at_a_time(made, task):
    rt = _runtime(made)
    for name in ("a1", "wide"):
        _store_adapter(rt, name, made / "made" / name)
    base, a1, wide = _jobs([None, "a1", "wide"], task)
    assert "one_pass_with" not in run_evaluate(base, rt, lambda *a: None)  # the pass failed on `wide`: alone
    assert "one_pass_with" not in run_evaluate(a1, rt, lambda *a: None)
    with pytest.raises((RuntimeError, TransferlabError), match="size mismatch"):
        run_evaluate(wide, rt, lambda *a: None)  # the misfit fails on its own, with its own error
    assert not rt.memo and not list((rt.store.artifacts / "claims").iterdir())
    for job in (base, a1):
        assert_same_record(rt.store.read_json("evaluation", job.key, "evaluation.json"), _alone(job, made / job.key))


@pytest.mark.parametrize("task", ["toy-compare", "toy-echo"])
def test_a_pass_honours_the_runs_prompt_options(made, task):
    rt = _runtime(made)
    _store_adapter(rt, "a1", made / "made" / "a1")
    prompt = {"chat_template": "off", "separator": " "}
    base, a1 = _jobs([None, "a1"], task, prompt)
    assert run_evaluate(base, rt, lambda *a: None)["one_pass_with"] == 1
    assert run_evaluate(a1, rt, lambda *a: None)["one_pass_with"] == 1
    for job in (base, a1):
        record = rt.store.read_json("evaluation", job.key, "evaluation.json")
        assert record["prompt"] == prompt and all("<|user|>" not in c for c in record["contexts"])
        assert_same_record(record, _alone(job, made / job.key))
    plain = {k: v for k, v in own_params(a1.params).items() if k != "prompt"}
    mixed = group_evaluations([Job("evaluate", base.key, own_params(base.params)), Job("evaluate", "x", plain)], 0)
    assert not any(PEERS in j.params for j in mixed)  # other prompt options: never one pass
