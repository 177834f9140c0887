"""The store: content-addressed artifacts on disk and the tidy results table in SQLite.

An artifact is a directory named by the hash of everything that determines it. It is
written into a temporary directory and renamed into place, with a manifest of the
sha256 of every file, so a crash never leaves half an artifact and a corrupted one is
detected and rebuilt instead of used. Results are committed one job at a time.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transferlab.errors import TransferlabError

MANIFEST = "MANIFEST.json"
RESULT_COLUMNS = ("model", "learner", "trained_on", "evaluated_on", "condition", "seed", "metric",
                  "value", "n", "ci_low", "ci_high")
RESULT_KEY = RESULT_COLUMNS[:7]
NONE = "-"  # the trained_on / learner value of rows with no training (the baseline)
POOLED = -1  # the seed of a row pooled over seeds (hierarchical bootstrap), beside the per-seed rows


@dataclass(frozen=True)
class ResultRow:
    """One row of the tidy results table (DESIGN.md): a metric of one cell."""

    model: str
    learner: str
    trained_on: str
    evaluated_on: str
    condition: str
    seed: int
    metric: str
    value: float
    n: int
    ci_low: float | None = None
    ci_high: float | None = None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def check_writable(root: Path, need_bytes: int = 50 << 20) -> None:
    """Fail before any work starts if the output directory cannot take the run."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-test-{uuid.uuid4().hex}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise TransferlabError(f"cannot write to output directory {root}: {err.strerror}; choose another with --out") from None
    free = shutil.disk_usage(root).free
    if free < need_bytes:
        raise TransferlabError(f"output directory {root} has {free >> 20} MiB free, the run needs about "
                               f"{need_bytes >> 20} MiB: free space or choose another directory")


