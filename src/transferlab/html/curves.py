"""Learning curves on the page: did training work, before any transfer number is read?

Drawn from the run's `curves` table (`engine.curves.read_curves`: one row per model, learner,
trained_on, seed and step). Per (model, learner): the training loss (GRPO: the mean sampled
reward; SFT's dev loss dashed) and the dev score with its 95 % CI against the step, one colour
per source and a line per seed, and a table of each run's dev score at the first and last step
with the change and its paired CI.
"""

from __future__ import annotations

from typing import Any

from transferlab.html.charts import colour, line
from transferlab.html.page import Page, esc
from transferlab.html.tables import Cell, ci_text, missing, number, table

NONE_RECORDED = ("No learning curves were recorded: set `eval_every: K` on a learner to score dev examples "
                 "of the source every K steps, and run again.")


def _hover(r: Any, source: str, seed: int) -> str:
    return (f"{esc(source)} (seed {seed})<br>step {int(r.step)}<br>dev {esc(r.metric)} "
            f"{ci_text(r.dev_score, r.dev_ci_low, r.dev_ci_high)} (95% CI)<br>n = {number(r.n, 0)}"
            + ("" if missing(r.train_loss) else f"<br>train loss {number(r.train_loss)}")
            + ("" if missing(r.train_reward) else f"<br>mean reward {number(r.train_reward)}"))


def curve_section(page: Page, curves: Any) -> None:
    """Add the learning-curve heading, charts and table (or one line saying how to record them)."""
    page.heading("Learning curves")
    if curves is None or len(curves) == 0:
        page.text(NONE_RECORDED, note=True)
        return
    for (model, learner), frame in curves.groupby(["model", "learner"], sort=True):
        reward = frame["train_reward"].notna().any()
        left, right, rows = [], [], []
        for i, (source, runs) in enumerate(frame.groupby("trained_on", sort=True)):
            for k, (seed, run) in enumerate(runs.groupby("seed", sort=True)):
                run = run.sort_values("step")
                group, name = f"{source}", f"{source} (seed {seed})"
                hover = [_hover(r, source, seed) for r in run.itertuples()]
                column = "train_reward" if reward else "train_loss"
                train = run[run[column].notna()]
                left.append(line(list(train["step"]), list(train[column]), name, color=colour(i), legendgroup=group,
                                 hover=[h for h, ok in zip(hover, run[column].notna()) if ok], mode="lines"))
                if not reward and run["dev_loss"].notna().any():
                    dev = run[run["dev_loss"].notna()]
                    left.append(line(list(dev["step"]), list(dev["dev_loss"]), f"{name} dev loss", dash="dash",
                                     color=colour(i), legendgroup=group, showlegend=False, mode="lines"))
                scored = run[run["dev_score"].notna()]
                if len(scored):
                    right.append(line(list(scored["step"]), list(scored["dev_score"]),
                                      f"{name}, {scored['metric'].iloc[0]}",
                                      low=list(scored["dev_ci_low"]), high=list(scored["dev_ci_high"]), color=colour(i),
                                      hover=[h for h, ok in zip(hover, run["dev_score"].notna()) if ok],
                                      legendgroup=group))
                    first, last = scored.iloc[0], scored.iloc[-1]
                    change = Cell(ci_text(last.dev_change, last.dev_change_low, last.dev_change_high, signed=True)
                                  + ("*" if not missing(last.dev_change_low) and
                                     (last.dev_change_low > 0 or last.dev_change_high < 0) else ""),
                                  last.dev_change)
                    rows.append([source, int(seed), first.metric, int(first.step),
                                 Cell(number(first.dev_score), first.dev_score), int(last.step),
                                 Cell(number(last.dev_score), last.dev_score), change])
        page.heading(f"{model} — learner {learner}", level=3)
        page.grid(True)
        ylabel = "mean sampled reward" if reward else "training loss (dev loss dashed)"
        page.chart(left, {"title": {"text": f"{model}: {ylabel}", "font": {"size": 14}},
                          "xaxis": {"title": {"text": "step"}}, "yaxis": {"title": {"text": ylabel}}}, height=360)
        if right:
            page.chart(right, {"title": {"text": f"{model}: dev score (95% CI)", "font": {"size": 14}},
                               "xaxis": {"title": {"text": "step"}}, "yaxis": {"title": {"text": "dev score"}}},
                       height=360)
        page.grid(False)
        if rows:
            page.raw(table(["trained on", "seed", "metric", "first step", "dev score", "last step", "dev score",
                            "change [95% CI]"], rows,
                           caption="Each run's dev score at its first and last recorded step; the change is paired "
                                   "over the same dev examples (* when its CI excludes 0)."))
