"""Keeping a store honest between runs: orphan temporaries removed, stale artifacts found.

A killed job leaves its half-written artifact in a temporary directory (`store.temp_name`);
`clean_orphans` removes those whose writer is gone at the start of every run. An artifact
also remembers the content of the artifacts it was made from (its *lineage*): when an input
is rebuilt (it was corrupted, or deleted) and comes out different, everything made from the
old one is stale and runs again; when it comes out the same, nothing else is redone.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import time
from pathlib import Path

from transferlab.engine import claims
from transferlab.engine.store import MANIFEST, Store

LINEAGE = ".inputs.json"  # beside an artifact's directory: <kind>/<key>.inputs.json


def clean_orphans(store: Store) -> list[Path]:
    """Remove temporary artifact directories and files whose writer is gone; returns them.

    A temporary is an orphan when the process named in it (this host) no longer runs, or,
    for one written elsewhere or by an older version, when no live worker claims its job.
    """
    if not store.artifacts.is_dir():
        return []
    removed = []
    for kind_dir in (d for d in store.artifacts.iterdir() if d.is_dir() and d.name != "claims"):
        for tmp in kind_dir.glob(".*.tmp"):
            if _writer_alive(tmp.name, store.artifacts / "claims"):
                continue
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
            removed.append(tmp)
    _clean_resume_dirs(store)
    return removed


def _clean_resume_dirs(store: Store, stale_seconds: float = 600.0) -> None:
    """Drop the checkpoints and chunks of jobs whose artifact is stored (a kill between storing it
    and removing them leaves them), and half-written files in the others that no one finished."""
    for job_dir in (store.artifacts / "resume").glob("*"):
        if any(store.path(kind, job_dir.name).is_dir() for kind in ("adapter", "evaluation")):
            store.drop_resume(job_dir.name)
            continue
        for tmp in job_dir.glob(".*.tmp"):
            try:
                if time.time() - tmp.stat().st_mtime > stale_seconds:
                    tmp.unlink()
            except OSError:
                pass


def _writer_alive(name: str, claim_dir: Path) -> bool:
    parts = name[1:-len(".tmp")].split(".")  # key, [host-pid,] random suffix; keys are hex, hosts may hold dots
    key, writer = parts[0], ".".join(parts[1:-1])
    host, _, pid = writer.rpartition("-")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    claim = claim_dir / key
    return claim.exists() and claims.holder_alive(claim)


def digest(store: Store, kind: str, key: str) -> str | None:
    """The content of an artifact in one hash (of its manifest's file digests); None if absent."""
    try:
        files = json.loads((store.path(kind, key) / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError):
        return None
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


def _lineage_path(store: Store, kind: str, key: str) -> Path:
    return store.path(kind, key).with_name(key + LINEAGE)


def record_lineage(store: Store, kind: str, key: str, inputs: dict[str, str]) -> None:
    """Remember what the artifact `key` was made from: {input key: its artifact kind}."""
    made_from = {dep: [dep_kind, digest(store, dep_kind, dep)] for dep, dep_kind in inputs.items()}
    made_from = {dep: v for dep, v in made_from.items() if v[1] is not None}
    if made_from:
        path = _lineage_path(store, kind, key)
        tmp = path.with_name(f".{key}.{socket.gethostname()}-{os.getpid()}.lineage.tmp")
        try:
            tmp.write_text(json.dumps(made_from, sort_keys=True))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def changed_inputs(store: Store, kind: str, key: str) -> tuple[list[str], list[str]]:
    """(inputs that now differ from what the artifact was made from, inputs now missing)."""
    try:
        made_from = json.loads(_lineage_path(store, kind, key).read_text())
    except (OSError, ValueError):
        return [], []
    changed, missing = [], []
    for dep, (dep_kind, was) in made_from.items():
        now = digest(store, dep_kind, dep) if store.has(dep_kind, dep) else None
        if now is None:
            missing.append(dep)
        elif now != was:
            changed.append(dep)
    return changed, missing


def discard(store: Store, kind: str, key: str) -> None:
    """Remove a stale artifact and its lineage, so its job runs again."""
    shutil.rmtree(store.path(kind, key), ignore_errors=True)
    _lineage_path(store, kind, key).unlink(missing_ok=True)
