"""The seeds' published numbers, quoted once, and the "compared with the seed" table built from them.

Every study report (transfer, probes, translation) puts its own measurements beside these:

    rows = [("004.numeric.adapter", Ours(0.21, 0.15, 0.27, "alpaca_gpt4 on gsm8k"))]
    frame = comparison_table(rows, our_setup="smollm2-135m, ...")
    lines = comparison_markdown(frame)        # the summary.md section
    write_comparison(frame, report / "tables")  # tables/seed_comparison.csv

Each `SeedNumber` keeps the line of `seeds/NNN_*.txt` it comes from (`quote`), so a test can
check the value against the seed's own words. Numbers the seed does not print but that follow
from what it prints (means of its main table, differences of two published scores) say so in
`derived`; seed 001's cells are estimates its description read off a colour scale, and seed 002's
matrix is hypothetical (a proposal's expectation, nothing measured): both say so in `note`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class Seed:
    """One seed document: what it is, where from, and the setup its numbers were measured in."""

    id: str
    title: str
    citation: str
    setup: str


@dataclass(frozen=True)
class SeedNumber:
    key: str  # "<seed>.<quantity>[.<variant>]", what a study's `Ours` rows name
    seed: str
    quantity: str
    value: float  # NaN where the seed gives text rather than one number
    quote: str  # the seed's own words (a line of its text), for the reader and the tests
    derived: str = ""  # how the value follows from the quote, when the seed does not print it
    note: str = ""


@dataclass(frozen=True)
class Ours:
    """A study's measured analogue of one seed number: value with its 95% CI (NaN where none)."""

    value: float
    ci_low: float = math.nan
    ci_high: float = math.nan
    detail: str = ""  # which cell, model, task or count the value is; why the CI is missing


SEEDS = {
    "000": Seed("000", "Cross-model LoRA adapter translation (round 3)",
                "huggingface.co/Samarth0710/cross-model-lora-prediction-3b (seeds/000)",
                "X = Qwen2.5-3B-Instruct -> Y = Llama-3.2-3B-Instruct; LoRA r=8, alpha=16, q_proj+v_proj, 1 epoch SFT, "
                "batch 8, lr 2e-4, bf16, max 512 tokens; 6 held-out tasks (gsm_hard, math_algebra_medium, "
                "humaneval_plus, mbpp_plus, arc_challenge, mmlu_college_chemistry); n per task and CIs not given"),
    "001": Seed("001", "Heatmap pair: Probe vs LoRA + Prompt, Model x Trained on",
                "seeds/001 (a description of a figure)",
                "Mistral and LLaMA-2 (sizes, task, data and n not stated); 'Probe' and 'LoRA + Prompt' panels; "
                "cell values estimated from the colour scales (0.5-0.8 and 0.65-0.80); no CIs"),
    "002": Seed("002", "Research proposal: cross-domain transfer in fine-tuned language models",
                "seeds/002 (a Tinker research proposal)",
                "a proposal, not a result: Llama-3.2-1B/3B and Qwen3-30B-A3B planned, LoRA rank 32, lr 1e-4, "
                "1000 steps, batch 32; domains Math, Code, Physics, Logic (GSM8K/MATH, HumanEval/MBPP, SciQ/ARC, "
                "LogiQA/ReClor); its transfer-efficiency matrix is HYPOTHETICAL: nothing was measured"),
    "003": Seed("003", "Qwen3 cross-dataset generalisation of truth probes (after mishajw 2024)",
                "mishajw (2024), 'How well do truth probes generalise?', lesswrong.com/posts/rbyvSZTvYqyqf5ksB "
                "(seeds/003)",
                "Llama-2-13B (mishajw) and Qwen3-4B; 17 datasets (DLK, RepE, Geometry of Truth); 8 algorithms; "
                "every layer; numbers 'based on existing experiments', without CIs or n"),
    "004": Seed("004", "Instruction-tuned, but not more verifiable instruction-following (capability drift)",
                "Zou, arXiv:2603.22379 (seeds/004)",
                "the abstract's 'illustrative strongest-case example' of a controlled instruction-versus-numeric "
                "setting (base model, LoRA settings, data sizes and n not given there); IFEval strict, ILA = "
                "instruction-level, PLA = prompt-level accuracy; values rounded to three decimals"),
}

