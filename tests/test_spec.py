"""Spec parsing: structure, defaults and errors that point at file, line and field."""

from __future__ import annotations

import pytest

from transferlab.transfer.spec import SpecError, parse_spec

GOOD = """\
name: s
models: [smollm2-135m]
tasks: [cities, larger_than]
learners:
  - name: lora
    type: lora
    rank: 4
    learning_rate: 2e-4
    target_modules: [q_proj, v_proj]
seeds: [0, 1]
budgets: {train_examples: 10, eval_examples: 5}
"""


def test_pairs_for_sequential_and_joint():
    spec = parse_spec(GOOD + "conditions: [baseline, direct, sequential, joint]\npairs: [[cities, larger_than]]\n")
    assert spec.pairs == (("cities", "larger_than"),) and "joint" in spec.conditions


def test_labels_similarity_and_shared_artifacts():
    spec = parse_spec(GOOD + "labels: {cities: geography}\nsimilarity: [vocabulary]\nartifacts: shared\n"
                             "study: transfer\n", "s.yaml")
    assert spec.labels == {"cities": "geography"} and spec.similarity == ("vocabulary",)
    assert spec.artifacts == "shared"
    assert parse_spec(GOOD + "similarity: []\n", "s.yaml").similarity == ()


def test_a_training_only_source_is_fine_but_not_as_a_target():
    from transferlab.errors import TransferlabError
    from transferlab.transfer.plan import plan_transfer

    source_only = parse_spec(GOOD.replace("tasks: [cities, larger_than]",
                                          "tasks: [cities]\nsources: [alpaca_gpt4]"), "s.yaml")
    plan = plan_transfer(source_only)
    assert plan.sources == ["alpaca_gpt4"] and plan.count("train") == 2  # one per seed
    assert {j.params["label"] for j in plan.jobs if j.kind == "train"} == {"instruction_following"}
    as_target = parse_spec(GOOD.replace("tasks: [cities, larger_than]", "tasks: [alpaca_gpt4]"), "s.yaml")
    with pytest.raises(TransferlabError, match="task 'alpaca_gpt4' has no test examples after splitting"):
        plan_transfer(as_target)


def test_grpo_learner_and_family_default_learning_rates():
    from transferlab.learn.defaults import default_learning_rate
    from transferlab.errors import TransferlabError
    from transferlab.transfer.plan import plan_transfer
    from transferlab.learn.grpo import GRPOConfig

    text = GRPO_SPEC.format(tasks="[gsm8k]", extra="")
    spec = parse_spec(text, "rl.yaml")
    sft, rl = spec.learners
    assert isinstance(rl.train, GRPOConfig) and rl.train.group_size == 4 and rl.auto_learning_rate
    assert sft.auto_learning_rate
    trains = {j.params["learner"]: j.params["train"] for j in plan_transfer(spec).jobs if j.kind == "train"}
    assert trains["sft"]["learning_rate"] == default_learning_rate("llama", "sft", 576)
    assert trains["rl"]["learning_rate"] == default_learning_rate("llama", "grpo", 576)
    assert trains["rl"]["method"] == "grpo" and trains["sft"]["method"] == "lora"
    pinned = parse_spec(GRPO_SPEC.format(tasks="[gsm8k]", extra="    learning_rate: 1.0e-5\n"), "rl.yaml")
    assert not pinned.learners[1].auto_learning_rate and pinned.learners[1].train.learning_rate == 1e-5
    with pytest.raises(TransferlabError, match="learner 'rl' .grpo. cannot train on 'cities': it is multiple-choice"):
        plan_transfer(parse_spec(GRPO_SPEC.format(tasks="[cities]", extra=""), "rl.yaml"))
    with pytest.raises(SpecError, match=r"rl.yaml:7: learners.1.group_sise: unknown field 'group_sise': did you mean"):
        parse_spec(GRPO_SPEC.format(tasks="[gsm8k]", extra="    group_sise: 4\n"), "rl.yaml")


GRPO_SPEC = """\
models: [smollm2-135m]
tasks: {tasks}
learners:
  - {{name: sft, type: lora, steps: 5}}
  - name: rl
    type: grpo
{extra}    group_size: 4
    steps: 3
"""


