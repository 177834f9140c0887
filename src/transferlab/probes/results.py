"""The tidy probes table, in the run's results.sqlite beside the transfer results.

One row per (model, source_model, algorithm, layer, trained_on, evaluated_on, split, metric)
with value, n, ci_low, ci_high. `model` is the model whose activations were scored;
`source_model` the one whose activations trained the probe (the same model except for
cross-model probes). Skips (why a probe or a layer has no number) have their own table,
and the run's settings live in probes_run.json. The report reads only these.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from transferlab.engine.store import open_db, write_json
from transferlab.errors import TransferlabError

COLUMNS = ("model", "source_model", "algorithm", "layer", "trained_on", "evaluated_on", "split", "metric",
           "value", "n", "ci_low", "ci_high")
KEY = COLUMNS[:8]
SKIP_COLUMNS = ("model", "trained_on", "algorithm", "layer", "reason")
RUN_FILE = "probes_run.json"
TABLES = ("probe_results", "probe_cross_model")  # the study; probes carried between models (cross_model.py)


class ProbeResults:
    """Read and write the probes tables of one run directory."""

    def __init__(self, root: str | Path, create: bool = True):
        self.root = Path(root)
        self.db_path = self.root / "results.sqlite"
        if not create:  # read-only: the tables must be there, and nothing (not even a missing table) is written
            if not has_probe_results(self.root):
                raise TransferlabError(f"{self.root} holds no probe results: give the --out directory of `probes run`")
            return
        self.root.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            for table in TABLES:
                db.execute(f"""CREATE TABLE IF NOT EXISTS {table} (
                    model TEXT, source_model TEXT, algorithm TEXT, layer INTEGER, trained_on TEXT, evaluated_on TEXT,
                    split TEXT, metric TEXT, value REAL, n INTEGER, ci_low REAL, ci_high REAL,
                    PRIMARY KEY ({", ".join(KEY)}))""")
            db.execute("""CREATE TABLE IF NOT EXISTS probe_skips (
                model TEXT, trained_on TEXT, algorithm TEXT, layer INTEGER, reason TEXT)""")

    @classmethod
    def existing(cls, root: str | Path) -> ProbeResults:
        """The probes tables of a finished run, for read-only commands: never creates a directory."""
        return cls(root, create=False)

    def _db(self) -> Any:
        return open_db(self.db_path, self.root)

    def replace(self, model: str, source_model: str, rows: Iterable[tuple], skips: Iterable[tuple] = (),
                table: str = "probe_results") -> int:
        """Swap in all rows of one (model, source_model) evaluation in one transaction.

        Rows holding a NaN value are refused: a missing number must be a recorded skip.
        """
        rows = list(rows)
        for r in rows:
            if r[8] is None or (isinstance(r[8], float) and math.isnan(r[8])):
                raise TransferlabError(f"refusing a NaN result for {r[:8]}: record a skip instead")
        if table not in TABLES:
            raise ValueError(f"unknown probes table {table!r}")
        skip_model = model if table == "probe_results" else f"{model} <- {source_model} (cross-model)"
        with self._db() as db:
            db.execute(f"DELETE FROM {table} WHERE model = ? AND source_model = ?", (model, source_model))
            db.execute("DELETE FROM probe_skips WHERE model = ?", (skip_model,))
            db.executemany(f"INSERT OR REPLACE INTO {table} VALUES ({', '.join('?' * len(COLUMNS))})", rows)
            db.executemany("INSERT INTO probe_skips VALUES (?, ?, ?, ?, ?)", [(skip_model, *s) for s in skips])
        return len(rows)

    def frame(self, table: str = "probe_results", **where: Any) -> Any:
        """A probes table (optionally filtered by column = value) as a pandas DataFrame."""
        import pandas as pd

        if table not in TABLES:
            raise ValueError(f"unknown probes table {table!r}")
        clause = " AND ".join(f"{k} = ?" for k in where)
        query = f"SELECT {', '.join(COLUMNS)} FROM {table}" + (f" WHERE {clause}" if clause else "")
        with self._db() as db:
            if not _has_table(db, table):  # a run opened read-only, from before the table existed
                return pd.DataFrame(columns=list(COLUMNS))
            return pd.read_sql_query(query, db, params=list(where.values()))

    def skips(self) -> Any:
        import pandas as pd

        with self._db() as db:
            if not _has_table(db, "probe_skips"):
                return pd.DataFrame(columns=list(SKIP_COLUMNS))
            return pd.read_sql_query(f"SELECT {', '.join(SKIP_COLUMNS)} FROM probe_skips", db)

    # ---- run settings ---------------------------------------------------------------------------
    def read_run(self) -> dict[str, Any]:
        path = self.root / RUN_FILE
        if not path.exists():
            return {}
        try:
            run = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise TransferlabError(f"cannot read {path} ({err}): run the study again to rewrite it") from None
        if not isinstance(run, dict):
            raise TransferlabError(f"{path} is not a probe run's record (a JSON object): run the study again")
        return run

    def update_run(self, **fields: Any) -> None:
        """Merge fields into probes_run.json atomically (temp file + rename)."""
        data = self.read_run()
        data.update(fields)
        write_json(self.root / RUN_FILE, data, indent=1, sort_keys=True, default=str)


def result_rows(model: str, source_model: str, bank: Any, evaluations: list[Any], layers: list[int]) -> list[tuple]:
    """Tidy rows (see results.COLUMNS); NaN cells (skipped layers) are left out, their skip says why."""
    rows = []
    for ev in evaluations:
        n = ev.units
        for p in range(len(bank)):
            for li, layer in enumerate(layers):
                acc = float(ev.acc[p, li])
                if acc != acc:
                    continue
                base = (model, source_model, bank.algorithm[p], layer, bank.trained_on[p], ev.dataset)
                rows.append((*base, "validation", "acc", acc, n, float(ev.acc_ci[0][p, li]),
                             float(ev.acc_ci[1][p, li])))
                h = float(ev.hparams_acc[p, li])
                if h == h:
                    rows.append((*base, "hparams", "acc", h, None, None, None))
                auroc = float(ev.auroc[p, li])
                if auroc == auroc:
                    rows.append((*base, "validation", "auroc", auroc, n, None, None))
                if ev.recovered is not None:
                    assert ev.recovered_ci is not None and ev.corrected is not None and ev.corrected_ci is not None
                    rows.append((*base, "validation", "recovered", float(ev.recovered[p, li]), n,
                                 float(ev.recovered_ci[0][p, li]), float(ev.recovered_ci[1][p, li])))
                    rows.append((*base, "validation", "recovered_cc", float(ev.corrected[p, li]), n,
                                 float(ev.corrected_ci[0][p, li]), float(ev.corrected_ci[1][p, li])))
    return rows


def _has_table(db: Any, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def has_probe_results(root: Path) -> bool:
    """Whether `root` holds a probes table with rows (a damaged database is a one-line error)."""
    if not (root / "results.sqlite").is_file():
        return False
    with open_db(root / "results.sqlite", root) as db:
        found = db.execute("SELECT name FROM sqlite_master WHERE name = 'probe_results'").fetchone()
        return bool(found) and bool(db.execute("SELECT 1 FROM probe_results LIMIT 1").fetchone())