# ---- seed 000: the main table, as printed (gap_recovered: None = NA) ------------------------------
SEED_000_METHODS = ("base_Y", "mean", "global_ridge", "pertensor_ridge", "topk8_global_ridge", "topk8_pertensor_ridge",
                    "pertensor_mlp", "oracle")
SEED_000_MAIN = (  # (domain, task, the SEED_000_METHODS scores, gap_recovered)
    ("math", "gsm_hard", (0.057, 0.063, 0.053, 0.057, 0.050, 0.047, 0.067, 0.073), 0.600),
    ("math", "math_algebra_medium", (0.093, 0.100, 0.093, 0.100, 0.103, 0.103, 0.093, 0.097), 3.000),
    ("code", "humaneval_plus", (0.079, 0.085, 0.067, 0.067, 0.067, 0.067, 0.073, 0.067), -0.500),
    ("code", "mbpp_plus", (0.217, 0.207, 0.217, 0.210, 0.213, 0.203, 0.200, 0.220), 0.000),
    ("science", "arc_challenge", (0.706, 0.732, 0.706, 0.706, 0.706, 0.706, 0.726, 0.726), 1.333),
    ("science", "mmlu_college_chemistry", (0.375, 0.375, 0.375, 0.375, 0.375, 0.375, 0.250, 0.375), None),
)
SEED_000_HEADER = ("| Domain | Task | base_Y | mean | global_ridge | pertensor_ridge | topk8_global_ridge | "
                   "topk8_pertensor_ridge | pertensor_mlp | oracle | gap_recovered |")
SEED_000_MIN_EFFECT = 0.05  # our minimum oracle gain for a defined gap_recovered (translation.gaps.MIN_EFFECT)


def _seed_000_numbers() -> list[SeedNumber]:
    rows = SEED_000_MAIN
    out = [SeedNumber("000.best_minus_mean", "000", "best learned method minus the mean translator, averaged over the "
                      "held-out tasks", -0.0,
                      "- Best learned method minus mean baseline (average over held-out): `-0.000`")]
    for i, method in enumerate(SEED_000_METHODS):
        out.append(SeedNumber(f"000.mean_score.{method}", "000", f"mean score over the held-out tasks: {method}",
                              round(sum(r[2][i] for r in rows) / len(rows), 4), SEED_000_HEADER,
                              derived=f"mean of the {method} column of the seed's main table (6 tasks)",
                              note="other tasks than ours: compare each method with base_Y and oracle, not the "
                                   "levels"))
    gains = [r[2][-1] - r[2][0] for r in rows]
    out.append(SeedNumber("000.oracle_gain.mean", "000", "oracle - base_Y, mean over the held-out tasks",
                          round(sum(gains) / len(gains), 4), SEED_000_HEADER,
                          derived="mean of oracle - base_Y over the seed's main table (6 tasks)"))
    above = sum(g >= SEED_000_MIN_EFFECT - 1e-9 for g in gains)
    out.append(SeedNumber("000.oracle_gain.defined", "000", f"share of held-out tasks whose oracle gains at least "
                          f"{SEED_000_MIN_EFFECT:g} over base_Y (gap_recovered defined under our rules)",
                          above / len(gains), SEED_000_HEADER,
                          derived=f"{above} of {len(gains)} tasks in the seed's main table (its largest oracle gain is "
                                  f"{max(gains):+.3f}); the seed prints gap_recovered for 5 of them",
                          note="the seed's gap_recovered values (3.000, 1.333, ...) divide by oracle gains of at "
                               "most 0.02"))
    out.append(SeedNumber("000.domain_gap", "000", "domain-average gap_recovered of the best learned method",
                          math.nan, "- Domain average gap_recovered: `{'math': 1.800000000000002, 'code': "
                          "-0.2500000000000003, 'science': 1.3333333333333333}`",
                          note="math 1.800, code -0.250, science 1.333; other domains than ours"))
    return out


