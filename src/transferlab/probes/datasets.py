"""Probe datasets by name: which families exist, the offline ones, and `load_dataset`.

This module is the entry point: it names every built-in dataset, builds the offline
families itself and hands the hub-format ones to `hub`; the rows, their splits and the
`ProbeDataset` type are in `rows`. Families:
- got: the true/false sets of `tasks.truth` (offline), using the tasks' own splits;
- mmlu: MMLU questions in the RepE style, one row per option (offline, `tasks.mmlu`);
- dlk: imdb, amazon_polarity, ag_news, dbpedia_14, rte, copa, boolq, piqa with
  Burns et al. (2022) style templates, two rows per example (the true label and a false one);
- repe: arc_easy, arc_challenge, commonsense_qa, openbookqa, race, and truthful_qa,
  one row per answer choice, RepE's "Consider the correctness..." template.
The dlk and repe families (`hub`) load through the Hugging Face `datasets` loader, from the
hub (its local cache when offline) or from local files: `sources={"imdb": "./imdb.parquet"}`.
"""

from __future__ import annotations

from pathlib import Path

from transferlab.errors import TransferlabError, unknown_name
from transferlab.probes.hub import (DLK_SOURCES, HUB_PREFIX, REPE_SOURCES, REPE_TEMPLATE, dlk_rows, load_records,
                                    repe_rows)
from transferlab.probes.rows import TASK_SPLIT, ProbeDataset, Row, cap_rows

GOT = ("cities", "neg_cities", "cities_conj", "cities_disj", "larger_than", "smaller_than")
OFFLINE = (*GOT, "mmlu")


# ---- offline families ---------------------------------------------------------------------
def truth_rows(name: str) -> list[Row]:
    """A Geometry-of-Truth set from `tasks.truth`, keeping the task's splits (compound statements
    pair cities inside one split, so re-splitting would leak cities)."""
    from transferlab.tasks import get_task

    task = get_task(name)
    rows = []
    for task_split, split in TASK_SPLIT.items():
        for e in task.examples(task_split):
            rows.append(Row(e.meta["statement"], int(e.meta["label"]), e.meta["group"], "statement", split))
    return rows


def _mmlu_question(prompt: str) -> str:
    body = prompt.split("\n\n", 1)[1]
    return body.rsplit("\n\nA. ", 1)[0].strip()


def mmlu_rows(name: str) -> list[Row]:
    """MMLU questions (`mmlu` or any `mmlu-<subject|domain>` task) in the RepE style: a row per option."""
    from transferlab.tasks import get_task
    from transferlab.tasks.mmlu import MMLUTask

    task = get_task(name)
    if not isinstance(task, MMLUTask):
        raise TransferlabError(f"{name!r} is not an MMLU task")
    rows = []
    for task_split, split in TASK_SPLIT.items():
        for e in task.examples(task_split):
            if len(set(e.choices)) < len(e.choices):  # repeated option texts would be true and false at once
                continue
            question = _mmlu_question(e.prompt)
            for i, choice in enumerate(e.choices):
                rows.append(Row(REPE_TEMPLATE.format(question=question, answer=choice), int(i == e.answer),
                                e.uid, "choice", split))
    return rows


def family_of(name: str) -> str:
    if name in GOT:
        return "got"
    if name == "mmlu" or name.startswith("mmlu-"):
        return "mmlu"
    if name in DLK_SOURCES:
        return "dlk"
    if name in REPE_SOURCES:
        return "repe"
    raise unknown_name("probe dataset", name, [*GOT, "mmlu", *DLK_SOURCES, *REPE_SOURCES],
                       hint="MMLU subsets are mmlu-<subject or domain>")


def dataset_names() -> dict[str, str]:
    """Every built-in dataset name -> family (MMLU subsets `mmlu-<x>` are accepted too)."""
    return {**{n: "got" for n in GOT}, "mmlu": "mmlu", **{n: "dlk" for n in DLK_SOURCES},
            **{n: "repe" for n in REPE_SOURCES}}


def load_dataset(name: str, limit: int | None = None, source: str | Path | None = None,
                 max_chars: int | None = None) -> ProbeDataset:
    """Build a probe dataset by name; `source` overrides where a hub-format dataset is read from."""
    family = family_of(name)
    if family == "got":
        rows = truth_rows(name)
    elif family == "mmlu":
        rows = mmlu_rows(name)
    else:
        hub = (DLK_SOURCES if family == "dlk" else REPE_SOURCES)[name]
        base = name.removeprefix(HUB_PREFIX)  # hub-imdb builds exactly imdb's rows and groups
        if source is not None and base != name:
            raise TransferlabError(f"{name} always reads the hub dataset {hub.hub}: to read a local copy, "
                                   f"name it {base} (--source {base}=PATH)")
        records = load_records(hub, source)
        rows = dlk_rows(base, records) if family == "dlk" else repe_rows(base, records)
    if not rows:
        raise TransferlabError(f"probe dataset {name!r} produced no rows (no labelled examples?)")
    kept = cap_rows(rows, limit, max_chars)
    if not kept:
        raise TransferlabError(f"probe dataset {name!r} has no rows of at most {max_chars} characters")
    return ProbeDataset(name, family, tuple(kept))
