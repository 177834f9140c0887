"""report.html in a real browser: every page opens in headless Chromium without console errors,
draws every chart, shows the CI on hover, lists the changed examples on a cell click, and
leaves a screenshot for review.

The pages come from real runs' stores built here without a model: a transfer run whose
per-example records (real task examples, synthetic answers) go through the study's own
`summarise` and `write_run_report`, a probe run from planted activations, and a translation run
from the shipped study's tables. Chromium is Debian's `chromium` package (`make setup`
installs it); Playwright drives that binary and downloads nothing.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from transferlab.engine.curves import record_curves
from transferlab.engine.jobs import Job
from transferlab.engine.store import Store
from transferlab.html.index import write_index
from transferlab.tasks import get_task
from transferlab.transfer.plan import Cell, Plan
from transferlab.transfer.study import write_run_report
from transferlab.transfer.summarise import summarise

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("cities", "larger_than")
MODEL, LEARNER, N = "smollm2-135m", "lora", 40
INSTALL = "apt-get install -y chromium   (or: make setup, which installs it)"
# The pixel centre of heatmap cell (row i, column j) of a Plotly chart, in page coordinates.
CENTRE = """([id, i, j]) => { const gd = document.getElementById(id);
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, r = gd.getBoundingClientRect();
  return [r.left + xa._offset + xa.l2p(j), r.top + ya._offset + ya.l2p(i)]; }"""
# Per chart: how many marks it drew (heatmap images, line paths, bars), read from its SVG.
DRAWN = """() => Array.from(document.querySelectorAll('div.tl-chart')).map(d => [d.id,
  d.querySelectorAll('.heatmaplayer image, .scatterlayer .trace path.js-line, .scatterlayer .trace .point').length])"""


def chromium() -> str:
    path = os.environ.get("TRANSFERLAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail(f"the browser tests need Debian's chromium: {INSTALL}", pytrace=False)
    return path


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser tests need Playwright: pip install -e '.[dev]'", pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


class Opened:
    """A page opened in the browser, with every console error and uncaught exception it raised."""

    def __init__(self, browser, path: Path):
        self.errors: list[str] = []
        self.page = browser.new_page(viewport={"width": 1400, "height": 1300})
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: None if r.url.startswith(("file:", "data:", "about:")) else
                     self.errors.append(f"network request: {r.url}"))
        start = time.perf_counter()
        self.page.goto(path.as_uri())
        self.page.wait_for_selector("body[data-ready='1']", timeout=30_000)
        self.seconds = time.perf_counter() - start

    def charts(self) -> dict[str, int]:
        return dict(self.page.evaluate(DRAWN))

    def hover(self, chart: str, i: int, j: int) -> str:
        self.page.locator(f"#{chart}").scroll_into_view_if_needed()
        x, y = self.page.evaluate(CENTRE, [chart, i, j])
        self.page.mouse.move(x, y)
        self.page.wait_for_selector(f"#{chart} .hoverlayer .hovertext", timeout=5_000)
        return self.page.text_content(f"#{chart} .hoverlayer .hovertext") or ""

    def click(self, chart: str, i: int, j: int) -> None:
        self.hover(chart, i, j)
        x, y = self.page.evaluate(CENTRE, [chart, i, j])
        self.page.mouse.click(x, y)

    def screenshot(self, path: Path) -> Path:
        self.page.evaluate("window.scrollTo(0, 0)")
        self.page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path


def broken_images(opened: Opened) -> list[str]:
    """Images that did not load (a figure the page links but cannot reach)."""
    opened.page.wait_for_load_state("load")
    return opened.page.eval_on_selector_all("img", "imgs => imgs.filter(i => !i.complete || !i.naturalWidth)"
                                                   ".map(i => i.src)")


def check_drawn(opened: Opened, at_least: int) -> dict[str, int]:
    drawn = opened.charts()
    assert len(drawn) >= at_least, drawn
    assert all(marks > 0 for marks in drawn.values()), f"charts drawn empty: {drawn}"
    assert opened.page.locator("div.tl-chart svg.main-svg").count() >= len(drawn)
    return drawn


# ---- a transfer run, through the study's own summarise and report -----------------------------------
def _record(task, uids, correct, seed) -> dict:
    """An evaluation record as `evaluate_task` writes it: scores per metric, picks and their log-probs."""
    rng = np.random.default_rng(seed)
    examples = {e.uid: e for e in task.examples("test")}
    picks = [examples[u].answer if ok else 1 - examples[u].answer for u, ok in zip(uids, correct)]
    logprobs = [[-0.2 - rng.random() if k == p else -1.5 - rng.random() for k in range(2)] for p in picks]
    score = [float(ok) for ok in correct]
    return {"task": task.name, "split": "test", "uids": uids, "scores": {"acc": score, "acc_norm": score},
            "outputs": [], "weights": {}, "predictions": picks, "choice_logprobs": logprobs}


def transfer_run(root: Path) -> Path:
    store = Store(root)
    rng = np.random.default_rng(0)
    cells, base_correct = [], {}
    common = {"model": MODEL, "split": "test", "eval_examples": N, "max_new_tokens": 0, "batch_size": 16, "seed": 0}
    for target in TASKS:
        task = get_task(target)
        uids = [e.uid for e in task.examples("test")[:N]]
        base_correct[target] = rng.random(N) < 0.5
        key = f"base-{target}"
        with store.writing("evaluation", key, meta={**common, "task": target, "adapter": None, "learner": None,
                                                     "trained_on": None, "condition": "baseline"}) as out:
            (out / "evaluation.json").write_text(json.dumps(_record(task, uids, base_correct[target], 1)))
        cells.append(Cell(MODEL, None, None, target, "baseline", 0, key, key))
        for source in TASKS:
            condition = "direct" if source == target else "transfer"
            lift = 0.35 if condition == "direct" else -0.2  # direct helps, transfer hurts: both significant
            flip = rng.random(N) < abs(lift)
            correct = np.where(flip, lift > 0, base_correct[target])
            key = f"{source}-on-{target}"
            with store.writing("evaluation", key, meta={**common, "task": target, "adapter": f"adapter-{source}",
                                                         "learner": LEARNER, "trained_on": source,
                                                         "condition": condition}) as out:
                (out / "evaluation.json").write_text(json.dumps(_record(task, uids, correct, 2)))
            cells.append(Cell(MODEL, LEARNER, source, target, condition, 0, key, f"base-{target}"))
    summarise(Plan(jobs=[], tasks=list(TASKS), sources=list(TASKS), cells=cells), store, resamples=200)
    jobs = []
    for source in TASKS:  # a learning curve per adapter, as a train job with eval_every leaves it
        points = [{"step": s, "tokens_seen": 100 * s, "train_loss": None if s == 0 else 2.0 / (1 + s),
                   "dev_loss": 2.1 / (1 + s), "dev_score": 0.5 + 0.05 * s, "dev_ci_low": 0.4 + 0.05 * s,
                   "dev_ci_high": 0.6 + 0.05 * s, "dev_change": 0.05 * s, "dev_change_low": 0.05 * s - 0.04,
                   "dev_change_high": 0.05 * s + 0.04, "n": 32} for s in (0, 2, 4, 6)]
        with store.writing("adapter", f"adapter-{source}", meta={"task": source}) as out:
            (out / "training.json").write_text(json.dumps({"curve": {"metric": "acc", "points": points}}))
        jobs.append(Job("train", f"adapter-{source}", {"model": MODEL, "task": source, "learner": LEARNER,
                                                       "train": {"seed": 0}}))
    record_curves(store, jobs)
    (root / "spec.json").write_text(json.dumps({"name": "tiny html study", "models": [MODEL], "eval_split": "test",
                                                "budgets": {"eval_examples": N, "max_new_tokens": 0}}))
    write_run_report(root, "tiny html study", Console(file=io.StringIO()))
    return root / "report" / "report.html"


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """The three study pages and the index over them (with a shipped Markdown-only study beside)."""
    from tests.probes.test_study import planted_run
    from transferlab.probes.report import write_report as probe_report
    from transferlab.translation.report import write_report as translation_report

    root = tmp_path_factory.mktemp("html")
    start = time.perf_counter()
    made = {"transfer": transfer_run(root / "transfer")}
    probe_report(planted_run(root / "probes"))
    made["probes"] = root / "probes" / "report" / "report.html"
    shipped = ROOT / "docs" / "results" / "translation"
    (root / "translation").mkdir()
    shutil.copytree(shipped / "tables", root / "translation" / "tables")
    translation_report(root / "translation")
    made["translation"] = root / "translation" / "report" / "report.html"
    shutil.copytree(ROOT / "docs" / "results" / "drift", root / "drift")  # published Markdown only
    made["index"] = write_index(root)
    print(f"pages written in {time.perf_counter() - start:.1f} s under {root}")
    return made


def test_transfer_page_hover_shows_the_ci_and_a_click_lists_the_changed_examples(browser, pages, tmp_path):
    path = pages["transfer"]
    assert 1e6 < path.stat().st_size < 12e6  # Plotly inlined, the data small
    opened = Opened(browser, path)
    drawn = check_drawn(opened, at_least=6)  # scores, gain, efficiency, relative; two learning-curve charts
    gain = opened.page.get_attribute("div.tl-chart[data-examples] >> nth=1", "id")  # the second heatmap: gains
    assert gain in drawn
    text = opened.hover(gain, 1, 0)  # trained on larger_than, evaluated on cities
    assert "95% CI [" in text and "n = 40" in text and "q-value" in text, text
    assert "larger_than" in text and "cities" in text
    opened.click(gain, 1, 0)
    rows = opened.page.locator(".tl-examples-table tbody tr")
    rows.first.wait_for(timeout=5_000)
    assert rows.count() > 0
    panel = opened.page.inner_text(".tl-examples h4")
    assert "larger_than → cities" in panel
    first = rows.first.inner_text()
    assert "Is the following statement true or false?" in first and ("True" in first or "False" in first)
    assert "better" in first or "worse" in first
    results = opened.page.locator("#results tbody tr:not(.tl-hidden)")
    everything = results.count()
    opened.page.fill("input.tl-filter[data-for='results']", "gain:acc cities -p:")
    shown = results.count()
    assert 0 < shown < everything
    assert all("gain:acc" in r and "cities" in r for r in results.all_inner_texts())
    opened.page.click("#results th >> text=value")  # sort by value, ascending, then descending
    opened.page.click("#results th >> text=value")
    values = [float(r.split("\t")[7]) for r in results.all_inner_texts()]
    assert values == sorted(values, reverse=True)
    assert not opened.errors, opened.errors
    opened.screenshot(tmp_path / "transfer_report.png")
    assert opened.seconds < 15


def test_probe_page_draws_the_layer_charts_and_the_matrix_with_cis(browser, pages, tmp_path):
    opened = Opened(browser, pages["probes"])
    drawn = check_drawn(opened, at_least=4)  # accuracy by layer, score by layer, r0, matrix
    matrix = list(drawn)[-1]
    text = opened.hover(matrix, 0, 1)
    assert "recovered accuracy" in text and "95% CI [" in text and "n = " in text, text
    menu = opened.page.locator(".updatemenu-header-group").first  # the dataset menu of accuracy by layer
    assert menu.count() == 1
    assert not opened.errors, opened.errors
    opened.screenshot(tmp_path / "probe_report.png")


def test_translation_page_shows_the_gap_with_its_na_reason(browser, pages, tmp_path):
    opened = Opened(browser, pages["translation"])
    drawn = check_drawn(opened, at_least=2)
    gain, gap = list(drawn)[:2]
    assert "95% CI" in opened.hover(gain, 0, 4)  # the mean translator on the fifth task
    tasks = pd.read_csv(ROOT / "docs" / "results" / "translation" / "tables" / "tasks.csv")
    row = int(tasks.gap_na_rule.notna().to_numpy().argmax())  # the first task whose oracle did not gain enough
    assert tasks.gap_na_rule.notna().any()
    na = opened.hover(gap, 0, row)  # so its gap_recovered is NA, with the reason
    assert "NA:" in na and "oracle" in na, na
    assert opened.page.locator("table.tl-table").count() >= 4  # methods, tasks, translations, matrix (+ Markdown)
    assert not opened.errors, opened.errors
    opened.screenshot(tmp_path / "translation_report.png")


def test_index_has_a_card_per_run_and_its_links_open(browser, pages, tmp_path):
    opened = Opened(browser, pages["index"])
    cards = opened.page.locator(".tl-card")
    assert cards.count() == 4, opened.page.inner_text("main")
    text = opened.page.inner_text(".tl-cards")
    assert "tiny html study" in text and "significant transfer" in text
    assert "Truth probes on planted" in text and "best learned method" in text
    assert "Capability drift" in text  # the Markdown-only study, its headline from its bullets
    for href in opened.page.eval_on_selector_all(".tl-card h3 a", "as => as.map(a => a.getAttribute('href'))"):
        assert href.startswith("#study-") or (pages["index"].parent / href).is_file(), href
    assert not broken_images(opened)
    opened.page.click(".tl-card h3 a >> text=tiny html study")
    opened.page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    assert opened.page.locator("div.tl-chart").count() >= 4
    assert not opened.errors, opened.errors
    opened.screenshot(tmp_path / "index.png")


def test_the_shipped_index_opens_every_shipped_study(browser, tmp_path):
    index = ROOT / "docs" / "results" / "index.html"
    assert index.is_file(), "regenerate it: transferlab report --index docs/results"
    opened = Opened(browser, index)
    titles = opened.page.eval_on_selector_all(".tl-card h3", "hs => hs.map(h => h.textContent)")
    assert len(titles) == 6 and any("Cross-domain" in t for t in titles) and any("drift" in t for t in titles)
    for href in opened.page.eval_on_selector_all(".tl-links a", "as => as.map(a => a.getAttribute('href'))"):
        assert href.startswith("#study-") or (index.parent / href).is_file(), href
    assert opened.page.locator("h2[id^='study-']").count() == 6  # each study's Markdown, rendered in the page
    assert not broken_images(opened)
    assert not opened.errors, opened.errors
    opened.screenshot(tmp_path / "shipped_index.png")