# ---- seed 001: the two heatmaps (Model, Trained on) -> estimated value -----------------------------
SEED_001_MODELS = ("Mistral", "LLaMA-2")  # the seed's row/column order
SEED_001_PANELS = {  # panel -> the heading of its block in the seed text, and its cell lines, verbatim
    "probe": ('**Left Heatmap: "Probe"**', (
        ("Mistral", "Mistral", 0.65, "* **Cell (Mistral Model, Trained On Mistral):** Color is a medium-dark purple. "
                                     "Estimated value: **~0.65**."),
        ("Mistral", "LLaMA-2", 0.78, "* **Cell (Mistral Model, Trained On LLaMA-2):** Color is bright orange-red. "
                                     "Estimated value: **~0.78**."),
        ("LLaMA-2", "Mistral", 0.75, "* **Cell (LLaMA-2 Model, Trained On Mistral):** Color is a bright red-pink. "
                                     "Estimated value: **~0.75**."),
        ("LLaMA-2", "LLaMA-2", 0.52, "* **Cell (LLaMA-2 Model, Trained On LLaMA-2):** Color is very dark "
                                     "purple/black. Estimated value: **~0.52**."))),
    "lora": ('**Right Heatmap: "LoRA + Prompt"**', (
        ("Mistral", "Mistral", 0.68, "* **Cell (Mistral Model, Trained On Mistral):** Color is dark purple. "
                                     "Estimated value: **~0.68**."),
        ("Mistral", "LLaMA-2", 0.79, "* **Cell (Mistral Model, Trained On LLaMA-2):** Color is bright orange-red. "
                                     "Estimated value: **~0.79**."),
        ("LLaMA-2", "Mistral", 0.67, "* **Cell (LLaMA-2 Model, Trained On Mistral):** Color is dark purple. "
                                     "Estimated value: **~0.67**."),
        ("LLaMA-2", "LLaMA-2", 0.76, "* **Cell (LLaMA-2 Model, Trained On LLaMA-2):** Color is bright red-pink. "
                                     "Estimated value: **~0.76**."))),
}
SEED_001_NAMES = {"probe": "Probe", "lora": "LoRA + Prompt"}


def seed_001_key(panel: str, model: str, trained_on: str) -> str:
    return f"001.{panel}.{model}.{trained_on}"


def seed_001_roles(models: Iterable[str]) -> tuple[dict[str, str], str]:
    """Which of our two models plays the seed's Mistral and which its LLaMA-2, and why: the
    Llama-architecture one (SmolLM2 is one) stands for LLaMA-2. ({}, reason) unless two models."""
    from transferlab.models import BUILTIN_MODELS

    names = sorted(set(models))
    if len(names) != 2:
        return {}, f"the seed compares two models, this run has {len(names)}"
    llama = [m for m in names if getattr(BUILTIN_MODELS.get(m), "family", "") == "llama" or "llama" in m.lower()]
    if len(llama) == 1:
        other = next(m for m in names if m != llama[0])
        return {other: "Mistral", llama[0]: "LLaMA-2"}, f"{llama[0]} (Llama architecture) in LLaMA-2's place"
    return dict(zip(names, SEED_001_MODELS)), "roles by name order (not exactly one Llama-architecture model)"


def seed_001_rows(panel: str, cells: Iterable[tuple[str, str, Ours]]) -> list[tuple[str, Ours]]:
    """(key, ours) rows for one seed-001 panel from our (model, trained-on model, value) cells."""
    cells = list(cells)
    roles, why = seed_001_roles([m for m, _, _ in cells] + [t for _, t, _ in cells])
    out = []
    for model, trained_on, ours in cells:
        if model in roles and trained_on in roles:
            detail = f"{model} <- {trained_on}; {why}" + (f"; {ours.detail}" if ours.detail else "")
            out.append((seed_001_key(panel, roles[model], roles[trained_on]),
                        Ours(ours.value, ours.ci_low, ours.ci_high, detail)))
    order = [seed_001_key(panel, m, t) for m in SEED_001_MODELS for t in SEED_001_MODELS]
    return sorted(out, key=lambda row: order.index(row[0]))


