"""MMLU from the hub (cais/mmlu): all 57 subjects with the auxiliary train set, and each subject alone.

`hub-mmlu` reads the `all` config: 99,842 auxiliary_train questions (ARC, OBQA, RACE and
MCTest in MMLU's format) as train, the 1,531 validation questions as dev and the 14,042
test questions as test. `hub-mmlu-<subject>` reads a subject's config (its validation
questions as dev, its test questions as test; MMLU has no per-subject train set) and is the
full-size twin of the offline `mmlu-<subject>`. The prompt is lm-eval's (`mmlu/default`):
the subject line, the question, lettered options and "Answer:", scored over the letters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from transferlab.tasks.base import Example
from transferlab.tasks.hub.source import HubSplit
from transferlab.tasks.hub.task import HubTask, splits
from transferlab.tasks.mmlu import DOMAIN_OF, SUBJECTS, subject_task_name

HUB_ID = "cais/mmlu"
COLUMNS = ("question", "subject", "choices", "answer")
LETTERS = "ABCDEFGHIJ"

# Published rows per subject config: (test, validation); every subject also has 5 `dev` questions.
_SIZES = """
abstract_algebra 100 11|anatomy 135 14|astronomy 152 16|business_ethics 100 11|clinical_knowledge 265 29
college_biology 144 16|college_chemistry 100 8|college_computer_science 100 11|college_mathematics 100 11
college_medicine 173 22|college_physics 102 11|computer_security 100 11|conceptual_physics 235 26
econometrics 114 12|electrical_engineering 145 16|elementary_mathematics 378 41|formal_logic 126 14
global_facts 100 10|high_school_biology 310 32|high_school_chemistry 203 22|high_school_computer_science 100 9
high_school_european_history 165 18|high_school_geography 198 22|high_school_government_and_politics 193 21
high_school_macroeconomics 390 43|high_school_mathematics 270 29|high_school_microeconomics 238 26
high_school_physics 151 17|high_school_psychology 545 60|high_school_statistics 216 23
high_school_us_history 204 22|high_school_world_history 237 26|human_aging 223 23|human_sexuality 131 12
international_law 121 13|jurisprudence 108 11|logical_fallacies 163 18|machine_learning 112 11|management 103 11
marketing 234 25|medical_genetics 100 11|miscellaneous 783 86|moral_disputes 346 38|moral_scenarios 895 100
nutrition 306 33|philosophy 311 34|prehistory 324 35|professional_accounting 282 31|professional_law 1534 170
professional_medicine 272 31|professional_psychology 612 69|public_relations 110 12|security_studies 245 27
sociology 201 22|us_foreign_policy 100 11|virology 166 18|world_religions 171 19
"""
SUBJECT_SIZES: dict[str, tuple[int, int]] = {
    name: (int(test), int(validation))
    for name, test, validation in (entry.split() for entry in _SIZES.replace("\n", "|").split("|") if entry.strip())
}


class HubMMLUTask(HubTask):
    """MMLU questions scored by the log-likelihood of each option's letter, as lm-eval does."""

    output_type = "multiple_choice"
    metrics = ("acc", "acc_norm")
    primary_metric = "acc"
    max_new_tokens = 8

    def example(self, row: Mapping[str, Any], source: HubSplit) -> Example:
        options = [str(o) for o in row["choices"]]
        answer = int(row["answer"])
        if not 2 <= len(options) <= len(LETTERS) or not 0 <= answer < len(options):
            raise ValueError(f"field 'answer' is {answer} for {len(options)} choices")
        subject = str(row["subject"] or "").strip()
        about = f" about {subject.replace('_', ' ')}" if subject else ""
        letters = list(LETTERS[: len(options)])
        lines = [f"The following are multiple choice questions (with answers){about}.", "",
                 str(row["question"]).strip()]
        lines += [f"{letter}. {option}" for letter, option in zip(letters, options)]
        prompt = "\n".join(lines) + "\nAnswer:"
        return Example(uid="", prompt=prompt, target=letters[answer], choices=tuple(letters), answer=answer,
                       meta={"subject": subject})


def factories() -> dict[str, Callable[[], HubTask]]:
    if set(SUBJECT_SIZES) != set(SUBJECTS):  # both tables name MMLU's 57 subjects
        raise AssertionError("tasks.hub.mmlu and tasks.mmlu disagree on MMLU's subjects")
    out: dict[str, Callable[[], HubTask]] = {"hub-mmlu": lambda: HubMMLUTask(
        "hub-mmlu", sources=splits(HUB_ID, "all", COLUMNS, train=("auxiliary_train", 99842),
                                   dev=("validation", 1531), test=("test", 14042)),
        domain="general", offline_twin="mmlu",
        description="MMLU from the hub (cais/mmlu, all): 99,842 auxiliary train / 1,531 dev / 14,042 test")}
    for subject, (test, validation) in SUBJECT_SIZES.items():
        twin = subject_task_name(subject)
        out[f"hub-{twin}"] = lambda s=subject, t=test, v=validation, twin=twin: HubMMLUTask(
            f"hub-{twin}", sources=splits(HUB_ID, s, COLUMNS, dev=("validation", v), test=("test", t)),
            domain=DOMAIN_OF[s], offline_twin=twin,
            description=f"MMLU {s.replace('_', ' ')} from the hub (cais/mmlu, {s}): {v} dev / {t} test")
    return out
