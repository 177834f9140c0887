"""Seed 002's secondary metrics in the report: compute efficiency (`transfer.efficiency`) and
robustness to prompt templates (`transfer.robustness`), drawn from the results table alone.

`secondary_report(results, model, learner)` gives the findings bullets and the Markdown
sections for one (model, learner) of `transfer.report.write_report`.
"""

from __future__ import annotations

import pandas as pd

from transferlab.transfer.efficiency import KINDS as COST_KINDS
from transferlab.transfer.robustness import TRAINED, base_scores, robustness_table, template_order

SIGN = {1: "yes (+)", -1: "yes (−)", 0: "no"}


def efficiency_table(results: pd.DataFrame, model: str, learner: str) -> pd.DataFrame:
    """One row per trained cell with a recorded cost, in its target's primary metric: the gain
    and `gain_per_mtoken`, `gain_per_pflop` (each with its CI), `train_mtokens`,
    `train_pflops` and `cost_fallback` (seeds combined as the report does)."""
    from transferlab.transfer.analysis import CELL, primary_metric, seed_mean

    frame = results[(results["model"] == model) & (results["learner"] == learner)
                    & results["condition"].isin(TRAINED)]
    if not frame["metric"].str.startswith("gain_per_pflop:").any():
        return pd.DataFrame()
    bare = frame["metric"].str.split(":").str[-1]
    primary = {t: primary_metric(t, sorted(bare[frame["evaluated_on"] == t].unique()))
               for t in frame["evaluated_on"].unique()}
    kind = frame["metric"].str.rsplit(":", n=1).str[0]
    keep = (bare == frame["evaluated_on"].map(primary)) & kind.isin(["gain", *COST_KINDS])
    combined = seed_mean(frame[keep].assign(kind=kind[keep]), [*CELL, "kind"])
    rows = []
    for key, cell in combined.groupby(CELL[2:]):
        by = cell.set_index("kind")
        if "gain_per_pflop" not in by.index:
            continue
        row = dict(zip(CELL[2:], key), metric=primary[key[1]])
        for k in ("gain", "gain_per_mtoken", "gain_per_pflop"):
            row.update({k: by.loc[k, "value"], f"{k}_ci_low": by.loc[k, "ci_low"], f"{k}_ci_high": by.loc[k, "ci_high"]})
        row.update(mtokens=by.loc["train_mtokens", "value"], pflops=by.loc["train_pflops", "value"],
                   fallback="cost_fallback" in by.index)
        rows.append(row)
    return pd.DataFrame(rows)


def secondary_report(results: pd.DataFrame, model: str, learner: str) -> tuple[list[str], list[str]]:
    """(findings bullets, Markdown sections) for one (model, learner); both empty when the table
    has neither training costs nor a second prompt template."""
    findings: list[str] = []
    sections: list[str] = []
    costs = efficiency_table(results, model, learner)
    if not costs.empty:
        findings.append(_efficiency_finding(costs))
        sections += _efficiency_section(costs)
    robust = robustness_table(results, model, learner)
    if not robust.empty:
        findings.append(_robustness_finding(robust))
        sections += _robustness_section(robust, base_scores(results, model))
    return findings, sections


def _ci(value: float, low: float, high: float, fmt: str = "+.3f") -> str:
    if pd.isna(value):
        return "NA"
    text = f"{value:{fmt}}"
    return text if pd.isna(low) else f"{text} [{low:{fmt}}, {high:{fmt}}]"


def _efficiency_finding(costs: pd.DataFrame) -> str:
    real = costs[(costs["condition"] == "transfer") & (costs["gain_ci_low"] > 0)]
    if real.empty:
        return ("- compute efficiency: no transfer cell's gain CI lies above zero, so no gain per token or per FLOP is "
                "a finding (all are in the compute-efficiency table).")
    best = real.sort_values("gain_per_pflop").iloc[-1]
    direct = costs[(costs["condition"] == "direct") & (costs["evaluated_on"] == best["evaluated_on"])]
    versus = (f"; direct training on {best['evaluated_on']}: "
              f"{_ci(*direct.iloc[0][['gain_per_pflop', 'gain_per_pflop_ci_low', 'gain_per_pflop_ci_high']], '+.3g')}"
              if not direct.empty else "")
    return (f"- compute efficiency: of the transfer cells whose gain CI lies above zero, {best['trained_on']} → "
            f"{best['evaluated_on']} gains the most per training PFLOP: "
            f"{_ci(best['gain_per_pflop'], best['gain_per_pflop_ci_low'], best['gain_per_pflop_ci_high'], '+.3g')}"
            f"{versus}.")


