"""The hub-format probe families: DLK (Burns et al. 2022) and RepE, TruthfulQA among them.

Their records come through the Hugging Face `datasets` loader, from the hub (its local
cache when offline) or from a local file or `save_to_disk` directory; each family's
templates turn a record into contrastive rows split by a hash of its group. Kept apart
from `datasets` because this is the one part that needs the optional `datasets` package
and knows each hub dataset's columns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transferlab.errors import TransferlabError, unknown_name
from transferlab.probes.rows import FRACTIONS, TASK_SPLIT, Row
from transferlab.tasks.base import split_of, stable_hash
from transferlab.tasks.hub.probe_sets import PROBE_SETS

REPE_TEMPLATE = ("Consider the correctness of the answer to the following question:\n"
                 "Question: {question}\nAnswer: {answer}\nThe probability of the answer being correct is")


@dataclass(frozen=True)
class HubSource:
    """Where a hub-format dataset comes from by default: hub id, config and split."""

    hub: str
    config: str | None
    split: str


def load_records(source: HubSource, override: str | Path | None = None) -> list[dict[str, Any]]:
    """Records from a local file (.jsonl/.json/.csv/.parquet), a `save_to_disk` directory, or the hub."""
    try:
        import datasets
    except ImportError:
        from transferlab.errors import missing_package

        raise missing_package("datasets", "loading hub-format probe datasets", "pip install 'transferlab[hub]'") from None
    datasets.disable_progress_bars()
    try:
        if override is not None:
            path = Path(override).expanduser()
            if not path.exists():
                raise TransferlabError(f"no such file or directory: {path}")
            if path.is_dir():
                data = datasets.load_from_disk(str(path))
                if isinstance(data, datasets.DatasetDict):
                    if source.split not in data:
                        raise TransferlabError(f"{path} has splits {', '.join(data)}, not {source.split!r}")
                    data = data[source.split]
            else:
                kinds = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
                if path.suffix not in kinds:
                    raise TransferlabError(f"{path.name}: use a .jsonl, .json, .csv or .parquet file, "
                                           "or a save_to_disk directory")
                data = datasets.load_dataset(kinds[path.suffix], data_files=str(path), split="train")
        else:  # through the hub cache when it holds the dataset (what `hf download` fills), offline too
            from transferlab.tasks.hub.source import HubSplit, read

            return read(f"probe dataset {source.hub}", HubSplit("test", source.hub, source.config, source.split, 0))[0]
    except TransferlabError:
        raise
    except Exception as err:  # the loader raises many kinds (connection, missing files, schema)
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        where = override or f"the hub dataset {source.hub}"
        raise TransferlabError(f"cannot load {where}: {first[:200]}; with no network, give a local copy "
                               "(--source NAME=PATH: .jsonl/.csv/.parquet or a save_to_disk directory)") from None
    return list(data)


def _need(record: Mapping[str, Any], columns: Iterable[str], name: str) -> None:
    missing = [c for c in columns if c not in record]
    if missing:
        raise TransferlabError(f"{name}: records lack the column(s) {', '.join(missing)} "
                               f"(have {', '.join(record)}); is this the right dataset?")


def _choose_false(key: str, n_labels: int, true: int) -> int:
    """A wrong label chosen by hash, the same on every run."""
    offset = 1 + int(stable_hash("false-label", key), 16) % (n_labels - 1)
    return (true + offset) % n_labels


def _pair_rows(key: str, texts: list[tuple[str, int, str]]) -> list[Row]:
    split = TASK_SPLIT[split_of(key, FRACTIONS)]
    return [Row(text, label, key, answer_type, split) for text, label, answer_type in texts]


def _label_rows(name: str, records: list[dict[str, Any]], columns: tuple[str, ...], labels: tuple[str, ...],
                template: Callable[[Mapping[str, Any], str], str], label_of: Callable[[Mapping[str, Any]], int]
                ) -> list[Row]:
    """DLK style: each example twice, once with its label and once with a wrong one."""
    rows = []
    for record in records:
        _need(record, columns, name)
        true = label_of(record)
        if not 0 <= true < len(labels):  # unlabelled rows (-1 in hidden test splits)
            continue
        key = stable_hash(name, [record[c] for c in columns])
        false = true ^ 1 if len(labels) == 2 else _choose_false(key, len(labels), true)
        rows += _pair_rows(key, [(template(record, labels[true]), 1, labels[true]),
                                 (template(record, labels[false]), 0, labels[false])])
    return rows


def _sentiment(field: str, title: str | None = None) -> Callable[[Mapping[str, Any], str], str]:
    def render(r: Mapping[str, Any], label: str) -> str:
        text = f"{r[title]}. {r[field]}" if title else str(r[field])
        return (f"Consider the following example: ''' {text.strip()} '''\n"
                f"Between negative and positive, the sentiment of this example is {label}")
    return render


def _topic(field: str, title: str | None = None) -> Callable[[Mapping[str, Any], str], str]:
    def render(r: Mapping[str, Any], label: str) -> str:
        text = f"{r[title]}. {r[field]}" if title else str(r[field])
        return f"Consider the following example: ''' {text.strip()} '''\nThe topic of this example is {label}"
    return render


AG_NEWS = ("world politics", "sports", "business", "science and technology")
DBPEDIA = ("company", "educational institution", "artist", "athlete", "office holder", "mean of transportation",
           "building", "natural place", "village", "animal", "plant", "album", "film", "written work")


def dlk_rows(name: str, records: list[dict[str, Any]]) -> list[Row]:
    """The DLK datasets of Burns et al. (2022), each with one of their prompt styles."""
    if name == "imdb":
        return _label_rows(name, records, ("text",), ("negative", "positive"), _sentiment("text"),
                           lambda r: int(r["label"]))
    if name == "amazon_polarity":
        return _label_rows(name, records, ("title", "content"), ("negative", "positive"),
                           _sentiment("content", "title"), lambda r: int(r["label"]))
    if name == "ag_news":
        return _label_rows(name, records, ("text",), AG_NEWS, _topic("text"), lambda r: int(r["label"]))
    if name == "dbpedia_14":
        return _label_rows(name, records, ("title", "content"), DBPEDIA, _topic("content", "title"),
                           lambda r: int(r["label"]))
    if name == "rte":
        # SuperGLUE RTE: label 0 = entailment
        return _label_rows(name, records, ("premise", "hypothesis"), ("yes", "no"),
                           lambda r, a: f"{r['premise']}\nQuestion: Does this imply that \"{r['hypothesis']}\"? "
                                        f"yes or no?\nAnswer: {a}",
                           lambda r: int(r["label"]))
    if name == "boolq":
        answer = (lambda r: 1 - int(bool(r["answer"]))) if records and "answer" in records[0] else (
            lambda r: 1 - int(r["label"]))
        return _label_rows(name, records, ("passage", "question"), ("true", "false"),
                           lambda r, a: f"Passage: {r['passage']}\n\nAfter reading this passage, I have a question: "
                                        f"{str(r['question']).rstrip('?')}? True or False?\nAnswer: {a}",
                           answer)
    if name == "copa":
        rows = []
        for r in records:
            _need(r, ("premise", "choice1", "choice2", "question", "label"), name)
            if int(r["label"]) not in (0, 1):
                continue
            key = stable_hash(name, r["premise"], r["choice1"], r["choice2"], r["question"])
            relation = "cause" if r["question"] == "cause" else "effect"
            texts = [(f"Consider the following premise: ''' {r['premise']} '''\nChoice 1: {r['choice1']}\n"
                      f"Choice 2: {r['choice2']}\nQ: Which one is more likely to be the {relation}, choice 1 or "
                      f"choice 2?\nA: choice {i + 1}", int(i == int(r["label"])), f"choice {i + 1}")
                     for i in (0, 1)]
            rows += _pair_rows(key, texts)
        return rows
    if name == "piqa":
        rows = []
        for r in records:
            _need(r, ("goal", "sol1", "sol2", "label"), name)
            if int(r["label"]) not in (0, 1):
                continue
            key = stable_hash(name, r["goal"], r["sol1"], r["sol2"])
            texts = [(f"Goal: {r['goal']}\nWhich is the correct ending?\nSolution: {r[f'sol{i + 1}']}",
                      int(i == int(r["label"])), "solution") for i in (0, 1)]
            rows += _pair_rows(key, texts)
        return rows
    raise unknown_name("DLK dataset", name, DLK_SOURCES)


def _choice_rows(name: str, key: str, question: str, options: list[str], correct: int) -> list[Row]:
    if len(set(options)) < len(options) or not 0 <= correct < len(options):
        return []
    return _pair_rows(key, [(REPE_TEMPLATE.format(question=question.strip(), answer=str(o).strip()),
                             int(i == correct), "choice") for i, o in enumerate(options)])


def repe_rows(name: str, records: list[dict[str, Any]]) -> list[Row]:
    """The RepE datasets (and TruthfulQA mc1): one row per answer choice, grouped by question."""
    rows: list[Row] = []
    for r in records:
        if name in ("arc_easy", "arc_challenge", "commonsense_qa", "openbookqa"):
            field = "question_stem" if name == "openbookqa" else "question"
            _need(r, (field, "choices", "answerKey"), name)
            labels = list(r["choices"]["label"])
            if r["answerKey"] not in labels:
                continue
            question = r[field]
            rows += _choice_rows(name, stable_hash(name, question, labels), question, list(r["choices"]["text"]),
                                 labels.index(r["answerKey"]))
        elif name == "race":
            _need(r, ("article", "question", "options", "answer"), name)
            question = f"{r['article'].strip()}\n{r['question']}"
            rows += _choice_rows(name, stable_hash(name, r["article"][:200], r["question"], r["options"]),
                                 question, list(r["options"]), "ABCD".index(str(r["answer"]).strip()))
        elif name == "truthful_qa":
            _need(r, ("question", "mc1_targets"), name)
            targets = r["mc1_targets"]
            labels = [int(v) for v in targets["labels"]]
            if sum(labels) != 1:
                continue
            rows += _choice_rows(name, stable_hash(name, r["question"]), r["question"], list(targets["choices"]),
                                 labels.index(1))
        else:
            raise unknown_name("RepE dataset", name, REPE_SOURCES)
    return rows


DLK_SOURCES = {
    "imdb": HubSource("stanfordnlp/imdb", None, "test"),
    "amazon_polarity": HubSource("fancyzhx/amazon_polarity", None, "test"),
    "ag_news": HubSource("fancyzhx/ag_news", None, "test"),
    "dbpedia_14": HubSource("fancyzhx/dbpedia_14", None, "test"),
    "rte": HubSource("aps/super_glue", "rte", "validation"),
    "copa": HubSource("aps/super_glue", "copa", "validation"),
    "boolq": HubSource("google/boolq", None, "validation"),
    "piqa": HubSource("baber/piqa", None, "validation"),  # ybisk/piqa is a loading script, which datasets>=4 refuses
}
REPE_SOURCES = {
    "arc_easy": HubSource("allenai/ai2_arc", "ARC-Easy", "test"),
    "arc_challenge": HubSource("allenai/ai2_arc", "ARC-Challenge", "test"),
    "commonsense_qa": HubSource("tau/commonsense_qa", None, "validation"),
    "openbookqa": HubSource("allenai/openbookqa", "main", "test"),
    "race": HubSource("ehovy/race", "all", "test"),
    "truthful_qa": HubSource("truthfulqa/truthful_qa", "multiple_choice", "validation"),
}
# `hub-<name>`: the same datasets, always read from the hub (its cache) at full size, never from a local
# copy, so the name says which data ran (`tasks.hub.probe_sets` holds their ids and published sizes).
HUB_PREFIX = "hub-"
for _name, _d in PROBE_SETS.items():
    (DLK_SOURCES if _d.family == "dlk" else REPE_SOURCES)[_name] = HubSource(_d.hub_id, _d.hub_config, _d.split)