def _seed_001_numbers() -> list[SeedNumber]:
    out = []
    for panel, (heading, cells) in SEED_001_PANELS.items():
        for model, trained_on, value, line in cells:
            out.append(SeedNumber(
                seed_001_key(panel, model, trained_on), "001",
                f"{SEED_001_NAMES[panel]} panel: {model} model, trained on {trained_on}", value, line,
                derived=f"under {heading}",
                note="an estimate read off the colour scale" + (", same model" if model == trained_on else "")))
    return out


# ---- seed 002: the hypothetical transfer-efficiency matrix -------------------------------------------
SEED_002_DOMAINS = ("Math", "Code", "Physics", "Logic")
SEED_002_MATRIX = (  # rows = source, columns = target, None = the diagonal; the proposal's lines, verbatim
    ("Source    Math    -     70%     80%      60%", (None, 0.70, 0.80, 0.60)),
    ("Domain    Code   50%     -      40%      55%", (0.50, None, 0.40, 0.55)),
    ("         Physics 75%    35%      -       50%", (0.75, 0.35, None, 0.50)),
    ("          Logic  45%    50%     45%       -", (0.45, 0.50, 0.45, None)),
)
# Our task domains that stand for the proposal's (its Physics datasets are SciQ and ARC: science).
SEED_002_DOMAIN_OF = {"math": "Math", "code": "Code", "physics": "Physics", "science": "Physics", "logic": "Logic"}
HYPOTHETICAL = "HYPOTHETICAL: the proposal's expected value, nothing was measured"


def _seed_002_numbers() -> list[SeedNumber]:
    out, values = [], []
    for source, (line, row) in zip(SEED_002_DOMAINS, SEED_002_MATRIX):
        for target, value in zip(SEED_002_DOMAINS, row):
            if value is None:
                continue
            values.append(value)
            out.append(SeedNumber(f"002.efficiency.{source}.{target}", "002",
                                  f"transfer efficiency {source} -> {target} (transfer / direct score)", value, line,
                                  note=HYPOTHETICAL))
    out.append(SeedNumber("002.efficiency.mean", "002", "transfer efficiency, mean over off-diagonal cells",
                          round(sum(values) / len(values), 4), "Values = Transfer Efficiency (% of direct training "
                          "performance)", derived=f"mean of the {len(values)} off-diagonal cells of the matrix",
                          note=HYPOTHETICAL))
    return out


# ---- seed 003: the expected-results table ----------------------------------------------------------
SEED_003_MODELS = {"llama2_13b": "Llama-2-13B", "qwen3_4b": "Qwen3-4B"}
SEED_003_ROWS = (  # (quantity key, quantity, the table's line, Llama-2-13B, Qwen3-4B)
    ("mean_cross_accuracy", "mean cross-dataset accuracy (probe on A, tested on B != A)",
     "| Mean cross-dataset accuracy | 70% | **84.3%** | +14.3% |", 0.70, 0.843),
    ("share_above_80", "share of probes above 80 % recovered accuracy",
     "| Probes >80% recovered | 36% | **70%** | +34% |", 0.36, 0.70),
    ("best_probe", "best probe's recovered accuracy over the other datasets",
     "| Best probe (ag_news) | 92.8% | **94.3%** | +1.5% |", 0.928, 0.943),
)


def _seed_003_numbers() -> list[SeedNumber]:
    out = []
    for key, quantity, line, *values in SEED_003_ROWS:
        for (model_key, model), value in zip(SEED_003_MODELS.items(), values):
            out.append(SeedNumber(f"003.{key}.{model_key}", "003", f"{quantity} ({model})", value, line,
                                  note="its best probe is trained on ag_news" if key == "best_probe" else ""))
    return out


# ---- seed 004: the abstract's strongest case -------------------------------------------------------
SEED_004_QUOTE = ("an instruction-tuned adapter substantially improves off-target NM-based numeric benchmark "
                  "performance from 0.133 to 0.632 while not improving verifiable instruction following on IFEval "
                  "(ILA: 0.313 to 0.271; PLA: 0.250 to 0.143; values rounded to three decimals)")
