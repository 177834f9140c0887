"""The report's learning curves: did training work, before any transfer number is read?

One figure per (model, learner): training loss (GRPO: mean sampled reward) and the dev score
against the step, one colour per source task, each seed a thin line and, with several seeds,
their mean a thick one; SFT's dev loss is dashed beside its training loss. Below it, a table
of each run's dev score at step 0 and at its last step, with the change and its paired 95%
bootstrap CI (`*` when the CI excludes 0). Drawn from the run's `curves` table alone
(`engine.curves.read_curves`); a run without curves gets one line saying how to record them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

HOW_TO = ("No learning curves were recorded. To see whether training worked, set `eval_every: K` on a learner "
          "(it scores `eval_examples: 64` dev examples of the source every K steps) and run again.")


def _fmt(value: object, signed: bool = False) -> str:
    if value is None or pd.isna(value):
        return "—"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def curve_figure(frame: pd.DataFrame, path: Path, title: str) -> None:
    """Train loss (or reward) and dev score against the step for one (model, learner)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from transferlab.transfer.figures import save_figure

    reward = frame["train_reward"].notna().any()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    colours = plt.get_cmap("tab10")
    for i, (source, runs) in enumerate(frame.groupby("trained_on", sort=True)):
        colour = colours(i % 10)
        seeds = runs["seed"].nunique()
        metric = runs["metric"].iloc[0]
        for _, run in runs.groupby("seed"):
            thin = dict(color=colour, lw=0.8, alpha=0.45) if seeds > 1 else dict(color=colour, lw=1.8)
            train = run.dropna(subset=["train_reward" if reward else "train_loss"])
            left.plot(train["step"], train["train_reward" if reward else "train_loss"], **thin,
                      label=None if seeds > 1 else source)
            if not reward and run["dev_loss"].notna().any():
                left.plot(run["step"], run["dev_loss"], ls="--", **thin)
            right.plot(run["step"], run["dev_score"], marker="o", ms=3, **thin,
                       label=None if seeds > 1 else f"{source} ({metric})")
            if seeds == 1:
                right.fill_between(run["step"], run["dev_ci_low"], run["dev_ci_high"], color=colour, alpha=0.12)
        if seeds > 1:  # the mean over seeds, at the steps every seed recorded
            mean = runs.groupby("step")[["train_loss", "train_reward", "dev_loss", "dev_score"]].mean()
            column = "train_reward" if reward else "train_loss"
            left.plot(mean.index, mean[column], color=colour, lw=2, label=f"{source} (mean of {seeds} seeds)")
            if not reward and mean["dev_loss"].notna().any():
                left.plot(mean.index, mean["dev_loss"], color=colour, lw=2, ls="--")
            right.plot(mean.index, mean["dev_score"], color=colour, lw=2, marker="o", ms=3,
                       label=f"{source} ({metric}, mean of {seeds} seeds)")
    left.set_xlabel("step")
    left.set_ylabel("train reward (mean sampled)" if reward else "train loss (solid), dev loss (dashed)")
    right.set_xlabel("step")
    right.set_ylabel("dev score (primary metric)")
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    fig.suptitle(title)
    note = "thin lines: one seed each" if frame["seed"].nunique() > 1 else "band: 95% bootstrap CI of the dev score"
    fig.text(0.01, 0.01, f"{note}; dev n ≤ {int(frame['n'].max())}", fontsize=7, color="dimgray")
    save_figure(fig, path)


def curve_table(frame: pd.DataFrame) -> list[str]:
    """First vs last dev score of every run (source, seed), with the paired change."""
    lines = ["| trained on | seed | dev metric (n) | train loss first → last | dev score at step 0 | "
             "dev score at last step | change [95% CI] |", "|---|---|---|---|---|---|---|"]
    moved = 0
    runs = list(frame.groupby(["trained_on", "seed"], sort=True))
    for (source, seed), run in runs:
        run = run.sort_values("step")
        first, last = run.iloc[0], run.iloc[-1]
        column = "train_reward" if run["train_reward"].notna().any() else "train_loss"
        train = run[column].dropna()
        trend = f"{_fmt(train.iloc[0])} → {_fmt(train.iloc[-1])}" if len(train) else "—"
        if column == "train_reward":
            trend += " (reward)"
        significant = last["dev_change_low"] > 0 or last["dev_change_high"] < 0
        moved += bool(significant)
        change = (f"{_fmt(last['dev_change'], True)} [{_fmt(last['dev_change_low'], True)}, "
                  f"{_fmt(last['dev_change_high'], True)}]" + ("*" if significant else ""))
        lines.append(f"| {source} | {seed} | {last['metric']} ({int(last['n'])}) | {trend} | "
                     f"{_fmt(first['dev_score'])} (step {int(first['step'])}) | "
                     f"{_fmt(last['dev_score'])} (step {int(last['step'])}) | {change} |")
    lines += ["", f"The dev score moved significantly (`*`: the paired 95% CI of the change excludes 0) in "
                  f"{moved} of {len(runs)} runs; a run whose dev score did not move trained an adapter whose "
                  "transfer numbers below say little.", ""]
    return lines


def learning_curves(curves: pd.DataFrame | None, out_dir: Path) -> tuple[list[str], list[Path]]:
    """The Markdown section and the figures of a run's learning curves."""
    lines = ["## Learning curves", ""]
    if curves is None or curves.empty:
        return lines + [HOW_TO, ""], []
    written: list[Path] = []
    lines += ["Each adapter's source task, scored on its dev split while it trained (step 0 is before any "
              "update), so a transfer number can be read knowing whether training worked.", ""]
    for (model, learner), frame in curves.groupby(["model", "learner"], sort=True):
        path = out_dir / f"{model}_{learner}_curve.png".replace("/", "_")
        curve_figure(frame, path, f"{model}: learning curves ({learner})")
        written.append(path)
        lines += [f"### {model} — learner `{learner}`", "", f"![learning curves]({path.name})", ""]
        lines += curve_table(frame)
    return lines, written
