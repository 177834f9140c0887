"""User tasks from YAML over local files and `datasets` sources saved to disk."""

from __future__ import annotations

import json

import pytest

from transferlab.errors import TransferlabError
from transferlab.tasks import get_task
from transferlab.tasks.yaml_task import load_task_file, register_task_file

ROWS = [{"text": f"review {i} {'great' if i % 2 else 'awful'}", "label": i % 2} for i in range(40)]


def write_task(tmp_path, source: str, extra: str = "", name: str = "sentiment-local") -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"""name: {name}
domain: sentiment
source: {source}
prompt: "Review: {{{{ text }}}}\\nPositive or negative?"
choices: [negative, positive]
answer: label
{extra}""")
    return str(path)


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_local_files_in_every_format(tmp_path, fmt):
    import pandas as pd

    frame = pd.DataFrame(ROWS)
    data = tmp_path / f"data.{fmt}"
    {"jsonl": lambda: frame.to_json(data, orient="records", lines=True), "csv": lambda: frame.to_csv(data, index=False),
     "parquet": lambda: frame.to_parquet(data)}[fmt]()
    task = load_task_file(write_task(tmp_path, f"{{path: data.{fmt}}}"))
    examples = task.all_examples()
    assert len(examples) == 40 and examples[1].choices == ("negative", "positive")
    assert examples[1].answer == 1 and examples[1].target == "positive"
    assert "Review: review 1 great" in examples[1].prompt
    assert sum(len(task.examples(s)) for s in ("train", "dev", "test")) == 40


def test_hub_format_dataset_saved_to_disk(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.DatasetDict({"test": datasets.Dataset.from_list(ROWS)}).save_to_disk(str(tmp_path / "saved"))
    name = register_task_file(write_task(tmp_path, "{load_from_disk: saved, split: test}", name="sentiment-disk"))
    assert len(get_task(name).all_examples()) == 40


def test_generate_task_scoring(tmp_path):
    (tmp_path / "qa.jsonl").write_text("\n".join(json.dumps({"q": f"{i}+1", "a": str(i + 1)}) for i in range(10)))
    path = tmp_path / "qa.yaml"
    path.write_text('name: qa\noutput_type: generate\nsource: {path: qa.jsonl}\nprompt: "{{ q }}"\n'
                    'target: "{{ a }}"\nmetrics: [exact_match, numeric, contains]\n')
    task = load_task_file(path)
    e = task.all_examples()[2]
    assert task.score(e, "3") == {"exact_match": 1.0, "numeric": 1.0, "contains": 1.0}
    assert task.score(e, "the answer is 3.") == {"exact_match": 0.0, "numeric": 1.0, "contains": 1.0}


def test_bad_task_files_are_clear(tmp_path):
    with pytest.raises(TransferlabError, match="did you mean 'prompt'"):
        load_task_file(write_task(tmp_path, "{path: x.jsonl}", extra="promt: x\n"))
    with pytest.raises(TransferlabError, match="does not exist"):
        load_task_file(write_task(tmp_path, "{path: missing.jsonl}")).all_examples()
    with pytest.raises(TransferlabError, match="already taken"):
        register_task_file(write_task(tmp_path, "{path: x.jsonl}", name="cities"))


def test_every_task_declares_its_chance_level(tmp_path):
    from tests.toy_tasks import Comparison, Echo
    from transferlab.tasks import get_task

    assert Comparison().chance_level() == 0.5 and Echo().chance_level() == 0.0
    assert get_task("mmlu-math").chance_level() == pytest.approx(0.25)
    data = tmp_path / "d.jsonl"
    data.write_text('{"q": "a?", "label": 0}\n{"q": "b?", "label": 1}\n')
    spec = tmp_path / "t.yaml"
    spec.write_text(f"name: chance-task\nsource: {{path: {data}}}\nprompt: '{{{{ q }}}}'\nchoices: [x, y, z]\n"
                    "answer: label\nchance: 0.4\n")
    from transferlab.tasks.yaml_task import register_task_file

    register_task_file(spec)
    assert get_task("chance-task").chance_level() == 0.4


@pytest.mark.parametrize("template, expected", [
    ("Review: {{ text }}", "Review: great"),
    ("{% for c in choices %}{{ loop.index }}. {{ c }}\n{% endfor %}", "1. no\n2. yes\n"),
    ("{{ text | upper }} {{ text ~ '!' }} {{ '%03d' % n }} {{ '{:,}'.format(1234567) }}", "GREAT great! 007 1,234,567"),
    ("{{ choices | join(' / ') }} {{ text | replace('e', 'E') }} {{ (n * 2) ** 3 }}", "no / yes grEat 2744"),
    ("{% if n > 3 %}big{% else %}small{% endif %} {{ range(3) | list | sum }}", "big 3"),
    ("{{ ('x' * 10) | center(14) }}|{{ text | truncate(9) }}", "  xxxxxxxxxx  |great"),
])
def test_templates_keep_what_tasks_use(template, expected):
    from transferlab.tasks.templates import BoundedTemplate

    row = {"text": "great", "choices": ["no", "yes"], "n": 7}
    assert BoundedTemplate(template, "prompt", "t.yaml").render(row) == expected


@pytest.mark.parametrize("template, problem", [
    ("{{ 'x' * 10**9 }}", "a repetition of 1,000,000,000"),
    ("{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}", "loop steps"),
    ("{% set s = 'x' * 999999 %}{{ s ~ s }}", "a concatenation"),
    ("{{ 10 ** (10 ** 10) }}", "bits"),
    ("{{ 'x' | center(10**9) }}", "an argument of 1,000,000,000"),
    ("{{ '{:>999999999}'.format(1) }}", "a format with a width"),
    ("{{ ('a\\n' * 400000) | indent(1000) }}", "the result of |indent"),
    ("{{ txet }}", "UndefinedError: 'txet' is undefined"),
    ("{{ ''.__class__ }}", "SecurityError"),
])
def test_templates_refuse_what_no_prompt_needs_in_one_line_and_fast(template, problem):
    import time

    from transferlab.tasks.templates import BoundedTemplate

    start = time.perf_counter()
    with pytest.raises(TransferlabError, match="t.yaml: prompt \\(row 3\\)") as err:
        BoundedTemplate(template, "prompt", "t.yaml").render({"text": "great"}, " (row 3)")
    assert problem in str(err.value) and "\n" not in str(err.value)
    assert time.perf_counter() - start < 5


def test_a_single_name_is_a_one_element_list_never_its_letters(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"q": "a?", "label": 0}\n')
    path = tmp_path / "t.yaml"
    path.write_text("name: one-stop\noutput_type: generate\nsource: d.jsonl\nprompt: '{{ q }}'\ntarget: x\n"
                    "stop: '###'\nmetrics: contains\n")
    task = load_task_file(path)
    assert task.stop == ("###",) and task.metrics == ("contains",)
