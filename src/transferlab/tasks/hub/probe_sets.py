"""The hub datasets of seed 003's probe study (DLK and RepE families, and TruthfulQA), by hub name.

The probe study reads one split of each (its `split`) and splits its rows by hash itself;
`hub-<name>` always means this split of this hub dataset at full size (a local copy goes
under the plain name with `--source NAME=PATH`). Each entry carries what a dry run needs
without data: hub id, config, the published sizes of the dataset's splits, and
`availability()`. `read()` loads the rows through the same cache-aware loader as the hub
tasks, with the same one-line errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from transferlab.tasks.hub import source as hub
from transferlab.tasks.hub.source import HubSplit


@dataclass(frozen=True)
class HubDataset:
    """One probe dataset: `base` is the probe study's own name for its templates (imdb, ...)."""

    name: str
    base: str
    family: str  # dlk | repe
    hub_id: str
    hub_config: str | None
    split: str  # the split the probe study reads
    split_sizes: dict[str, int] = field(compare=False)  # published rows of each split
    columns: tuple[str, ...] = field(default=(), compare=False)
    offline_twin: str | None = None  # no offline package carries these datasets

    @property
    def source(self) -> HubSplit:
        return HubSplit("test", self.hub_id, self.hub_config, self.split, self.split_sizes[self.split], self.columns)

    def availability(self) -> str:
        """"cached" or "download: <command>"; no network, no data read."""
        return hub.availability([self.source])

    def read(self) -> list[dict[str, Any]]:
        return hub.read(self.name, self.source)[0]


def _entry(base: str, family: str, hub_id: str, config: str | None, split: str, sizes: dict[str, int],
           columns: tuple[str, ...]) -> HubDataset:
    return HubDataset(f"hub-{base}", base, family, hub_id, config, split, sizes, columns)


_ARC = ("question", "choices", "answerKey")
PROBE_SETS: dict[str, HubDataset] = {d.name: d for d in (
    _entry("imdb", "dlk", "stanfordnlp/imdb", "plain_text", "test",
           {"train": 25000, "test": 25000, "unsupervised": 50000}, ("text", "label")),
    _entry("amazon_polarity", "dlk", "fancyzhx/amazon_polarity", "amazon_polarity", "test",
           {"train": 3600000, "test": 400000}, ("title", "content", "label")),
    _entry("ag_news", "dlk", "fancyzhx/ag_news", None, "test", {"train": 120000, "test": 7600}, ("text", "label")),
    _entry("dbpedia_14", "dlk", "fancyzhx/dbpedia_14", "dbpedia_14", "test", {"train": 560000, "test": 70000},
           ("title", "content", "label")),
    _entry("rte", "dlk", "aps/super_glue", "rte", "validation", {"train": 2490, "validation": 277, "test": 3000},
           ("premise", "hypothesis", "label")),
    _entry("copa", "dlk", "aps/super_glue", "copa", "validation", {"train": 400, "validation": 100, "test": 500},
           ("premise", "choice1", "choice2", "question", "label")),
    _entry("boolq", "dlk", "google/boolq", None, "validation", {"train": 9427, "validation": 3270},
           ("question", "answer", "passage")),
    _entry("piqa", "dlk", "baber/piqa", None, "validation", {"train": 16113, "validation": 1838},
           ("goal", "sol1", "sol2", "label")),
    _entry("arc_easy", "repe", "allenai/ai2_arc", "ARC-Easy", "test",
           {"train": 2251, "validation": 570, "test": 2376}, _ARC),
    _entry("arc_challenge", "repe", "allenai/ai2_arc", "ARC-Challenge", "test",
           {"train": 1119, "validation": 299, "test": 1172}, _ARC),
    _entry("commonsense_qa", "repe", "tau/commonsense_qa", None, "validation",
           {"train": 9741, "validation": 1221, "test": 1140}, _ARC),
    _entry("openbookqa", "repe", "allenai/openbookqa", "main", "test",
           {"train": 4957, "validation": 500, "test": 500}, ("question_stem", "choices", "answerKey")),
    _entry("race", "repe", "ehovy/race", "all", "test", {"train": 87866, "validation": 4887, "test": 4934},
           ("article", "question", "options", "answer")),
    _entry("truthful_qa", "repe", "truthfulqa/truthful_qa", "multiple_choice", "validation",
           {"validation": 817}, ("question", "mc1_targets")),
)}