SEED_004_PAIRS = {  # quantity key -> (what it scores, base, adapter)
    "numeric": ("numeric benchmark score (off-label)", 0.133, 0.632),
    "ila": ("IFEval instruction-level accuracy, ILA (on-label)", 0.313, 0.271),
    "pla": ("IFEval prompt-level accuracy, PLA (on-label)", 0.250, 0.143),
}


def _seed_004_numbers() -> list[SeedNumber]:
    out = []
    for key, (what, base, adapter) in SEED_004_PAIRS.items():
        out += [SeedNumber(f"004.{key}.base", "004", f"{what}: base model", base, SEED_004_QUOTE),
                SeedNumber(f"004.{key}.adapter", "004", f"{what}: instruction-tuned adapter", adapter, SEED_004_QUOTE),
                SeedNumber(f"004.{key}.gain", "004", f"{what}: adapter - base", round(adapter - base, 3),
                           SEED_004_QUOTE, derived=f"{adapter:.3f} - {base:.3f}")]
    return out


NUMBERS: dict[str, SeedNumber] = {n.key: n for n in (*_seed_000_numbers(), *_seed_001_numbers(),
                                                     *_seed_002_numbers(), *_seed_003_numbers(),
                                                     *_seed_004_numbers())}

COLUMNS = ("seed", "quantity", "ours", "ours_ci_low", "ours_ci_high", "ours_detail", "seed_value", "seed_quote",
           "seed_derived", "note", "seed_setup", "our_setup", "key")


def comparison_table(rows: Iterable[tuple[str, Ours]], our_setup: str) -> pd.DataFrame:
    """One row per (seed number, our analogue), in the order given. An unknown key is a bug in
    the study that names it, so it raises KeyError rather than printing a row without a seed."""
    records = []
    for key, ours in rows:
        number = NUMBERS[key]
        records.append({"seed": number.seed, "quantity": number.quantity, "ours": ours.value,
                        "ours_ci_low": ours.ci_low, "ours_ci_high": ours.ci_high, "ours_detail": ours.detail,
                        "seed_value": number.value, "seed_quote": number.quote, "seed_derived": number.derived,
                        "note": number.note, "seed_setup": SEEDS[number.seed].setup, "our_setup": our_setup,
                        "key": key})
    return pd.DataFrame(records, columns=list(COLUMNS))


def _number(value: float, low: float = math.nan, high: float = math.nan) -> str:
    if value is None or pd.isna(value):
        return "NA"
    text = f"{value:.3f}"
    return text + (f" [{low:.3f}, {high:.3f}]" if not (pd.isna(low) or pd.isna(high)) else "")


def comparison_markdown(frame: pd.DataFrame, title: str = "## Compared with the seed") -> list[str]:
    """The summary.md section: the table, then each seed's setup beside ours and its citation."""
    lines = [title, ""]
    if frame.empty:
        return lines + ["No number of a seed has an analogue in this run.", ""]
    lines += ["Our number with its 95% CI (NA where undefined, with the reason) beside the seed's published one. "
              "The setups differ (below), so these are reference points, not replications. "
              "Tidy copy: `tables/seed_comparison.csv`.", "",
              "| seed | quantity | ours [95% CI] | which / why | seed's number | note |", "|---|---|---|---|---|---|"]
    for r in frame.itertuples():
        seed_text = "NA" if pd.isna(r.seed_value) else f"{r.seed_value:.3f}"
        if r.seed_derived:
            seed_text += f" ({r.seed_derived})"
        note = r.note.replace("|", "/")
        lines.append(f"| {r.seed} | {r.quantity} | {_number(r.ours, r.ours_ci_low, r.ours_ci_high)} | "
                     f"{str(r.ours_detail).replace('|', '/')} | {seed_text} | {note} |")
    lines += ["", "Setups:", ""]
    for seed in dict.fromkeys(frame["seed"]):
        s = SEEDS[seed]
        lines.append(f"- seed {seed} ({s.title}; {s.citation}): {s.setup}.")
    lines += [f"- ours: {frame['our_setup'].iloc[0]}.", ""]
    return lines


def write_comparison(frame: pd.DataFrame, tables: Path) -> Path:
    """tables/seed_comparison.csv, atomically."""
    from transferlab.tidy import write_csv

    return write_csv(frame, tables / "seed_comparison.csv")
