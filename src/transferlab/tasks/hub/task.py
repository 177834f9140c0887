"""`HubTask`: a built-in task whose data is a standard hub dataset at its full size.

The task's splits are the dataset's own standard splits, not hash splits: each `HubSplit`
says which hub split fills train, dev or test (GSM8K's 1,319 test questions are the test
split, all of them). Where a dataset has no validation split apart from the one it is
tested on, dev is carved from train by a hash of each example (`dev_fraction`), so it never
moves when other rows change. Getting a task reads nothing; its rows load on first use.

A hub task is always named `hub-<name>`, and `offline_twin` names the offline task (a
package's subset) it is the full-size version of, so the two can never be confused: the
results carry the task's name, and its summary the dataset id, config and revision.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from transferlab.errors import TransferlabError
from transferlab.tasks.base import SPLITS, Example, Task, UnknownSplit, split_of, stable_hash
from transferlab.tasks.hub import source as hub
from transferlab.tasks.hub.source import HubSplit

PREFIX = "hub-"
DEV_FRACTION = 0.05  # of train, when no hub split is kept apart for validation


class HubTask(Task):
    """A task read from hub splits; subclasses turn one row into an Example (`example`).

    Attributes (the interface dry runs and `tasks list` read, set without touching data):
    `hub_id`, `hub_config` (None when the task reads several configs, listed in
    `hub_configs`), `split_sizes` (task split -> published rows of the hub splits filling
    it), `offline_twin`, `sources`; `availability()` says whether the data is here.
    """

    version = 1
    num_fewshot = 0

    def __init__(self, name: str, *, sources: tuple[HubSplit, ...], description: str, domain: str,
                 offline_twin: str | None = None, dev_fraction: float = DEV_FRACTION):
        if not name.startswith(PREFIX):
            raise TransferlabError(f"hub task {name!r}: hub task names start with {PREFIX!r}")
        self.name = name
        self.sources = sources
        self.description = description
        self.domain = domain
        self.offline_twin = offline_twin
        self.dev_fraction = dev_fraction
        primary = [s for s in sources if s.role == "test"] or list(sources)
        self.hub_id = primary[0].hub_id
        self.hub_configs = tuple(dict.fromkeys(s.config for s in sources if s.hub_id == self.hub_id))
        self.hub_config = self.hub_configs[0] if len(self.hub_configs) == 1 else None
        sizes: dict[str, int] = {}
        for s in sources:
            sizes[s.role] = sizes.get(s.role, 0) + s.size
        self.split_sizes = {role: sizes[role] for role in SPLITS if role in sizes}
        self.revisions_: dict[str, str | None] = {}

    # ---- the interface read without data ------------------------------------------------
    def availability(self) -> str:
        """"cached" or "download: <command>"; no network, no data read."""
        return hub.availability(self.sources)

    def carves_dev(self) -> bool:
        return not any(s.role == "dev" for s in self.sources) and any(s.role == "train" for s in self.sources)

    # ---- rows -> examples -----------------------------------------------------------------
    def example(self, row: Mapping[str, Any], source: HubSplit) -> Example:
        """One row as an Example; raise KeyError/ValueError/TypeError on a row it cannot read."""
        raise NotImplementedError

    def row_id(self, row: Mapping[str, Any], source: HubSplit) -> str:
        """What names a row within its split: the dataset's own id where it has one."""
        return stable_hash(self.name, {k: row[k] for k in source.columns})

    def load(self) -> list[Example]:
        examples: list[Example] = []
        seen: Counter[str] = Counter()
        for source in self.sources:
            rows, revision = hub.read(self.name, source)
            self.revisions_[source.hub_id] = revision
            if not rows:
                raise hub.HubDataError(f"{self.name}: the dataset {source.where()} has no rows: {hub.SHAPE_FIX}")
            for index, row in enumerate(rows):
                try:
                    e = self.example(row, source)
                    rid = f"{source.config or 'default'}/{source.split}/{self.row_id(row, source)}"
                except (KeyError, ValueError, TypeError, IndexError, AttributeError, TransferlabError) as err:
                    raise hub.bad_row(self.name, source, index, err) from None
                seen[rid] += 1
                uid = rid if seen[rid] == 1 else f"{rid}#{seen[rid]}"
                role = source.role
                if role == "train" and self.carves_dev() and split_of(uid, (1 - self.dev_fraction,
                                                                            self.dev_fraction, 0.0)) == "dev":
                    role = "dev"
                examples.append(Example(uid=uid, prompt=e.prompt, target=e.target, choices=e.choices,
                                        answer=e.answer, meta={**e.meta, "split": role, "hub_split": source.split}))
        return examples

    def examples(self, split: str) -> list[Example]:
        """The examples of one task split (the hub's own split), ordered by uid hash."""
        if split not in SPLITS:
            raise UnknownSplit(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
        chosen = [e for e in self.all_examples() if e.meta["split"] == split]
        return sorted(chosen, key=lambda e: stable_hash("order", e.uid))

    def fingerprint(self) -> str:
        splits = stable_hash([(e.uid, e.meta["split"]) for e in self.all_examples()])
        where = [(s.role, s.hub_id, s.config, s.split) for s in self.sources]
        return stable_hash(super().fingerprint(), splits, where, self.dev_fraction)

    def summary(self) -> dict[str, Any]:
        """The task's summary, naming the hub data it ran on (id, configs, splits, revision)."""
        out = super().summary()
        out["data"] = {
            "source": "hub", "hub_id": self.hub_id, "configs": list(self.hub_configs),
            "splits": {role: [s.where() for s in self.sources if s.role == role] for role in self.split_sizes},
            "published_sizes": self.split_sizes,
            "revisions": self.revisions_, "offline_twin": self.offline_twin,
            "dev": f"{self.dev_fraction:.0%} of train, by hash" if self.carves_dev() else None,
        }
        return out


def splits(hub_id: str, config: str | None, columns: tuple[str, ...], **roles: tuple[str, int]) -> tuple[HubSplit, ...]:
    """HubSplits of one dataset config: `train=("train", 7473), test=("test", 1319)`."""
    return tuple(HubSplit(role, hub_id, config, split, size, columns) for role, (split, size) in roles.items())
