"""Multiple choice from the hub: ARC-Easy, ARC-Challenge, OpenBookQA, CommonsenseQA, SciQ, PIQA, BoolQ.

Each dataset's prompt, choices and answer follow its lm-evaluation-harness task YAML
(`arc/arc_easy.yaml`, `openbookqa/openbookqa.yaml`, `commonsense_qa/default.yaml`,
`sciq/sciq.yaml`, `piqa/piqa.yaml`, `super_glue/boolq/default.yaml`), and every choice is
scored by its log-likelihood (acc, and acc_norm by characters) as for MMLU. Datasets whose
test split has no labels (CommonsenseQA, PIQA) or no test split (BoolQ) are tested on
their validation split, as lm-eval does; their dev is then carved from train.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from transferlab.tasks.base import Example
from transferlab.tasks.hub.source import HubSplit
from transferlab.tasks.hub.task import HubTask, splits

Row = Mapping[str, Any]
# A row -> (prompt, choices, index of the answer).
Convert = Callable[[Row], tuple[str, list[str], int]]


def _labelled(row: Row, key_field: str = "answerKey") -> int:
    labels = [str(x) for x in row["choices"]["label"]]
    key = str(row[key_field]).strip()
    if key not in labels:
        raise ValueError(f"field {key_field!r} is {key!r}, not one of the choice labels {', '.join(labels)}")
    return labels.index(key)


def arc(row: Row) -> tuple[str, list[str], int]:
    return f"Question: {row['question']}\nAnswer:", list(row["choices"]["text"]), _labelled(row)


def openbookqa(row: Row) -> tuple[str, list[str], int]:
    return str(row["question_stem"]), list(row["choices"]["text"]), _labelled(row)


def commonsense_qa(row: Row) -> tuple[str, list[str], int]:
    texts, labels = list(row["choices"]["text"]), [str(x) for x in row["choices"]["label"]]
    if labels != list("ABCDE") or len(texts) != 5:
        raise ValueError(f"field 'choices' has labels {labels}, not A-E with five texts")
    options = "\n".join(f"{label}. {text}" for label, text in zip(labels, texts))
    return f"Question: {str(row['question']).strip()}\n{options}\nAnswer:", labels, _labelled(row)


def sciq(row: Row) -> tuple[str, list[str], int]:
    choices = [str(row[f]) for f in ("distractor1", "distractor2", "distractor3", "correct_answer")]
    return (f"{str(row['support']).lstrip()}\nQuestion: {row['question']}\nAnswer:", choices,
            choices.index(str(row["correct_answer"])))


def piqa(row: Row) -> tuple[str, list[str], int]:
    label = int(row["label"])
    if label not in (0, 1):
        raise ValueError(f"field 'label' is {label}, not 0 or 1 (an unlabelled row)")
    return f"Question: {row['goal']}\nAnswer:", [str(row["sol1"]), str(row["sol2"])], label


def boolq(row: Row) -> tuple[str, list[str], int]:
    if not isinstance(row["answer"], bool):
        raise ValueError(f"field 'answer' is {row['answer']!r}, not true or false")
    return f"{row['passage']}\nQuestion: {row['question']}?\nAnswer:", ["no", "yes"], int(row["answer"])


class HubChoiceTask(HubTask):
    """A multiple-choice hub dataset, one `Convert` per dataset."""

    output_type = "multiple_choice"
    metrics = ("acc", "acc_norm")
    primary_metric = "acc"
    max_new_tokens = 32

    def __init__(self, name: str, *, convert: Convert, id_field: str | None = None, **kwargs: Any):
        super().__init__(name, **kwargs)
        self.convert = convert
        self.id_field = id_field

    def example(self, row: Row, source: HubSplit) -> Example:
        prompt, choices, answer = self.convert(row)
        if len(choices) < 2 or not 0 <= answer < len(choices):
            raise ValueError(f"{len(choices)} choices with answer {answer}")
        return Example(uid="", prompt=prompt, target=choices[answer], choices=tuple(choices), answer=answer)

    def row_id(self, row: Row, source: HubSplit) -> str:
        return str(row[self.id_field]) if self.id_field else super().row_id(row, source)


ARC_COLUMNS = ("id", "question", "choices", "answerKey")
# name -> (description, domain, sources, convert, id field)
DATASETS: dict[str, tuple[str, str, tuple[HubSplit, ...], Convert, str | None]] = {
    "arc_easy": ("ARC-Easy grade-school science (allenai/ai2_arc, ARC-Easy): 2,251 train / 570 dev / 2,376 test",
                 "science", splits("allenai/ai2_arc", "ARC-Easy", ARC_COLUMNS, train=("train", 2251),
                                   dev=("validation", 570), test=("test", 2376)), arc, "id"),
    "arc_challenge": ("ARC-Challenge (allenai/ai2_arc, ARC-Challenge): 1,119 train / 299 dev / 1,172 test",
                      "science", splits("allenai/ai2_arc", "ARC-Challenge", ARC_COLUMNS, train=("train", 1119),
                                        dev=("validation", 299), test=("test", 1172)), arc, "id"),
    "openbookqa": ("OpenBookQA (allenai/openbookqa, main): 4,957 train / 500 dev / 500 test", "science",
                   splits("allenai/openbookqa", "main", ("id", "question_stem", "choices", "answerKey"),
                          train=("train", 4957), dev=("validation", 500), test=("test", 500)), openbookqa, "id"),
    "commonsense_qa": ("CommonsenseQA (tau/commonsense_qa): 9,741 train, tested on its 1,221 validation questions "
                       "(the test split has no labels)", "commonsense",
                       splits("tau/commonsense_qa", None, ("id", "question", "choices", "answerKey"),
                              train=("train", 9741), test=("validation", 1221)), commonsense_qa, "id"),
    "sciq": ("SciQ (allenai/sciq): 11,679 train / 1,000 dev / 1,000 test", "science",
             splits("allenai/sciq", None, ("question", "distractor1", "distractor2", "distractor3", "correct_answer",
                                           "support"),
                    train=("train", 11679), dev=("validation", 1000), test=("test", 1000)), sciq, None),
    "piqa": ("PIQA physical commonsense (baber/piqa, lm-eval's parquet copy of ybisk/piqa): 16,113 train, tested "
             "on its 1,838 validation questions (the test split has no labels)", "commonsense",
             splits("baber/piqa", None, ("goal", "sol1", "sol2", "label"), train=("train", 16113),
                    test=("validation", 1838)), piqa, None),
    "boolq": ("BoolQ yes/no reading comprehension (google/boolq): 9,427 train, tested on its 3,270 validation "
              "questions", "reading_comprehension",
              splits("google/boolq", None, ("question", "answer", "passage"), train=("train", 9427),
                     test=("validation", 3270)), boolq, None),
}


def factories() -> dict[str, Callable[[], HubTask]]:
    return {f"hub-{name}": (lambda n=name, d=spec: HubChoiceTask(
        f"hub-{n}", description=d[0], domain=d[1], sources=d[2], convert=d[3], id_field=d[4]))
        for name, spec in DATASETS.items()}