def write_json(path: Path, value: Any, **dumps: Any) -> Path:
    """Write JSON atomically (temp file + rename): a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(value, **dumps))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a full disk leaves nothing half-written behind
    return path


def _is_corruption(err: sqlite3.DatabaseError) -> bool:
    """A damaged database file, as opposed to a locked one or a bad statement."""
    return type(err) is sqlite3.DatabaseError or "malformed" in str(err) or "not a database" in str(err)


def _is_foreign(err: Exception) -> bool:
    """A database whose tables are not the ones transferlab writes (another tool's file, an old layout)."""
    text = str(err)
    return any(p in text for p in ("no such column", "no such table", "has no column named", "table results has"))


@contextmanager
def open_db(db_path: Path, root: Path) -> Iterator[sqlite3.Connection]:
    """A connection to a run's results.sqlite, in one transaction (committed on success); a damaged
    file, or one whose tables are not transferlab's, is a one-line error naming `results rebuild`."""
    try:
        db = sqlite3.connect(db_path, timeout=60)
    except sqlite3.Error as err:
        raise TransferlabError(f"cannot open {db_path}: {err}") from None
    try:
        with db:  # one transaction: committed on success, rolled back on error
            yield db
    except sqlite3.DatabaseError as err:
        if _is_corruption(err):
            raise TransferlabError(f"{db_path} is corrupted ({err}): recreate it from the stored artifacts "
                                   f"with `transferlab results rebuild {root}`") from None
        if isinstance(err, sqlite3.OperationalError) and "unable to open" in str(err):
            raise TransferlabError(f"cannot open {db_path}: {err}") from None
        if not _is_foreign(err):
            raise
        raise _foreign(db_path, root, err) from None
    except Exception as err:
        if type(err).__module__.startswith("pandas") and _is_foreign(err):  # pandas.read_sql's wrapper
            raise _foreign(db_path, root, err) from None
        raise
    finally:
        db.close()


def _foreign(db_path: Path, root: Path, err: Exception) -> TransferlabError:
    detail = str(err).rsplit(":", 1)[-1].strip()
    return TransferlabError(f"{db_path} is not a transferlab results database ({detail}): recreate it from the "
                            f"stored artifacts with `transferlab results rebuild {root}`")


SCHEMA = {"results": RESULT_COLUMNS, "jobs": ("key", "kind", "status", "detail", "seconds")}


def _check_schema(db: sqlite3.Connection, db_path: Path, root: Path, existing: bool) -> None:
    """Refuse, before anything is written to it, a database whose tables are not transferlab's:
    another tool's file, or (for a read-only command) one with no results table at all."""
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if existing and "results" not in tables:
        raise TransferlabError(f"{db_path} holds no results table: give the output directory of a run, or "
                               f"recreate it from the stored artifacts with `transferlab results rebuild {root}`")
    for table, columns in SCHEMA.items():
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")} if table in tables else set(columns)
        missing = [c for c in columns if c not in have]
        if missing:
            raise TransferlabError(f"{db_path} is not a transferlab results database (its {table} table lacks "
                                   f"{', '.join(missing)}): recreate it from the stored artifacts with "
                                   f"`transferlab results rebuild {root}`")


def temp_name(key: str) -> str:
    """The name of an artifact being written: host and pid say whether its writer still lives."""
    return f".{key}.{socket.gethostname()}-{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"


class Store:
    """Artifacts under `root/artifacts/<kind>/<key>/` and results in `root/results.sqlite`.

    `artifacts` puts the content-addressed artifacts elsewhere, e.g. one directory shared
    by several runs: an adapter or evaluation another spec already produced is reused.
    """

    def __init__(self, root: str | Path, artifacts: str | Path | None = None, create: bool = True):
        self.root = Path(root)
        self.db_path = self.root / "results.sqlite"
        if not create and not self.db_path.is_file():
            raise TransferlabError(f"{self.root} holds no results.sqlite: give the output directory of a run")
        self.root.mkdir(parents=True, exist_ok=True)
        self.artifacts = Path(artifacts) if artifacts else self.root / "artifacts"
        self._verified: dict[Path, tuple] = {}  # artifact -> its files' (size, mtime) when last hashed intact
        self.notices: list[str] = []  # what the store found and healed (corrupt artifacts), for the run to print
        with self._db() as db:
            _check_schema(db, self.db_path, self.root, existing=not create)
            db.execute(f"""CREATE TABLE IF NOT EXISTS results (
                model TEXT, learner TEXT, trained_on TEXT, evaluated_on TEXT, condition TEXT, seed INTEGER,
                metric TEXT, value REAL, n INTEGER, ci_low REAL, ci_high REAL, updated REAL,
                PRIMARY KEY ({", ".join(RESULT_KEY)}))""")
            db.execute("""CREATE TABLE IF NOT EXISTS jobs (
                key TEXT PRIMARY KEY, kind TEXT, status TEXT, detail TEXT, seconds REAL, updated REAL)""")
            # What the analyses need besides the results: each adapter's nominal label, each
            # learner's method (SL / RL), and the similarity of every pair of tasks.
            db.execute("CREATE TABLE IF NOT EXISTS labels (trained_on TEXT PRIMARY KEY, label TEXT)")
            db.execute("CREATE TABLE IF NOT EXISTS learners (learner TEXT PRIMARY KEY, method TEXT)")
            db.execute("""CREATE TABLE IF NOT EXISTS similarity (
                task_a TEXT, task_b TEXT, kind TEXT, similarity REAL, PRIMARY KEY (task_a, task_b, kind))""")

    @classmethod
    def existing(cls, root: str | Path) -> Store:
        """The store of a finished or running run, for read-only commands: never creates one."""
        return cls(root, create=False)

    def _db(self) -> Any:
        return open_db(self.db_path, self.root)

    # ---- artifacts -------------------------------------------------------------------
    def path(self, kind: str, key: str) -> Path:
        return self.artifacts / kind / key

    def resume_dir(self, key: str) -> Path:
        """Where a job keeps its checkpoints until its artifact is stored (learn/resume.py)."""
        return self.artifacts / "resume" / key

    def drop_resume(self, key: str) -> None:
        """Remove a job's checkpoints or chunks: its artifact is stored."""
        shutil.rmtree(self.resume_dir(key), ignore_errors=True)

    def has(self, kind: str, key: str) -> bool:
        """True if the artifact exists and every file matches its manifest; a corrupt one is removed."""
        where = self.path(kind, key)
        manifest = where / MANIFEST
        if not manifest.exists():
            return False
        try:
            files = json.loads(manifest.read_text())["files"]
            stats = tuple((name, s.st_size, s.st_mtime_ns) for name in files for s in [(where / name).stat()])
            # Hash once per process: a job's inputs are checked by every job that needs them.
            intact = self._verified.get(where) == stats or all(
                _sha256(where / name) == digest for name, digest in files.items())
        except (ValueError, KeyError, OSError):
            intact, stats = False, ()
        if intact:
            self._verified[where] = stats
        else:
            self._verified.pop(where, None)
            self.notices.append(f"{kind} artifact {key} was corrupted (its files do not match {MANIFEST}): "
                                "removed, its job runs again")
            shutil.rmtree(where, ignore_errors=True)
        return intact

    @contextmanager
    def writing(self, kind: str, key: str, meta: dict[str, Any] | None = None) -> Iterator[Path]:
        """A temporary directory that becomes the artifact only if the block finishes."""
        final = self.path(kind, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / temp_name(key)
        tmp.mkdir()
        try:
            yield tmp
            files = {str(p.relative_to(tmp)): _sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
            (tmp / MANIFEST).write_text(json.dumps({"kind": kind, "key": key, "files": files, "meta": meta or {},
                                                    "created": time.time()}, indent=1, sort_keys=True))
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def read_json(self, kind: str, key: str, name: str) -> Any:
        return json.loads((self.path(kind, key) / name).read_text())

    # ---- results ---------------------------------------------------------------------
    def add_results(self, rows: Iterable[ResultRow]) -> int:
        """Insert or replace rows (keyed by everything but the numbers), in one transaction."""
        now = time.time()
        values = [(*(getattr(r, c) for c in RESULT_COLUMNS), now) for r in rows]
        with self._db() as db:
            db.executemany(f"INSERT OR REPLACE INTO results ({', '.join(RESULT_COLUMNS)}, updated) "
                           f"VALUES ({', '.join('?' * (len(RESULT_COLUMNS) + 1))})", values)
        return len(values)

    def results(self) -> Any:
        """The tidy results table as a pandas DataFrame."""
        import pandas as pd

        with self._db() as db:
            frame = pd.read_sql_query(f"SELECT {', '.join(RESULT_COLUMNS)} FROM results "
                                      "ORDER BY model, condition, trained_on, evaluated_on, seed, metric", db)
        return frame

    # ---- what the analyses read besides the results ------------------------------------
    def set_labels(self, labels: dict[str, str]) -> None:
        with self._db() as db:
            db.executemany("INSERT OR REPLACE INTO labels VALUES (?, ?)", labels.items())

    def labels(self) -> dict[str, str]:
        """trained_on -> the nominal label its adapter carries."""
        with self._db() as db:
            return dict(db.execute("SELECT trained_on, label FROM labels").fetchall())

    def set_learner_methods(self, methods: dict[str, str]) -> None:
        with self._db() as db:
            db.executemany("INSERT OR REPLACE INTO learners VALUES (?, ?)", methods.items())

    def learner_methods(self) -> dict[str, str]:
        """learner name -> 'sl' or 'rl'."""
        with self._db() as db:
            return dict(db.execute("SELECT learner, method FROM learners").fetchall())

    def add_similarity(self, frame: Any) -> None:
        """Rows of (task_a, task_b, kind, similarity), e.g. from `transfer.similarity.similarity_matrix`."""
        rows = [(r.task_a, r.task_b, r.kind, float(r.similarity)) for r in frame.itertuples()]
        with self._db() as db:
            db.executemany("INSERT OR REPLACE INTO similarity VALUES (?, ?, ?, ?)", rows)

    def similarity(self) -> Any:
        import pandas as pd

        with self._db() as db:
            return pd.read_sql_query("SELECT task_a, task_b, kind, similarity FROM similarity "
                                     "ORDER BY kind, task_a, task_b", db)

    # ---- job records -----------------------------------------------------------------
    def record_job(self, key: str, kind: str, status: str, detail: str = "", seconds: float = 0.0) -> None:
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?, ?, ?)",
                       (key, kind, status, detail, seconds, time.time()))

    def job_status(self, key: str) -> str | None:
        with self._db() as db:
            row = db.execute("SELECT status FROM jobs WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def jobs(self) -> list[dict[str, Any]]:
        with self._db() as db:
            rows = db.execute("SELECT key, kind, status, detail, seconds FROM jobs ORDER BY updated").fetchall()
        return [dict(zip(("key", "kind", "status", "detail", "seconds"), r)) for r in rows]


def export_results(store: Store, path: Path) -> int:
    """Write the results table as CSV or Parquet (by extension); returns the row count."""
    return write_table(store.results(), path)


def write_table(frame: Any, path: Path) -> int:
    """Write a frame as CSV or Parquet (by extension), atomically; returns the row count."""
    if path.suffix not in (".parquet", ".csv"):
        raise TransferlabError(f"cannot export to {path.name}: use a .csv or .parquet file name")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if path.suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
        os.replace(tmp, path)
    except OSError as err:
        raise TransferlabError(f"cannot write {path}: {err.strerror or err}; free space or choose another path") from None
    finally:
        tmp.unlink(missing_ok=True)
    return len(frame)


def import_results(store: Store, path: Path) -> int:
    """Read a tidy CSV/Parquet made by any tool into the results table; returns the row count.

    Every row is checked before any is written (`read_results`), so a bad row imports nothing.
    """
    return store.add_results(read_results(path))


def read_results(path: Path) -> list[ResultRow]:
    """The rows of a tidy CSV/Parquet table, checked: the columns first, then each row's
    key (non-blank names, an integer seed), value (finite, or blank for an undefined one),
    n (an integer) and CI (finite or blank), and no two rows with the same key."""
    from transferlab.engine.import_checks import integer, label, number, read_records, unique

    if not path.exists():
        raise TransferlabError(f"no such file: {path}")
    columns, records = read_records(path)
    missing = [c for c in RESULT_COLUMNS if c not in columns and c not in ("ci_low", "ci_high")]
    if missing:
        raise TransferlabError(f"{path.name} lacks the columns {', '.join(missing)}: a tidy results table has "
                               f"{', '.join(RESULT_COLUMNS)}")
    rows, keys = [], []
    for line, record in records:
        where = f"{path.name} row {line}"
        names = {c: label(record.get(c), c, where) for c in ("model", "learner", "trained_on", "evaluated_on",
                                                              "condition", "metric")}
        row = ResultRow(**names, seed=integer(record.get("seed"), "seed", where),
                        value=_missing_as_nan(number(record.get("value"), "value", where, missing_ok=True)),
                        n=integer(record.get("n"), "n", where),
                        ci_low=number(record.get("ci_low"), "ci_low", where, missing_ok=True),
                        ci_high=number(record.get("ci_high"), "ci_high", where, missing_ok=True))
        rows.append(row)
        keys.append((tuple(getattr(row, c) for c in RESULT_KEY), f"row {line}"))
    unique(keys, "key", path.name)
    return rows


def _missing_as_nan(value: float | None) -> float:
    return float("nan") if value is None else value
