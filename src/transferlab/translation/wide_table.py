"""A wide table from elsewhere (seed 000's main table) imported as a translation run.

    transferlab results import runs/seed000 000_main_table.md          # seed 000's names are known
    transferlab results import runs/x table.csv --columns task=Benchmark,base=Base,oracle=Oracle,drop=Notes
    transferlab report runs/seed000                                    # its gap_recovered table, flagged

A wide table has one row per task and one column per method, plus base (base_Y) and oracle;
optionally domain, n, and the source's own gap_recovered (kept for comparison). `--columns
role=Column` names the columns whose names differ: roles task, domain, base, oracle, n,
gap_recovered; `drop=Column` leaves one out; `name=Column` for any other name renames a
method column. Seed 000's `topk8_global_ridge` is the study's topk_global_ridge with k=8.

The table is read by the translation study's own reader (`imported`), checked cell by cell
(a number, or a blank / NA / — for a method not run; NaN, inf or a word is refused with its
row), flagged by the study's rules (`gaps.flag_study_tables`) and summarised by its
`summarise._summary`, then written as a translation run writes its tables
(`tables/tasks.csv`, `tables/translations.csv`, `tables/summary.json`) plus the tidy rows
of `results.sqlite`. So `transferlab report RUN` shows what a run of the study would:
the gap_recovered table with the NA and unstable (†) flags, and seed 000's summary numbers.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd

from transferlab.engine.import_checks import blank, number, read_records, unique
from transferlab.engine.store import NONE, ResultRow, Store, write_json
from transferlab.errors import TransferlabError
from transferlab.translation import imported
from transferlab.translation.gaps import MIN_EFFECT, check_min_effect, flag_study_tables, rules_text
from transferlab.translation.translators import LEARNED

ROLES = {"task": "task", "domain": "domain", "base": "base_y", "base_y": "base_y", "oracle": "oracle", "n": "n",
         "gap_recovered": "published_gap_recovered"}
MISSING = {"na", "n/a", "—", "–", "-", "none"}  # a cell of a method that was not run (NaN is refused)
TOPK = re.compile(r"topk(\d+)_(.+)")
SEPARATOR = re.compile(r"\|(?:\s*:?-{3,}:?\s*\|)+")
RECORD = "imported.json"  # in tables/: where the table came from, and that this run is an import


def reflow(text: str) -> str:
    """Markdown pipe tables flattened onto one line (as seed 000's text is stored) put back
    one row per line; a table already one row per line is left as it is."""
    lines = []
    for line in text.splitlines():
        lines += _reflow_line(line)
    return "\n".join(lines)


def _reflow_line(line: str) -> list[str]:
    sep = SEPARATOR.search(line)
    if sep is None or line.strip() == sep.group():
        return [line]
    k = sep.group().count("|") - 1
    before = line[: sep.start()].split("|")
    if len(before) < k + 2:
        return [line]
    preamble, header = "|".join(before[: -(k + 1)]), before[-(k + 1):-1]
    rows, rest = [], line[sep.end():]
    while rest.lstrip().startswith("|"):
        cells = rest.split("|", k + 1)
        if len(cells) < k + 2:
            break
        rows.append(cells[1:k + 1])
        rest = cells[k + 1]
    table = ["| " + " | ".join(c.strip() for c in cells) + " |" for cells in [header, ["---"] * k, *rows]]
    return [preamble, "", *table, "", *_reflow_line(rest)]


def read_wide(path: Path, columns: list[tuple[str, str]]) -> pd.DataFrame:
    """The table as written (strings; None for blank), its columns renamed by `columns`."""
    mapping = dict(columns)
    text = path.read_bytes()
    lines = text.decode("utf-8-sig", errors="replace").splitlines()
    markdown = any(line.lstrip().startswith("|") for line in lines) or any(SEPARATOR.search(line) for line in lines)
    if text.startswith(b"PAR1") or path.suffix.lower() == ".parquet" or not markdown:
        found, records = read_records(path)
        frame = pd.DataFrame([r for _, r in records], columns=found, dtype=object)
    else:
        frame = imported._markdown(reflow(text.decode("utf-8-sig")), path.name, mapping.get("oracle", "oracle"))
        frame = frame.astype(object).map(lambda c: c if isinstance(c, str) and c.strip() else None)
    repeated = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if repeated:
        raise TransferlabError(f"{path.name}: the column {repeated[0]!r} appears twice: name each column once")
    renamed, dropped = {}, []
    for name, column in columns:
        if column not in frame.columns:
            raise TransferlabError(f"--columns {name}={column}: {path.name} has no column {column!r} (it has "
                                   f"{', '.join(map(str, frame.columns))})")
        if name == "drop":
            dropped.append(column)
        else:
            renamed[column] = ROLES.get(name.lower(), name)
    return frame.drop(columns=dropped).rename(columns=renamed)


def _name(column: Any) -> str:
    """A column's name as the study's reader matches it (`imported.tidy`: any case, _ for spaces)."""
    key = re.sub(r"[\s\-]+", "_", str(column).strip().lower())
    return imported.ALIASES.get(key, key)


def check_wide(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """Every number a finite number or a missing cell, each task (and method) once; NA cells become None."""
    checked = frame.astype(object)
    words = {"task", "domain", "metric", "higher_is_better", "method"}
    numbers = [c for c in frame.columns if _name(c) not in words]
    ids = [c for c in frame.columns if _name(c) in ("task", "method")]
    keys = []
    for position, (index, row) in enumerate(frame.iterrows(), start=1):
        key = tuple(str(row[c]).strip() for c in ids)
        where = f"{name} table row {position}" + (f" ({', '.join(key)})" if key else "")
        for column in numbers:
            cell = row[column]
            if blank(cell) or str(cell).strip().lower() in MISSING:
                checked.at[index, column] = None
            else:
                checked.at[index, column] = number(cell, str(column), where)
        keys.append((key, f"row {position}"))
    if ids:
        unique(keys, "task" + (" and method" if len(ids) > 1 else ""), name)
    return checked


def _method(name: str) -> tuple[str, Any]:
    """(the study's method name, k): seed 000's topk8_global_ridge is topk_global_ridge, k=8."""
    match = TOPK.fullmatch(name)
    if match and f"topk_{match[2]}" in LEARNED:
        return f"topk_{match[2]}", int(match[1])
    return name, ""


def import_wide(run_dir: Path, path: Path, columns: list[tuple[str, str]] | None = None, *, model: str | None = None,
                source_model: str | None = None, metric: str = "score", min_effect: float | None = None,
                seed: int = 0) -> dict[str, Any]:
    """Read, check and flag a wide table, then write it as a translation run's tables and rows."""
    effect = check_min_effect(MIN_EFFECT if min_effect is None else min_effect)
    if not path.exists():
        raise TransferlabError(f"no such file: {path}")
    tables = run_dir / "tables"
    if (tables / "summary.json").exists() and not (tables / RECORD).exists():
        raise TransferlabError(f"{run_dir} holds a translation run's own tables: import the table into a new "
                               "directory")
    long = imported.tidy(check_wide(read_wide(path, columns or []), path.name), path.name)
    model_y, model_x = model or "Y", source_model or "X"
    long["domain"] = long["domain"].fillna("all") if "domain" in long else "all"
    long["task"] = long["task"].astype(str).str.strip()
    names = [_method(str(m)) for m in long["method"]]
    long = long.assign(label=long["method"], method=[m for m, _ in names], k=[k for _, k in names])
    first = long.drop_duplicates("task")
    keep = [c for c in ("task", "domain", "n", "base_y", "oracle") if c in first]
    tasks = first[keep].assign(metric=metric).reset_index(drop=True)
    trans = pd.DataFrame({"experiment": "main", "held_out": long["task"], "domain": long["domain"],
                          "method": long["method"], "label": long["label"], "n_anchors": math.nan, "k": long["k"],
                          "pool": "all", "metric": metric, "evaluated": True, "score": long["score"],
                          "gain": long["score"] - long["base_y"]})
    for column in ("n", "published_gap_recovered"):
        if column in long:
            trans[column] = long[column].to_numpy()
    tasks, trans = flag_study_tables(tasks, trans.reset_index(drop=True), effect)
    spec = SimpleNamespace(model_x=model_x, model_y=model_y, min_effect=effect,
                           domains={d: tuple(g["task"]) for d, g in tasks.groupby("domain", sort=False)})
    from transferlab.translation.summarise import _clean, _summary

    summary = _summary(spec, _records(tasks), _records(trans), {})
    rows = _rows(tasks, trans, model_y, model_x, metric, seed)
    store = Store(run_dir)  # everything is checked: now write
    tables.mkdir(parents=True, exist_ok=True)
    for frame, file in ((tasks, "tasks.csv"), (trans, "translations.csv")):
        tmp = tables / f".{file}.tmp"
        frame.to_csv(tmp, index=False)
        tmp.replace(tables / file)
    write_json(tables / "summary.json", _clean(summary), indent=1, default=float)
    write_json(tables / RECORD, {"source": str(path.resolve()), "format": "wide", "columns": columns or [],
                                 "metric": metric, "min_effect": effect}, indent=1)
    return dict(summary, rows=store.add_results(rows))


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows without their blank cells, as the study's summarise passes them."""
    return [{k: v for k, v in r.items() if not (isinstance(v, float) and math.isnan(v))}
            for r in frame.to_dict("records")]


def _rows(tasks: pd.DataFrame, trans: pd.DataFrame, model_y: str, model_x: str, metric: str,
          seed: int) -> list[ResultRow]:
    """The tidy rows a translation run writes: base_Y, oracle and its gain, and per method
    its score, gain over base_Y and gap recovered (NaN where NA)."""
    rows = []
    n_of = lambda r: int(r["n"]) if "n" in r and not pd.isna(r["n"]) else 0  # noqa: E731
    for r in tasks.to_dict("records"):
        if not pd.isna(r.get("base_y")):
            rows.append(ResultRow(model_y, NONE, NONE, r["task"], "baseline", seed, metric, r["base_y"], n_of(r)))
        if not pd.isna(r.get("oracle")):
            rows.append(ResultRow(model_y, "oracle", r["task"], r["task"], "oracle", seed, metric, r["oracle"], n_of(r)))
        if not pd.isna(r.get("oracle_gain")):
            rows.append(ResultRow(model_y, "oracle", r["task"], r["task"], "oracle", seed, f"gain:{metric}",
                                  r["oracle_gain"], n_of(r)))
    for r in trans.to_dict("records"):
        if pd.isna(r["score"]):
            continue
        cell = (model_y, str(r["label"]), f"{r['held_out']}@{model_x}", r["held_out"], "translated:main", seed)
        for name, value in ((metric, r["score"]), (f"gain:{metric}", r["gain"]), (f"gap_recovered:{metric}", r["gap"])):
            rows.append(ResultRow(*cell, name, float(value), n_of(r)))
    return rows


def is_imported(run_dir: Path) -> bool:
    return (run_dir / "tables" / RECORD).exists()


def report_lines(run_dir: Path) -> list[str]:
    """The imported table's gap_recovered table with its flags and the summary numbers,
    recomputed from the tables under the current rules (as the study's report does)."""
    from transferlab.translation.report import ORDER
    from transferlab.translation.report_cells import ci_cell, fmt, gap_cell, rule_counts
    from transferlab.translation.gaps import RULES
    from transferlab.translation.summarise import _summary

    tables = run_dir / "tables"
    record = json.loads((tables / RECORD).read_text())
    old = json.loads((tables / "summary.json").read_text())
    effect = record.get("min_effect", MIN_EFFECT)
    tasks, trans = flag_study_tables(pd.read_csv(tables / "tasks.csv"), pd.read_csv(tables / "translations.csv"),
                                     effect)
    spec = SimpleNamespace(model_x=old["model_x"], model_y=old["model_y"], min_effect=effect, domains=old["domains"])
    summary = _summary(spec, _records(tasks), _records(trans), {})
    methods = [m for m in ORDER if m in set(trans.method)] + sorted(set(trans.method) - set(ORDER))
    best = summary.get("best_learned_method")
    published = int("published_gap_recovered" in trans)
    lines = [f"# Imported translation table: {Path(record['source']).name} ({spec.model_x} → {spec.model_y})", "",
             f"gap_recovered per method (NA or † unstable: see the rule column; minimum effect {effect:g}):", "",
             "| Domain | Task | base_Y | oracle | oracle − base_Y | rule | " + " | ".join(methods)
             + (" | published gap_recovered |" if published else " |"),
             "|" + "---|" * (6 + len(methods) + published)]
    for t in tasks.to_dict("records"):
        cells = trans[trans.held_out == t["task"]].set_index("method")
        na, unstable = t.get("gap_na_rule"), t.get("gap_unstable_rule")
        rule = (f"NA: {RULES.get(na, na)}" if isinstance(na, str) and na else
                f"† {RULES.get(unstable, unstable)}" if isinstance(unstable, str) and unstable else "")
        gaps = [gap_cell(cells.loc[m].to_dict()) if m in cells.index else "—" for m in methods]
        gain = ci_cell(t, "oracle_gain") if not pd.isna(t.get("oracle_gain_lo", math.nan)) else fmt(t.get("oracle_gain"))
        source = [fmt(cells["published_gap_recovered"].iloc[0])] if published and len(cells) else []
        lines.append(f"| {t['domain']} | {t['task']} | {fmt(t.get('base_y'))} | {fmt(t.get('oracle'))} | "
                     f"{gain} | {rule} | " + " | ".join(gaps + source) + " |")
    domain_gaps = {d: (None if v is None or (isinstance(v, float) and math.isnan(v)) else round(v, 3))
                   for d, v in (summary.get("best_domain_gap_recovered") or {}).items()}
    lines += ["", "## Summary (seed 000's success criteria)", "",
              f"- Best learned method minus the mean translator, averaged over held-out tasks: "
              f"`{fmt(summary.get('best_learned_minus_mean'), 3)}` ({best}).",
              f"- Domain-average gap recovered ({best}): `{json.dumps(domain_gaps)}` (NA and unstable cells left out).",
              f"- gap_recovered is NA on {len(summary['gap_na'])} of {summary['tasks']} tasks{rule_counts(tasks)} "
              f"and unstable on {len(summary['gap_unstable'])}"
              + (f" ({', '.join(summary['gap_unstable'])})" if summary["gap_unstable"] else "") + ".", "",
              "| method | mean score | minus mean translator | mean gap recovered (stable cells; unstable) |",
              "|---|---|---|---|"]
    for m in methods:
        s = summary["methods"].get(m)
        if s:
            lines.append(f"| {m} | {fmt(s['mean_score'])} | {fmt(s['minus_mean_translator'], 3)} | "
                         f"{fmt(s['mean_gap_recovered'], 2)} ({s['gap_defined_on']}; {s['gap_unstable']}) |")
    return lines + ["", rules_text(effect)]


def write_report(run_dir: Path) -> list[Path]:
    """The study's own Markdown report and figures, where the table says how many examples
    each score used (the report quotes n); [] otherwise."""
    tasks = pd.read_csv(run_dir / "tables" / "tasks.csv")
    if "n" not in tasks or tasks["n"].isna().any() or not (tasks["n"] > 0).all():
        return []
    from transferlab.translation.report import write_report as draw

    return draw(run_dir)



def print_report(run_dir: Path, console: Any) -> None:
    """`transferlab report RUN` for an imported table: the flagged table and summary on the
    console, plus the study's Markdown report where the table gives n."""
    console.print("\n".join(report_lines(run_dir)), markup=False, highlight=False, soft_wrap=True)
    written = write_report(run_dir)
    if written:
        console.print(f"report: {written[0]}")