def test_good_spec_parses_with_defaults():
    spec = parse_spec(GOOD, "s.yaml")
    assert spec.tasks == ("cities", "larger_than") and spec.sources == spec.tasks
    assert spec.learners[0].train.rank == 4 and spec.learners[0].train.learning_rate == 2e-4
    assert spec.learners[0].train.target_modules == ("q_proj", "v_proj")
    assert spec.budgets.train_examples == 10 and spec.budgets.eval_batch_size == 16
    assert spec.conditions == ("baseline", "transfer", "direct") and spec.seeds == (0, 1)


@pytest.mark.parametrize("text, expected", [
    (GOOD.replace("tasks: [cities", "tasks: [citys"), r"s.yaml:3: tasks.0: unknown task 'citys': did you mean 'cities'"),
    (GOOD.replace("seeds:", "seed:"), r"s.yaml:10: seed: unknown field 'seed': did you mean 'seeds'"),
    (GOOD.replace("    rank: 4", "    rnak: 4"), r"s.yaml:7: learners.0.rnak: unknown field 'rnak': did you mean 'rank'"),
    (GOOD.replace("models: [smollm2-135m]", "models: [smollm-135m]"), r"s.yaml:2: models.0: unknown model"),
    (GOOD.replace("eval_examples: 5", "eval_examples: -5"), r"s.yaml:11: budgets.eval_examples: expected a non-negative"),
    (GOOD + "conditions: [baseline, trnsfer]\n", r"s.yaml:12: conditions.1: unknown condition 'trnsfer'"),
    (GOOD.replace("    rank: 4", "    rank: 0"), r"s.yaml:7: learners.0.rank: rank must be an integer in \[1, 4096\], got 0"),
    ("models: [smollm2-135m]\n", r"missing required field 'tasks'"),
    (GOOD + "conditions: [baseline, sequential]\n", r"s.yaml:12: conditions: sequential and joint cost one training"),
    (GOOD + "conditions: [joint]\npairs: [[cities, citys]]\n", r"s.yaml:13: pairs.0.1: unknown task 'citys'"),
    (GOOD + "conditions: [joint]\npairs: [[cities, cities]]\n", r"s.yaml:13: pairs.0: a pair needs two different"),
    (GOOD + "pairs: [[cities, larger_than]]\n", r"s.yaml:12: pairs: pairs are only used"),
    ("models: [a\n", r"s.yaml:\d+: not valid YAML"),
    (GOOD + "labels: {citys: geography}\n", r"s.yaml:12: labels.citys: 'citys' is not a source: did you mean 'cities'"),
    (GOOD + "similarity: [embeding]\n", r"s.yaml:12: similarity.0: unknown similarity 'embeding': did you mean"),
    (GOOD + "study: probes\n", r"s.yaml:12: study: this parser reads transfer specs"),
])
def test_errors_name_file_line_and_field(text, expected):
    with pytest.raises(SpecError, match=expected):
        parse_spec(text, "s.yaml")


def test_study_kind_picks_the_runner_and_suggests_on_typos(tmp_path):
    from transferlab.errors import TransferlabError
    from transferlab.engine.studies import study_kind

    spec = tmp_path / "s.yaml"
    spec.write_text(GOOD)
    assert study_kind(spec) == "transfer"
    spec.write_text(GOOD + "study: translation\n")
    assert study_kind(spec) == "translation"
    spec.write_text(GOOD + "study: probs\n")
    with pytest.raises(TransferlabError, match=r"study: unknown study kind 'probs': did you mean 'probes'"):
        study_kind(spec)
    with pytest.raises(TransferlabError, match="does not exist"):
        study_kind(tmp_path / "missing.yaml")


def test_a_single_module_name_is_a_one_element_list_and_aliases_within_limits_load():
    text = ("models: [smollm2-135m]\ntasks: [cities]\nlearners:\n  - &base {name: a, target_modules: q_proj, rank: 4}\n"
            "  - {<<: *base, name: b}\n")
    spec = parse_spec(text, "s.yaml")
    assert [l.train.target_modules for l in spec.learners] == [("q_proj",), ("q_proj",)]
    assert [l.train.rank for l in spec.learners] == [4, 4]
