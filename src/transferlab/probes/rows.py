"""The contrastive row, the ProbeDataset that holds a dataset's rows, and their splits.

A row is one statement the model reads; its label says whether it is true. Rows of one
question (or one contrast pair) share a group, and `answer_type` names what was filled
in (e.g. "positive" / "negative"), so PCA can centre it away. Splits are hashes of the
group, never of the order: train (fit probes), hparams (choose the best probe for a
dataset) and validation (every reported number).

Kept apart from `datasets` (which families exist and how to build one by name) and `hub`
(the hub-format families) so both kinds of family build the same rows without importing
each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from transferlab.errors import TransferlabError
from transferlab.tasks.base import stable_hash

SPLITS = ("train", "hparams", "validation")
FRACTIONS = (0.5, 0.2, 0.3)  # hub datasets; offline tasks keep their own (0.5, 0.1, 0.4) splits
TASK_SPLIT = {"train": "train", "dev": "hparams", "test": "validation"}
VERSION = 1  # bump when a template or a row rule changes: part of every activation key


@dataclass(frozen=True)
class Row:
    text: str
    label: int  # 1 = true
    group: str
    answer_type: str
    split: str


@dataclass(frozen=True)
class ProbeDataset:
    """The rows of one dataset, in a fixed order (split, then group hash)."""

    name: str
    family: str
    rows: tuple[Row, ...]

    def __post_init__(self) -> None:
        if not self.rows:
            raise TransferlabError(f"probe dataset {self.name!r} has no rows")
        labels = {r.label for r in self.rows}
        if labels != {0, 1}:
            which = "true" if 1 in labels else "false"
            raise TransferlabError(f"probe dataset {self.name!r} has one class only (every row is {which}): "
                                   "a probe needs true and false statements")

    @property
    def texts(self) -> list[str]:
        return [r.text for r in self.rows]

    @property
    def labels(self) -> np.ndarray:
        return np.array([r.label for r in self.rows], dtype=np.int64)

    @property
    def groups(self) -> np.ndarray:
        return np.array([r.group for r in self.rows])

    @property
    def answer_types(self) -> np.ndarray:
        return np.array([r.answer_type for r in self.rows])

    @property
    def splits(self) -> np.ndarray:
        return np.array([r.split for r in self.rows])

    def indices(self, split: str) -> np.ndarray:
        return np.nonzero(self.splits == split)[0]

    def grouped(self, split: str = "validation") -> bool:
        """True when every group of the split has exactly one true row and a false one (question accuracy)."""
        per_group: dict[str, list[int]] = {}
        for r in self.rows:
            if r.split == split:
                per_group.setdefault(r.group, []).append(r.label)
        return bool(per_group) and all(sum(v) == 1 and len(v) >= 2 for v in per_group.values())

    def fingerprint(self) -> str:
        return stable_hash(VERSION, self.name, [(r.text, r.label, r.group, r.answer_type, r.split) for r in self.rows])

    def counts(self) -> dict[str, int]:
        return {s: int((self.splits == s).sum()) for s in SPLITS}


def cap_rows(rows: list[Row], limit: int | None, max_chars: int | None = None) -> list[Row]:
    """At most `limit` groups in train and validation and half as many in hparams, chosen by group hash.

    Ordered by split then by group hash, so a smaller limit keeps a subset of a larger one.
    `max_chars` first drops every group holding a longer text (long prompts dominate the
    cost of extraction on a CPU).
    """
    by_split: dict[str, dict[str, list[Row]]] = {s: {} for s in SPLITS}
    too_long = {r.group for r in rows if max_chars and len(r.text) > max_chars} if max_chars else set()
    for r in rows:
        if r.group not in too_long:
            by_split[r.split].setdefault(r.group, []).append(r)
    out: list[Row] = []
    for split in SPLITS:
        groups = sorted(by_split[split], key=lambda g: stable_hash("probe-order", g))
        if limit:
            groups = groups[: max(1, limit // 2) if split == "hparams" else limit]
        for g in groups:
            out.extend(by_split[split][g])
    return out
