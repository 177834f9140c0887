"""Learning curves in the store: the `curves` table of `results.sqlite`, beside the results.

A train job with `eval_every > 0` keeps its curve in the adapter's `training.json`
(`learn/curve.py` says what a point holds). After the jobs, the driver copies the curves of
a plan's adapters into this table with `record_curves`, reused adapters included, so a run
sharing `artifacts:` with another has the curves of every adapter it uses; the report reads
them back with `read_curves`, without touching an artifact. One row per
(model, learner, trained_on, seed, step); `trained_on` is spelled as the results table
spells it (`A`, `A>B` for sequential, `A+B` for joint training).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from transferlab.engine.jobs import Job
from transferlab.engine.store import MANIFEST, NONE, Store

CURVE_KEY = ("model", "learner", "trained_on", "seed", "step")
CURVE_VALUES = ("tokens_seen", "train_loss", "train_reward", "dev_loss", "metric", "dev_score", "dev_ci_low",
                "dev_ci_high", "dev_change", "dev_change_low", "dev_change_high", "n")
CURVE_COLUMNS = CURVE_KEY + CURVE_VALUES


@contextmanager
def _db(store: Store) -> Iterator[sqlite3.Connection]:
    """The store's own connection (one transaction, its corruption message), with the table made."""
    with store._db() as db:
        db.execute(f"""CREATE TABLE IF NOT EXISTS curves (
            model TEXT, learner TEXT, trained_on TEXT, seed INTEGER, step INTEGER, tokens_seen INTEGER,
            train_loss REAL, train_reward REAL, dev_loss REAL, metric TEXT, dev_score REAL, dev_ci_low REAL,
            dev_ci_high REAL, dev_change REAL, dev_change_low REAL, dev_change_high REAL, n INTEGER,
            PRIMARY KEY ({", ".join(CURVE_KEY)}))""")
        yield db


def trained_on_of(store: Store, params: dict[str, Any]) -> str:
    """What a train job's adapter was trained on, as the results table names it."""
    task = params["task"]
    if params.get("joint_with"):
        return "+".join([*params["joint_with"], task])
    if first := params.get("init_adapter"):
        try:
            first = json.loads((store.path("adapter", first) / MANIFEST).read_text())["meta"]["task"]
        except (OSError, ValueError, KeyError, TypeError):
            pass  # the first adapter is gone: name it by its key
        return f"{first}>{task}"
    return task


def curve_rows(store: Store, job: Job) -> list[tuple]:
    """The table rows of one train job's curve; none when its adapter holds no curve."""
    path = store.path("adapter", job.key) / "training.json"
    if job.kind != "train" or not store.has("adapter", job.key) or not path.exists():
        return []
    curve = json.loads(path.read_text()).get("curve") or {}
    p = job.params
    key = (p["model"], p.get("learner") or NONE, trained_on_of(store, p), int(p["train"].get("seed", 0)))
    return [(*key, point["step"], *(curve["metric"] if c == "metric" else point.get(c) for c in CURVE_VALUES))
            for point in curve.get("points", [])]


def record_curves(store: Store, jobs: Iterable[Job]) -> int:
    """Copy the curves of these jobs' adapters into the table; returns the row count."""
    rows = [row for job in jobs for row in curve_rows(store, job)]
    with _db(store) as db:
        db.executemany(f"INSERT OR REPLACE INTO curves ({', '.join(CURVE_COLUMNS)}) "
                       f"VALUES ({', '.join('?' * len(CURVE_COLUMNS))})", rows)
    return len(rows)


def read_curves(store: Store) -> Any:
    """The curves table as a pandas DataFrame (empty, with its columns, when no curve was recorded)."""
    import pandas as pd

    with _db(store) as db:
        return pd.read_sql_query(f"SELECT {', '.join(CURVE_COLUMNS)} FROM curves "
                                 "ORDER BY model, learner, trained_on, seed, step", db)
