"""Hub tasks: each loads offline from a hub-format cache, scores right and wrong answers, and fails in one line.

The cache is written by `hub_fixtures` as the hub leaves it (`datasets--org--name/refs/main`,
`snapshots/<rev>/README.md` declaring configs and splits, parquet or JSON-lines files linked
into `blobs/`), with HF_HUB_OFFLINE=1, so nothing here can reach the network.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hub_fixtures import REVISION, gsm8k, write_hub_cache, write_repo
from typer.testing import CliRunner

from transferlab.errors import TransferlabError
from transferlab.sandbox import isolation
from transferlab.tasks import get_task, score_choices, task_names
from transferlab.tasks.hub import FACTORIES, HubTask, cache
from transferlab.tasks.hub.math_answers import answer_of, boxed_answer, equivalent
from transferlab.tasks.hub.probe_sets import PROBE_SETS
from transferlab.tasks.hub.source import HubDataError, usable_snapshot

needs_sandbox = pytest.mark.skipif(not isolation().isolated, reason=f"no sandbox here: {isolation().problem}")
SUBJECTS = sorted(n for n in FACTORIES if n.startswith("hub-mmlu-"))
# Every task but the 57 MMLU subjects (one class, one loader), and three of those.
LOADED = sorted(n for n in FACTORIES if not n.startswith("hub-mmlu-")) + [
    "hub-mmlu-anatomy", "hub-mmlu-high-school-physics", "hub-mmlu-professional-law"]

PUBLISHED = {
    "hub-gsm8k": {"train": 7473, "test": 1319}, "hub-math": {"train": 7500, "test": 5000},
    "hub-math500": {"test": 500}, "hub-mbpp": {"train": 384, "dev": 90, "test": 500},
    "hub-humaneval": {"test": 164}, "hub-arc_easy": {"train": 2251, "dev": 570, "test": 2376},
    "hub-arc_challenge": {"train": 1119, "dev": 299, "test": 1172},
    "hub-openbookqa": {"train": 4957, "dev": 500, "test": 500}, "hub-commonsense_qa": {"train": 9741, "test": 1221},
    "hub-sciq": {"train": 11679, "dev": 1000, "test": 1000}, "hub-piqa": {"train": 16113, "test": 1838},
    "hub-boolq": {"train": 9427, "test": 3270}, "hub-mmlu": {"train": 99842, "dev": 1531, "test": 14042},
    "hub-ifeval": {"train": 29980, "test": 541}, "hub-math-algebra": {"train": 1744, "test": 1187},
}


@pytest.fixture(scope="module")
def hub_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_hub_cache(tmp_path_factory.mktemp("hf_home"))


def use_home(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def cached(hub_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    use_home(monkeypatch, hub_home)
    return hub_home


@pytest.fixture
def empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    use_home(monkeypatch, tmp_path / "hf_home")
    return tmp_path / "hf_home"


def fresh(name: str) -> HubTask:
    return FACTORIES[name]()  # not the registry's instance, which keeps the rows it loaded


# ---- names and the interface dry runs read ----------------------------------------------------------
def test_every_hub_task_is_registered_with_the_interface_and_downloads_nothing(empty: Path):
    names = set(task_names())
    assert len(FACTORIES) == 78
    for name, factory in FACTORIES.items():
        task = get_task(name)
        assert isinstance(task, HubTask) and name in names and name.startswith("hub-")
        assert isinstance(task.hub_id, str) and "/" in task.hub_id
        assert task.hub_config is None or isinstance(task.hub_config, str)
        assert task.split_sizes and all(isinstance(n, int) and n > 0 for n in task.split_sizes.values())
        assert "test" in task.split_sizes
        if task.offline_twin is not None:  # the offline subset it mirrors, never a hub task
            assert task.offline_twin in names and not isinstance(get_task(task.offline_twin), HubTask)
            assert task.offline_twin != name
        assert task.availability().startswith(f"download: {cache.download_cli()} download --repo-type dataset ")
        assert task.hub_id in task.availability()
    assert not empty.exists(), "getting tasks and asking for availability must write nothing"


def test_published_split_sizes():
    for name, sizes in PUBLISHED.items():
        assert fresh(name).split_sizes == sizes, name
    subjects = [fresh(n).split_sizes for n in SUBJECTS]
    assert len(subjects) == 57
    assert sum(s["test"] for s in subjects) == 14042 and sum(s["dev"] for s in subjects) == 1531
    assert fresh("hub-math").hub_config is None and len(fresh("hub-math").hub_configs) == 7
    assert (fresh("hub-gsm8k").hub_id, fresh("hub-gsm8k").hub_config) == ("openai/gsm8k", "main")
    assert PROBE_SETS["hub-imdb"].split_sizes["test"] == 25000 and PROBE_SETS["hub-truthful_qa"].split == "validation"


# ---- loading from the hub cache -----------------------------------------------------------------------
@pytest.mark.parametrize("name", LOADED)
def test_every_hub_task_loads_offline_from_a_hub_format_cache(name: str, cached: Path):
    task = fresh(name)
    assert task.availability() == "cached"
    roles = {role: {s.split for s in task.sources if s.role == role} for role in task.split_sizes}
    for role, hub_splits in roles.items():
        examples = task.examples(role)
        assert examples, f"{name}: no {role} examples"
        assert {e.meta["hub_split"] for e in examples} <= hub_splits
    for e in task.examples("dev"):  # dev is a hub validation split, or carved from train
        assert e.meta["hub_split"] in {s.split for s in task.sources if s.role in ("dev", "train")}
    for e in task.examples("test"):
        if task.output_type == "multiple_choice":
            assert e.choices and e.target == e.choices[e.answer]
        else:
            assert e.prompt and e.meta
    summary = task.summary()
    assert summary["data"]["hub_id"] == task.hub_id and summary["data"]["offline_twin"] == task.offline_twin
    assert set(summary["data"]["revisions"].values()) == {REVISION}


def test_every_mmlu_subject_config_is_in_the_cache_layout(cached: Path):
    for name in SUBJECTS:
        task = fresh(name)
        assert usable_snapshot(task.hub_id, task.hub_config) is not None, name
        assert [s.split for s in task.sources] == ["validation", "test"]


def test_dev_is_carved_from_train_by_hash_and_stays_put(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    rows = [{"question": f"Q{i}?", "answer": f"Work.\n#### {i}"} for i in range(400)]
    write_repo(tmp_path, "openai/gsm8k", {"main": {"train": rows, "test": gsm8k("test")}})
    use_home(monkeypatch, tmp_path)
    task = fresh("hub-gsm8k")
    train, dev, test = (task.examples(s) for s in ("train", "dev", "test"))
    assert len(train) + len(dev) == 400 and 5 <= len(dev) <= 40 and len(test) == 6
    assert {e.meta["hub_split"] for e in dev} == {"train"}
    assert not {e.uid for e in dev} & {e.uid for e in train}
    again = fresh("hub-gsm8k")
    assert [e.uid for e in again.examples("dev")] == [e.uid for e in dev]
    assert again.fingerprint() == task.fingerprint()


# ---- scoring: a right and a wrong answer per family ----------------------------------------------------
def test_multiple_choice_answers_point_at_the_right_choice(cached: Path):
    right = {"hub-arc_easy": "carbon dioxide", "hub-openbookqa": "light", "hub-commonsense_qa": "C",
             "hub-sciq": "water", "hub-mmlu": "B", "hub-mmlu-anatomy": "B"}
    for name, text in right.items():
        e = fresh(name).examples("test")[0]
        assert e.choices[e.answer] == text, name
        good = [0.0] * len(e.choices)
        good[e.answer] = 1.0
        bad = [0.0] * len(e.choices)
        bad[(e.answer + 1) % len(e.choices)] = 1.0
        assert score_choices(e, good)["acc"] == 1.0 and score_choices(e, bad)["acc"] == 0.0
    boolq = {e.prompt: e for e in fresh("hub-boolq").examples("test")}
    assert boolq["The number 4.\nQuestion: is 4 an even number?\nAnswer:"].target == "yes"
    assert fresh("hub-arc_easy").examples("test")[0].prompt.startswith("Question: Which gas")
    mmlu = fresh("hub-mmlu-anatomy").examples("test")[0].prompt
    assert mmlu.startswith("The following are multiple choice questions (with answers) about anatomy.")
    assert mmlu.endswith("A. 3\nB. 4\nC. 5\nD. 6\nAnswer:")


def test_gsm8k_scores_the_final_number(cached: Path):
    e = next(e for e in fresh("hub-gsm8k").examples("test") if "sold 48 clips" in e.prompt)
    assert e.prompt.startswith("Question: ") and e.prompt.endswith("\nAnswer:") and "<<" not in e.target
    assert e.meta["answer"] == "72"
    task = fresh("hub-gsm8k")
    assert task.score(e, "She sold 24 in May.\n#### 72") == {"exact_match_strict": 1.0, "exact_match_flexible": 1.0}
    assert task.score(e, "#### 71") == {"exact_match_strict": 0.0, "exact_match_flexible": 0.0}


def test_math_scores_the_boxed_answer_up_to_equivalence(cached: Path):
    task = fresh("hub-math-algebra")
    e = next(e for e in task.examples("test") if "1/3" in e.prompt)
    assert e.meta["answer"] == "\\frac{2}{3}" and e.prompt.startswith("Problem: ")
    assert task.score(e, "So the answer is $\\boxed{\\dfrac23}$.")["exact_match"] == 1.0
    assert task.score(e, "So the answer is $\\boxed{0.5}$.")["exact_match"] == 0.0
    m500 = fresh("hub-math500")
    e = next(e for e in m500.examples("test") if e.meta["answer"] == "\\frac{3}{4}")
    assert m500.score(e, "It is $\\frac{3}{4}$")["exact_match"] == 1.0  # no box: lm-eval's $...$ rule
    assert m500.score(e, "\\boxed{\\frac{1}{4}}")["exact_match"] == 0.0


def test_math_answer_normalisation():
    assert boxed_answer("a \\boxed{\\frac{1}{\\sqrt{2}}} b \\boxed{7}") == "7"
    assert boxed_answer("first \\boxed{\\frac{1}{\\sqrt{2}}}") == "\\frac{1}{\\sqrt{2}}"
    assert boxed_answer("no box") is None and answer_of("  42 ") == "42"
    for a, b in [("0.5", "\\frac{1}{2}"), ("3/4", "\\frac{3}{4}"), ("\\sqrt2", "\\sqrt{2}"), ("x = 5", "5"),
                 ("10\\%", "10"), ("90^\\circ", "90"), ("\\left( 1,2 \\right)", "(1,2)"), ("\\tfrac12", "\\frac{1}{2}"),
                 ("5 \\text{ cm}", "5")]:
        assert equivalent(a, b), (a, b)
    assert not equivalent("2", "3") and not equivalent(None, "3") and not equivalent("\\frac{1}{3}", "\\frac{1}{2}")


@needs_sandbox
def test_mbpp_pass_at_1_runs_its_tests_in_the_sandbox(cached: Path):
    task = fresh("hub-mbpp")
    examples = task.examples("test")
    assert {e.meta["entry_point"] for e in examples} == {"add", "circle_area", "reverse_list"}
    assert examples[0].prompt.startswith("You are an expert Python programmer, and here is your task:\n")
    right = [e.target for e in examples]  # the reference code, fenced: setup code (import math) and helpers
    wrong = [f"```python\n{e.meta['reference'].replace('return', 'return 1 +', 1)}\n```" for e in examples]
    assert task.score_many(examples, right) == [{"pass@1": 1.0}] * 3
    assert task.score_many(examples, wrong) == [{"pass@1": 0.0}] * 3


@needs_sandbox
def test_humaneval_from_the_hub_scores_like_the_offline_task(cached: Path):
    task = fresh("hub-humaneval")
    (e,) = task.examples("test")
    assert task.score(e, e.target) == {"pass@1": 1.0}
    assert task.score(e, "```python\ndef add(a, b):\n    return a - b\n```") == {"pass@1": 0.0}


def test_ifeval_tests_with_its_checkers_and_trains_on_answers(cached: Path):
    task = fresh("hub-ifeval")
    test = {e.meta["key"]: e for e in task.examples("test")}
    assert len(test) == 4 and not task.examples("dev")
    assert task.score(test[1000], "the sea is wide and blue")["prompt_strict"] == 1.0
    assert task.score(test[1000], "the sea, wide and blue")["prompt_strict"] == 0.0
    both = task.score(test[1005], "cats are small and soft Animals")
    assert both["inst_strict"] == 0.5 and task.example_weight(test[1005], "inst_strict") == 2.0
    assert all(e.target == "quiet pond at dusk" for e in task.examples("train"))


# ---- bad input: one line, naming dataset, split and field ---------------------------------------------
def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert isinstance(err.value, TransferlabError) and "\n" not in message
    return message


def test_missing_data_offline_fails_before_any_work_naming_the_dataset_and_the_fix(empty: Path):
    with pytest.raises(HubDataError) as err:
        fresh("hub-gsm8k").examples("test")
    message = one_line(err)
    assert "openai/gsm8k (config main, split" in message and "HF_HUB_OFFLINE" in message
    assert cache.download_command("openai/gsm8k") in message
    assert not (empty / "hub").exists(), "nothing was downloaded or written"
    with pytest.raises(HubDataError, match="allenai/tulu-3-sft-personas-instruction-following"):
        fresh("hub-ifeval").all_examples()


def test_no_network_and_no_copy_fails_at_once_naming_the_dataset(empty: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    for proxy in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: as good as no network
    with pytest.raises(HubDataError) as err:
        fresh("hub-arc_easy").examples("test")
    message = one_line(err)
    assert "cannot reach the hub (http://127.0.0.1:9)" in message and "allenai/ai2_arc (config ARC-Easy" in message
    assert cache.download_command("allenai/ai2_arc") in message and not empty.exists()


def test_a_partial_snapshot_is_not_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    snapshot = write_repo(tmp_path, "openai/gsm8k", {"main": {"train": gsm8k("train"), "test": gsm8k("test")}})
    (snapshot / "main" / "test-00000-of-00001.parquet").unlink()  # an online load of train only, say
    use_home(monkeypatch, tmp_path)
    task = fresh("hub-gsm8k")
    assert task.availability() == f"download: {cache.download_command('openai/gsm8k')}"
    with pytest.raises(HubDataError, match="not in the local Hugging Face cache"):
        task.all_examples()


@pytest.mark.parametrize("configs, says", [
    ({"main": {"train": gsm8k("train"), "testing": gsm8k("test")}},
     "openai/gsm8k (config main) has no split 'test' (it has: train, testing)"),
    ({"default": {"train": gsm8k("train"), "test": gsm8k("test")}},
     "openai/gsm8k has no config 'main' (it has: default)"),
    ({"main": {s: [{"question": "Q?", "solution": "#### 1"}] for s in ("train", "test")}},
     "openai/gsm8k (config main, split train) has no column 'answer' (columns: question, solution)"),
    ({"main": {"train": gsm8k("train"), "test": [{"question": "Q?", "solution": "#### 1"}]}},
     "openai/gsm8k (config main, split train): cannot read it: CastError: Couldn't cast"),
    ({"main": {"train": gsm8k("train"), "test": [{"question": "Q?", "answer": "It is 4."}]}},
     "openai/gsm8k (config main, split test), row 0: field 'answer' has no '#### <number>' line"),
], ids=["renamed split", "renamed config", "missing column", "one split's columns differ", "broken answer"])
def test_a_dataset_that_changed_shape_is_a_clear_error(configs, says, tmp_path, monkeypatch):
    write_repo(tmp_path, "openai/gsm8k", configs)
    use_home(monkeypatch, tmp_path)
    with pytest.raises(HubDataError) as err:
        fresh("hub-gsm8k").all_examples()
    message = one_line(err)
    assert says in message and "changed shape" in message


@pytest.mark.parametrize("row, says", [
    ({"id": "x", "question": "Q?", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "E"},
     "row 0: field 'answerKey' is 'E', not one of the choice labels A, B"),
    ({"id": "x", "question": "Q?", "choices": {"text": ["a", "b"]}, "answerKey": "A"}, "row 0: has no field 'label'"),
], ids=["answer not a choice", "nested field missing"])
def test_a_multiple_choice_row_that_changed_shape_never_scores_zero(row, says, tmp_path, monkeypatch):
    write_repo(tmp_path, "allenai/ai2_arc", {"ARC-Easy": {s: [row] for s in ("train", "validation", "test")}})
    use_home(monkeypatch, tmp_path)
    with pytest.raises(HubDataError) as err:
        fresh("hub-arc_easy").all_examples()
    assert "allenai/ai2_arc (config ARC-Easy, split" in one_line(err) and says in one_line(err)


# ---- the probe study's hub datasets and `tasks list` --------------------------------------------------
@pytest.mark.parametrize("name", sorted(PROBE_SETS))
def test_every_hub_probe_dataset_loads_from_the_hub_cache(name: str, cached: Path):
    from transferlab.probes.datasets import family_of, load_dataset
    from transferlab.probes.hub import DLK_SOURCES, REPE_SOURCES

    entry = PROBE_SETS[name]
    assert entry.availability() == "cached" and family_of(name) == entry.family
    plain = {**DLK_SOURCES, **REPE_SOURCES}[entry.base]
    assert (plain.hub, plain.split) == (entry.hub_id, entry.split)  # the same data as the plain name
    hub = load_dataset(name)
    assert hub.name == name and hub.family == entry.family and {r.label for r in hub.rows} == {0, 1}
    assert hub.rows == load_dataset(entry.base).rows  # the plain name reads the same cache, same groups
    with pytest.raises(TransferlabError, match=f"name it {entry.base}"):
        load_dataset(name, source="local.parquet")


def test_figure_r4_finds_the_hub_truthful_qa():
    from transferlab.probes.truthfulqa import truthful_qa_name

    assert truthful_qa_name(["cities", "hub-truthful_qa"]) == "hub-truthful_qa"


def test_tasks_list_shows_hub_availability_and_download_commands(hub_home: Path, tmp_path: Path):
    from transferlab.cli import app

    runner = CliRunner()
    env = {"HF_HOME": str(hub_home), "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    listed = runner.invoke(app, ["tasks", "list", "--domain", "code", "--tsv"], env=env)
    assert listed.exit_code == 0
    rows = {line.split()[0]: line.rstrip() for line in listed.output.splitlines()[1:]}
    assert rows["hub-mbpp"].endswith("hub, cached") and rows["humaneval"].endswith("offline")
    missing = runner.invoke(app, ["tasks", "list", "--domain", "code"], env={**env, "HF_HOME": str(tmp_path)})
    assert missing.exit_code == 0 and "hub, needs download" in missing.output
    assert f"needs download: {cache.download_command('google-research-datasets/mbpp')}" in missing.output