def _efficiency_section(costs: pd.DataFrame) -> list[str]:
    lines = ["### Compute efficiency", "",
             "Gain per million training tokens and per training PFLOP (seed 002's compute efficiency), in each "
             "target's primary metric: the gain and its 95% CI divided by the adapter's training cost, which is "
             "fixed per adapter (seeds: the mean cost of their adapters). Tokens are those the training forward "
             "and backward passes ran over (prompt + completion, no padding); FLOPs = T_train·(4N + 6·N_lora) + "
             "T_forward·2N, with N the frozen base's parameters, N_lora the adapter's and T_forward GRPO's "
             "forward-only tokens (sampling, KL reference). A sequential adapter includes its first stage.", ""]
    if costs["fallback"].any():
        lines += ["‡ = an adapter trained before processed tokens were recorded: its cost counts the loss "
                  "(completion) tokens only and N from the model's config, so it is too low.", ""]
    lines += ["| trained on | evaluated on | condition | gain | Mtokens | PFLOPs | gain / Mtoken | gain / PFLOP |",
              "|---|---|---|---|---|---|---|---|"]
    for r in costs.itertuples():
        mark = "‡" if r.fallback else ""
        lines.append(f"| {r.trained_on} | {r.evaluated_on} ({r.metric}) | {r.condition} | "
                     f"{_ci(r.gain, r.gain_ci_low, r.gain_ci_high)} | {r.mtokens:.3g}{mark} | {r.pflops:.3g}{mark} | "
                     f"{_ci(r.gain_per_mtoken, r.gain_per_mtoken_ci_low, r.gain_per_mtoken_ci_high, '+.3g')} | "
                     f"{_ci(r.gain_per_pflop, r.gain_per_pflop_ci_low, r.gain_per_pflop_ci_high, '+.3g')} |")
    return lines + [""]


def _templates_of(robust: pd.DataFrame) -> list[str]:
    return template_order([c for c in robust.columns if f"{c}_ci_low" in robust.columns])


def _robustness_finding(robust: pd.DataFrame) -> str:
    templates = _templates_of(robust)
    kept = int((robust["sign"] != 0).sum())
    significant = robust[(robust["default_ci_low"] > 0) | (robust["default_ci_high"] < 0)]
    lost = significant[significant["sign"] == 0]
    text = (f"- prompt robustness over {len(templates)} templates ({', '.join(templates)}): {kept} of {len(robust)} "
            f"trained cells keep a gain of one sign whose CI excludes zero under every template; of the "
            f"{len(significant)} significant under the default template (CI), {len(significant) - len(lost)} survive")
    if len(lost):
        text += " (lost: " + ", ".join(f"{r.trained_on} → {r.evaluated_on}" for r in lost.head(8).itertuples()) + \
            (", ..." if len(lost) > 8 else "") + ")"
    return text + f"; median spread of the gain over templates {robust['spread'].median():.3f}."


def _robustness_section(robust: pd.DataFrame, base: pd.DataFrame) -> list[str]:
    from transferlab.tasks.prompts import TEMPLATES

    templates = _templates_of(robust)
    described = "; ".join(f"`{t}`: {TEMPLATES[t].description}" if t in TEMPLATES else f"`{t}`" for t in templates)
    lines = ["### Robustness to prompt templates", "",
             f"Every (base or adapter, target) scored under each prompt template ({described}); training always "
             "used `default`. Each gain is paired against the base model under the same template. Spread = the "
             "largest minus the smallest gain over the templates. The sign survives when the gain's 95% CI lies on "
             "the same side of zero under every template (no multiplicity correction: each template must pass on "
             "its own); `same direction` is the weaker rule that the point estimates all share a sign.", "",
             "| trained on | evaluated on | condition | " + " | ".join(f"gain [{t}]" for t in templates)
             + " | spread | sign survives | same direction |",
             "|---|---|---|" + "---|" * (len(templates) + 3)]
    for _, r in robust.iterrows():
        gains = " | ".join(_ci(r[t], r[f"{t}_ci_low"], r[f"{t}_ci_high"]) for t in templates)
        lines.append(f"| {r['trained_on']} | {r['evaluated_on']} ({r['metric']}) | {r['condition']} | {gains} | "
                     f"{r['spread']:.3f} | {SIGN[int(r['sign'])]} | {'yes' if r['same_direction'] else 'no'} |")
    lines.append("")
    if not base.empty:
        shown = [t for t in templates if t in base.columns]
        lines += ["Base model score per template:", "",
                  "| evaluated on | " + " | ".join(shown) + " |", "|---|" + "---|" * len(shown)]
        for _, r in base.iterrows():
            cells = [_ci(*r[t], fmt=".3f") if isinstance(r[t], tuple) else "" for t in shown]
            lines.append(f"| {r['evaluated_on']} ({r['metric']}) | " + " | ".join(cells) + " |")
        lines.append("")
    return lines
