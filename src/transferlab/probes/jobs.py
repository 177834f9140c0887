"""The probe study's job kinds: extract activations, fit a probe, score the bank, map between
models, carry probes across models.

Each handler rebuilds what it needs from its job's params alone (the dataset from its spec,
checked against the planned fingerprint; inputs from the store by key), so a job runs the
same in this process or on another worker. Consecutive jobs share what they can through the
runtime's memo: the datasets, and the last dataset's activations (so the fits of one dataset
share its converted rows and Gram matrix, as one batched fit would).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import torch

from transferlab.engine.jobs import Job, Runtime, Tick, register_job_kind
from transferlab.errors import TransferlabError
from transferlab.probes import activations, protocol
from transferlab.probes.conventions import DEFAULT
from transferlab.probes.cross_model import fit_ridge_maps, neutral_texts
from transferlab.probes.datasets import load_dataset
from transferlab.probes.protocol import Data, ProbeBank, Skip
from transferlab.probes.results import result_rows

for _name, _artifact in (("extract", "activations"), ("fit", "probes"), ("score", "probe-scores"),
                         ("map", "probe-maps"), ("cross", "probe-cross")):
    register_job_kind(_name, _artifact, f"transferlab.probes.jobs:run_{_name}")


# ---- inputs ---------------------------------------------------------------------------------------
def dataset(p: dict[str, Any], rt: Runtime) -> Any:
    """The dataset a job names, built once per runtime and checked against the plan's fingerprint."""
    spec = p["dataset"]
    memo_key = ("probe-dataset", json.dumps(spec, sort_keys=True))
    if memo_key not in rt.memo:
        if "neutral" in spec:
            rt.memo[memo_key] = neutral_texts(spec["neutral"])
        else:
            rt.memo[memo_key] = load_dataset(spec["name"], spec["limit"], spec["source"], spec["max_chars"])
    ds = rt.memo[memo_key]
    if ds.fingerprint() != p["fingerprint"]:
        raise TransferlabError(f"dataset {ds.name!r} is not the one the study was planned with (its data or "
                               "limits changed): run the study again to plan it anew")
    return ds


def stored_activations(rt: Runtime, key: str) -> np.ndarray:
    return np.load(rt.store.path("activations", key) / "activations.npy", mmap_mode="r")


def probe_data(p: dict[str, Any], rt: Runtime, key_field: str = "activations") -> Data:
    """One dataset's activations as protocol.Data, the last one kept for the next job."""
    key = p[key_field]
    last = rt.memo.get("probe-data")
    if last is None or last[0] != key:
        last = (key, Data.of(dataset(p, rt), stored_activations(rt, key)))
        rt.memo["probe-data"] = last
    return last[1]


def _write_rows(rt: Runtime, kind: str, key: str, meta: dict[str, Any], **tables: Any) -> None:
    with rt.store.writing(kind, key, meta) as out:
        for name, value in tables.items():
            (out / f"{name}.json").write_text(json.dumps(value))


# ---- jobs and handlers ---------------------------------------------------------------------------
def extract_job(model: Any, dataset: Any, spec: dict[str, Any], layers: list[int], config: Any) -> Job:
    """The job that extracts one dataset's activations on one model (`model`: a plan.ModelInfo)."""
    key = activations.activation_key(model.identity, dataset.fingerprint(), layers, config.position)
    params = {"model": model.name, "dataset": spec, "fingerprint": dataset.fingerprint(), "layers": layers,
              "position": config.position, "batch_size": config.batch_size}
    return Job("extract", key, params, label=f"activations {model.name} / {dataset.name}")


def run_extract(job: Job, rt: Runtime, tick: Tick) -> dict[str, Any]:
    """Every requested layer's residual stream of one dataset, in one batched pass."""
    p = job.params
    ds = dataset(p, rt)
    loaded = rt.model(p["model"], alone=True)
    key = activations.activation_key(loaded.identity, ds.fingerprint(), p["layers"], p["position"])
    if key != job.key:
        raise TransferlabError(f"model {p['model']!r} is not the one the study was planned with (identity "
                               f"{loaded.identity}): run the study again to plan it anew")
    done = [0]

    def progress(rows: int) -> None:
        done[0] += rows
        tick(done[0], len(ds.rows), "")

    acts, _, _ = activations.cached_activations(rt.store, loaded, ds, p["layers"], p["position"], p["batch_size"],
                                                progress=progress)
    return {"rows": acts.shape[1], "layers": acts.shape[0]}


def run_fit(job: Job, rt: Runtime, tick: Tick) -> dict[str, Any]:
    """One algorithm on one dataset's train split, every layer at once; a failure is a recorded skip."""
    p = job.params
    data = probe_data(p, rt)
    coef, intercept, valid, skips = protocol.fit_or_skip(data, p["algorithm"], p["params"], len(p["layers"]))
    with rt.store.writing("probes", job.key, {"dataset": data.name, "algorithm": p["algorithm"]}) as out:
        np.savez(out / "probe.npz", coef=coef, intercept=intercept, valid=valid)
        (out / "skips.json").write_text(json.dumps([dataclasses.asdict(s) for s in skips]))
    return {"layers fitted": int(np.asarray(valid).sum()), "skips": len(skips)}


