"""Evaluations that share a pass: the base model and its adapters scored on one target together.

Evaluate jobs that differ only in what was evaluated (the adapter and the fields that say
whose it is: learner, trained_on, condition, seed) ask the same questions of the same model
under the same prompt, so one pass over the target's data can answer all of them
(`multi_adapter.evaluate_many`: PEFT mixed-adapter batches). Everything else stays per job:
keys, artifacts, result rows, claims, lineage, resume.

A plan marks its groups with `group_evaluations`: every member's params gain `peers`, the
group's members (key and member fields), and the members are listed next to each other.
The first member to run (`grouped_result`) claims every peer that is ready (its adapter
exists), not finished and not held by another worker, scores them all in one pass, and
leaves the peers' results in the runtime's memo; each peer's own job then finds its result
there and writes its artifact as if it had run alone (the peers' claims are released after
the pass and taken again, one by one, by the executor; listing them together keeps that
moment short). A peer another worker holds, or one whose adapter is still being made, is
left out of the pass: it runs on its own, or leads a pass of its own. Grouping changes how
fast, never what. Any executor that runs a group's jobs through one runtime without
claiming them all beforehand gets the passes (the local one); the Ray executor claims every
ready job when it submits it, so there each evaluation runs on its own, as before.

    budgets: {eval_adapters_per_pass: 16}   # the base and up to 15 adapters per pass (1 = one at a time)
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from transferlab.engine import claims
from transferlab.engine.jobs import Job, Runtime
from transferlab.errors import TransferlabError

MEMBER_FIELDS = ("adapter", "learner", "trained_on", "condition", "seed")  # what differs inside a group
PEERS = "peers"
MEMO = "evaluate_groups"  # runtime.memo[(MEMO, key)]: (TaskEvaluation, seconds, pass size) left by a pass, or ALONE
ALONE = "alone"  # a member of a pass that failed: it runs on its own (and reports its own error)


def shared_params(params: dict[str, Any]) -> dict[str, Any]:
    """What every member of an evaluation's group has in common: all but the member fields."""
    return {k: v for k, v in params.items() if k not in MEMBER_FIELDS and k != PEERS}


def own_params(params: dict[str, Any]) -> dict[str, Any]:
    """The params a job has when evaluated alone (what its artifact records): without `peers`."""
    return {k: v for k, v in params.items() if k != PEERS}


def group_evaluations(jobs: Sequence[Job], per_pass: int) -> list[Job]:
    """`jobs` with every evaluate job that can share a pass marked with its group (params `peers`),
    members listed together where the group's first member was; other jobs are unchanged.

    `per_pass` caps the evaluations of one pass (0 = no cap, 1 = every evaluation alone); a
    larger group is cut into passes of nearly equal size. Keys never change.
    """
    if per_pass < 0:
        raise TransferlabError(f"eval_adapters_per_pass must be 0 (no cap) or more, got {per_pass}")
    classes: dict[str, list[Job]] = {}
    for job in jobs:
        if job.kind == "evaluate":
            classes.setdefault(json.dumps(shared_params(job.params), sort_keys=True), []).append(job)
    marked: dict[str, list[Job]] = {}  # first member's key -> the jobs of its class, marked, in order
    for members in classes.values():
        out: list[Job] = []
        for chunk in _chunks(members, per_pass):
            peers = [{"key": m.key, **{f: m.params[f] for f in MEMBER_FIELDS if f in m.params}} for m in chunk]
            for m in chunk:
                params = {**m.params, PEERS: peers} if len(chunk) > 1 else m.params
                out.append(Job(m.kind, m.key, params, m.deps, m.label))
        marked[members[0].key] = out
    grouped = {j.key for out in marked.values() for j in out}
    result: list[Job] = []
    for job in jobs:
        if job.key in marked:
            result += marked[job.key]
        elif job.key not in grouped:
            result.append(job)
    return result


def _chunks(members: list[Job], per_pass: int) -> list[list[Job]]:
    if per_pass == 1:
        return [[m] for m in members]
    if per_pass == 0 or len(members) <= per_pass:
        return [members]
    passes = math.ceil(len(members) / per_pass)
    size = math.ceil(len(members) / passes)
    return [members[i : i + size] for i in range(0, len(members), size)]


def peer_params(job: Job, peer: dict[str, Any]) -> dict[str, Any]:
    """The params `peer`'s own job has (without `peers`): the group's shared ones and its own fields."""
    return {**shared_params(job.params), **{k: v for k, v in peer.items() if k != "key"}}


def grouped_result(job: Job, rt: Runtime,
                   evaluate: Callable[[list[Path | None]], list[Any]]) -> tuple[Any, float, int] | None:
    """This evaluation's result, seconds and pass size from a pass over its group, or None to
    evaluate it alone.

    A result an earlier member's pass left in the memo is taken from there. Otherwise this job
    leads a pass over itself and every peer it can claim whose adapter is ready and whose
    evaluation is missing; `evaluate(adapters)` scores the given adapter directories (None:
    the base model) in one pass and returns one result per adapter. Seconds are the pass's
    share per member. A pass that fails (an adapter that cannot share a batch, or does not fit)
    gives None: each member then runs alone and reports its own error.
    """
    left = rt.memo.pop((MEMO, job.key), None)
    if left is not None:
        return None if left == ALONE else left
    peers = [p for p in job.params.get(PEERS, ()) if p["key"] != job.key]
    if not peers or not _shares_batches(rt.adapter_dir(job.params.get("adapter"))):
        return None
    taken = _claim_ready(peers, rt)
    if not taken:
        return None
    start = time.perf_counter()
    members = [{"adapter": job.params.get("adapter")}, *(peer for peer, _ in taken)]
    try:
        results = evaluate([rt.adapter_dir(m.get("adapter")) for m in members])
    except TransferlabError:
        for peer, _ in taken:
            rt.memo[(MEMO, peer["key"])] = ALONE
        return None
    finally:
        for _, claim in taken:
            claims.release(claim)
    share = (time.perf_counter() - start) / len(members)
    for (peer, _), result in zip(taken, results[1:]):
        rt.memo[(MEMO, peer["key"])] = (result, share, len(members))
    return results[0], share, len(members)


def _claim_ready(peers: list[dict[str, Any]], rt: Runtime) -> list[tuple[dict[str, Any], Path]]:
    """The peers this process may score now, each with its claim: adapter made, evaluation missing,
    held by no other worker (claimed here until the pass is over)."""
    store = rt.store
    taken = []
    for peer in peers:
        adapter = peer.get("adapter")
        if (MEMO, peer["key"]) in rt.memo:  # scored by an earlier pass here, not written yet
            continue
        if (adapter and not store.has("adapter", adapter)) or store.has("evaluation", peer["key"]):
            continue
        if not _shares_batches(rt.adapter_dir(adapter)):
            continue
        claim = claims.take(store.artifacts / "claims", peer["key"])
        if claim is None:
            continue  # another worker's: never computed here
        if store.has("evaluation", peer["key"]):  # finished by its holder since we looked
            claims.release(claim)
            continue
        taken.append((peer, claim))
    return taken


def _shares_batches(directory: Path | None) -> bool:
    """Whether an adapter can share a mixed batch (plain LoRA; `adapters.applied_together`); the
    base model can. One that cannot (DoRA, another PEFT type, an unreadable config) runs alone."""
    if directory is None:
        return True
    try:
        config = json.loads((directory / "adapter_config.json").read_text())
    except (OSError, ValueError):
        return False
    return config.get("peft_type") == "LORA" and not config.get("use_dora")