def load_probe(store: Any, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Skip]]:
    with np.load(store.path("probes", key) / "probe.npz") as f:
        saved = json.loads((store.path("probes", key) / "skips.json").read_text())
        return f["coef"], f["intercept"], f["valid"], [Skip(**s) for s in saved]


def run_score(job: Job, rt: Runtime, tick: Tick) -> dict[str, Any]:
    """Every probe on every dataset (one matrix product each), with CIs and recovered accuracy."""
    p = job.params
    layers = p["layers"]
    data = [Data.of(dataset(d, rt), stored_activations(rt, d["activations"])) for d in p["datasets"]]
    bank, skips = ProbeBank(layers), []
    for name, algorithm, key in p["fits"]:
        coef, intercept, valid, saved = load_probe(rt.store, key)
        skips.extend(saved)
        if valid.any():
            bank.add(name, algorithm, coef, intercept, valid)
    evaluations = protocol.evaluate(bank, data, resamples=p["resamples"], protocol=p.get("protocol", DEFAULT))
    for ev in evaluations:
        if ev.note:
            skips.append(Skip(ev.dataset, "*", None, f"no recovered accuracy on {ev.dataset}: {ev.note}"))
    rows = result_rows(p["model"], p["model"], bank, evaluations, layers)
    best = {ev.dataset: {"algorithm": bank.algorithm[ev.best[0]], "layer": layers[ev.best[1]]}
            for ev in evaluations if ev.best is not None}
    table_skips = [(s.trained_on, s.algorithm, s.layer if s.layer is None else layers[s.layer], s.reason)
                   for s in skips]
    chance = {ev.dataset: ev.chance for ev in evaluations}  # the floor of each dataset's accuracy (figure r4)
    _write_rows(rt, "probe-scores", job.key, {"model": p["model"]}, rows=rows, skips=table_skips, best=best,
                chance=chance)
    return {"probes": len(bank), "rows": len(rows)}


def run_map(job: Job, rt: Runtime, tick: Tick) -> dict[str, Any]:
    """Ridge maps from the target model's residual stream into the source's, fitted on neutral texts."""
    p = job.params
    X = np.array(stored_activations(rt, p["target_neutral"]), dtype=np.float64)  # a writable copy
    Y = np.array(stored_activations(rt, p["source_neutral"]), dtype=np.float64)[p["source_index"]]
    A, mx, my = fit_ridge_maps(X, Y)
    with rt.store.writing("probe-maps", job.key, {"source": p["source_model"], "target": p["target_model"]}) as out:
        np.savez(out / "maps.npz", A=A.numpy(), mx=mx.numpy(), my=my.numpy())
    return {"layers": int(A.shape[0])}


def run_cross(job: Job, rt: Runtime, tick: Tick) -> dict[str, Any]:
    """Probes fitted on the source model's activations, carried to the target's and scored there."""
    p = job.params
    maps = None
    if p["map"]:
        with np.load(rt.store.path("probe-maps", p["map"]) / "maps.npz") as f:
            maps = tuple(torch.as_tensor(f[k]) for k in ("A", "mx", "my"))
    target, source, layers = p["target_model"], p["source_model"], p["target_layers"]
    rows, skips = [], []
    for entry in p["datasets"]:
        ds = dataset(entry, rt)
        src = Data.of(ds, stored_activations(rt, entry["source_activations"]))
        restricted = Data(ds.name, np.asarray(src.acts)[p["source_index"]], src.labels, src.groups,
                          src.answer_types, src.splits)
        bank = ProbeBank(layers)
        for algorithm, params in p["algorithms"].items():
            try:
                coef, intercept, valid, _ = protocol.fit_one(restricted, algorithm, params)
            except TransferlabError as err:
                skips.append((ds.name, algorithm, None, str(err)))
                continue
            if maps is not None:
                A, mx, my = maps
                w = torch.as_tensor(coef)
                coef_t = torch.einsum("lde,le->ld", A, w)
                intercept = (torch.as_tensor(intercept) + (my * w).sum(dim=1) - (mx * coef_t).sum(dim=1)).numpy()
                coef = coef_t.numpy()
            bank.add(ds.name, algorithm, coef, intercept, valid)
        if not len(bank):
            continue
        tgt = Data.of(ds, stored_activations(rt, entry["target_activations"]))
        for ev in protocol.evaluate(bank, [tgt], resamples=p["resamples"], protocol=p.get("protocol", DEFAULT)):
            for k in range(len(bank)):
                for li, layer in enumerate(layers):
                    acc = float(ev.acc[k, li])
                    if acc != acc:
                        continue
                    cell = (target, source, bank.algorithm[k], layer, ds.name, ds.name)
                    rows.append((*cell, "validation", "acc", acc, ev.units, float(ev.acc_ci[0][k, li]),
                                 float(ev.acc_ci[1][k, li])))
                    rows.append((*cell, "hparams", "acc", float(ev.hparams_acc[k, li]), None, None, None))
    _write_rows(rt, "probe-cross", job.key, {"source": source, "target": target}, rows=rows, skips=skips)
    return {"cells": len(rows) // 2}
