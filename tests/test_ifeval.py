"""IFEval: data, splits, the reference checkers run offline, and the official metrics."""

from __future__ import annotations

import json
import socket
import sys
from typing import Any

import pytest

import transferlab.tasks.ifeval  # noqa: F401  (registers the task)
from transferlab.errors import TransferlabError
from transferlab.tasks import ifeval_checks
from transferlab.tasks.base import SPLITS, Example, split_of
from transferlab.tasks.ifeval import IFEvalTask, aggregate
from transferlab.tasks.registry import TASKS

LONG_EN = "this response is written in plain english so that the language detector has enough text to decide"

# instruction id -> (kwargs, a response that follows it, one that does not)
CASES: dict[str, tuple[dict[str, Any], str, str]] = {
    "change_case:capital_word_frequency": (
        {"capital_frequency": 3, "capital_relation": "at least"},
        "THIS is VERY IMPORTANT news.", "This is very important news.",
    ),
    "change_case:english_capital": ({}, LONG_EN.upper() + ".", LONG_EN.capitalize() + "."),
    "change_case:english_lowercase": ({}, LONG_EN + ".", LONG_EN.capitalize() + "."),
    "combination:repeat_prompt": (
        {"prompt_to_repeat": "Write a poem about cats."},
        "Write a poem about cats.\nSoft paws on the floor.", "Here is a poem.\nSoft paws on the floor.",
    ),
    "combination:two_responses": ({}, "Paris is lovely.\n******\nRome is lovely.", "Paris is lovely.\n******\nParis is lovely."),
    "detectable_content:number_placeholders": ({"num_placeholders": 2}, "Dear [name], see you at [address].", "Dear [name], see you."),
    "detectable_content:postscript": ({"postscript_marker": "P.S."}, "See you soon.\nP.S. Bring snacks.", "See you soon."),
    "detectable_format:constrained_response": ({}, "My answer is yes.", "Yes, definitely."),
    "detectable_format:json_format": ({}, '```json\n{"city": "Paris"}\n```', "city: Paris"),
    "detectable_format:multiple_sections": (
        {"section_spliter": "Section", "num_sections": 2},
        "Section 1\nThe start.\nSection 2\nThe end.", "Section 1\nThe start and the end.",
    ),
    "detectable_format:number_bullet_lists": ({"num_bullets": 3}, "* one\n* two\n* three", "* one\n* two"),
    "detectable_format:number_highlighted_sections": ({"num_highlights": 2}, "An *intro* and a *body*.", "Only an *intro*."),
    "detectable_format:title": ({}, "<<Ode to Joy>>\nA poem.", "Ode to Joy\nA poem."),
    "keywords:existence": ({"keywords": ["apple", "banana"]}, "I like apple and banana.", "I like apple."),
    "keywords:forbidden_words": ({"forbidden_words": ["bad"]}, "The weather is good.", "The weather is bad."),
    "keywords:frequency": ({"keyword": "cat", "frequency": 2, "relation": "at least"}, "A cat met a cat.", "A cat met a dog."),
    "keywords:letter_frequency": ({"letter": "z", "let_frequency": 2, "let_relation": "less than"}, "A zebra.", "A pizza."),
    "language:response_language": (
        {"language": "de"},
        "Das Wetter ist heute sehr schön und wir gehen am Nachmittag im Park spazieren.",
        "The weather is very nice today and we are going for a walk in the park this afternoon.",
    ),
    "length_constraints:nth_paragraph_first_word": (
        {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "second"},
        "First paragraph.\n\nSecond paragraph.", "First paragraph.\n\nAnother paragraph.",
    ),
    "length_constraints:number_paragraphs": ({"num_paragraphs": 3}, "One.\n***\nTwo.\n***\nThree.", "One.\n***\nTwo."),
    "length_constraints:number_sentences": (
        {"num_sentences": 3, "relation": "less than"},
        "Dr. Smith arrived at 5 p.m. today. He sat down.",  # punkt: 2 sentences, not 4
        "One. Two. Three. Four.",
    ),
    "length_constraints:number_words": ({"num_words": 5, "relation": "at least"}, "one two three four five", "one two"),
    "punctuation:no_comma": ({}, "No commas here.", "Yes, commas here."),
    "startend:end_checker": (
        {"end_phrase": "Is there anything else I can help with?"},
        "Done. Is there anything else I can help with?", "Done. Anything else?",
    ),
    "startend:quotation": ({}, '"A quoted answer."', "A quoted answer."),
}


@pytest.fixture(scope="module")
def task() -> IFEvalTask:
    return TASKS.get("ifeval")  # type: ignore[return-value]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to reach the network (an NLTK download, say) fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("IFEval scoring tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_task_attributes(task: IFEvalTask) -> None:
    assert isinstance(task, IFEvalTask)
    assert (task.domain, task.output_type, task.max_new_tokens) == ("instruction_following", "generate", 512)
    assert task.metrics == ("prompt_strict", "inst_strict", "prompt_loose", "inst_loose")
    assert task.primary_metric == "prompt_strict"
    assert task.trainable is False


def test_loads_541_json_clean_examples(task: IFEvalTask) -> None:
    examples = task.all_examples()
    assert len(examples) == 541
    assert len({e.uid for e in examples}) == 541
    for e in examples:
        assert e.target == ""
        assert e.prompt
        assert json.loads(json.dumps(dict(e.meta))) == dict(e.meta)
        assert len(e.meta["instruction_id_list"]) == len(e.meta["kwargs"]) >= 1
        assert all(v is not None for kwargs in e.meta["kwargs"] for v in kwargs.values())


def test_splits_hash_the_key_with_task_defaults(task: IFEvalTask) -> None:
    sizes = {s: len(task.examples(s)) for s in SPLITS}
    assert sum(sizes.values()) == 541 and all(sizes.values())
    for split in SPLITS:
        assert all(split_of(e.key, task.split_fractions) == split for e in task.examples(split))


def test_every_instruction_in_the_data_has_a_checker_and_a_case(task: IFEvalTask) -> None:
    in_data = {i for e in task.all_examples() for i in e.meta["instruction_id_list"]}
    assert in_data == set(CASES)
    assert in_data <= set(ifeval_checks.supported_instructions())


@pytest.mark.parametrize("instruction_id", sorted(CASES))
def test_checker_positive_and_negative(instruction_id: str, no_network: None) -> None:
    kwargs, good, bad = CASES[instruction_id]
    assert ifeval_checks.check(instruction_id, good, **kwargs)[0], f"{instruction_id} rejected {good!r}"
    assert not ifeval_checks.check(instruction_id, bad, **kwargs)[0], f"{instruction_id} accepted {bad!r}"


def test_sentence_counting_is_offline_and_matches_nltk(no_network: None) -> None:
    util = sys.modules[f"{ifeval_checks.reference().__package__}.instructions_util"]
    # Rebuild the tokenizers with the network cut, so nothing can be fetched.
    util._get_sentence_tokenizer.cache_clear()
    ifeval_checks.sentence_tokenizer.cache_clear()
    assert util.nltk is not sys.modules.get("nltk")  # the checkers see the offline stand-in
    assert util.count_sentences("Dr. Smith went to Washington. He arrived at 5 p.m. on Jan. 3. It rained!") == 3
    # Recorded from NLTK 3.10.4's punkt with the same English model, quirks included.
    assert ifeval_checks.sent_tokenize("I think so.. Not sure!?") == ["I think so.. Not sure!", "?"]
    assert ifeval_checks.sent_tokenize("Wow!!! Great.") == ["Wow!!!", "Great."]
    assert ifeval_checks.sent_tokenize("!!!") == ["!", "!", "!"]
    assert ifeval_checks.word_tokenize("Good muffins cost $3.88\nin New York.  Please buy me\ntwo of them.\n\nThanks.") == [
        "Good", "muffins", "cost", "$", "3.88", "in", "New", "York", ".",
        "Please", "buy", "me", "two", "of", "them", ".", "Thanks", ".",
    ]
    assert ifeval_checks.word_tokenize("I DON'T like STATE-OF-THE-ART \"HYPE\".") == [
        "I", "DO", "N'T", "like", "STATE-OF-THE-ART", "``", "HYPE", "''", ".",
    ]


def test_language_detection_offline(no_network: None) -> None:
    french = "Je voudrais réserver une table pour deux personnes ce soir au restaurant près de la gare."
    assert ifeval_checks.check("language:response_language", french, language="fr")[0]
    assert not ifeval_checks.check("language:response_language", french, language="en")[0]
    assert ifeval_checks.check("language:response_language", LONG_EN, language="en")[0]


def test_loose_forgives_a_leading_line(task: IFEvalTask) -> None:
    example = Example(
        uid="t", prompt="Wrap it in quotes.", target="",
        meta={"instruction_id_list": ["startend:quotation"], "kwargs": [{}]},
    )
    scores = task.score(example, 'Sure, here it is:\n"A quoted answer."')
    assert scores == {"prompt_strict": 0.0, "inst_strict": 0.0, "prompt_loose": 1.0, "inst_loose": 1.0}


def test_loose_removes_asterisks() -> None:
    strict, loose = ifeval_checks.check("startend:end_checker", "Done. **Bye now**", end_phrase="Bye now")
    assert not strict and loose


def test_score_levels_on_a_real_example(task: IFEvalTask) -> None:
    example = next(e for e in task.all_examples() if e.meta["key"] == 1000)  # no comma, 3 highlights, >= 300 words
    response = "An *early life* and a *rise* and a *fall* " + "word " * 300
    assert task.score(example, response) == {"prompt_strict": 1.0, "inst_strict": 1.0, "prompt_loose": 1.0, "inst_loose": 1.0}
    scores = task.score(example, "A short answer, with a comma.")
    assert scores["prompt_strict"] == 0.0 and scores["inst_strict"] == 0.0
    assert task.score(example, "Commas none here *a* *b* *c*")["inst_strict"] == pytest.approx(2 / 3)


def test_empty_response_follows_nothing(task: IFEvalTask) -> None:
    example = next(e for e in task.all_examples() if e.meta["instruction_id_list"] == ["punctuation:no_comma"])
    assert task.score(example, "   ") == {"prompt_strict": 0.0, "inst_strict": 0.0, "prompt_loose": 0.0, "inst_loose": 0.0}


def test_aggregate_weights_instructions(task: IFEvalTask) -> None:
    one = Example(uid="a", prompt="", target="", meta={"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]})
    three = Example(uid="b", prompt="", target="", meta={"instruction_id_list": ["punctuation:no_comma"] * 3, "kwargs": [{}] * 3})
    scores = [
        {"prompt_strict": 1.0, "inst_strict": 1.0, "prompt_loose": 1.0, "inst_loose": 1.0},
        {"prompt_strict": 0.0, "inst_strict": 0.0, "prompt_loose": 0.0, "inst_loose": 1 / 3},
    ]
    result = aggregate(scores, [one, three])
    assert result["prompt_strict"] == 0.5 and result["prompt_loose"] == 0.5
    assert result["inst_strict"] == pytest.approx(1 / 4)  # not the mean of fractions (1/2)
    assert result["inst_loose"] == pytest.approx(2 / 4)
    assert task.aggregate(scores, [one, three]) == result
    with pytest.raises(ValueError):
        aggregate(scores, [one])


def test_unknown_instruction_fails_loudly(task: IFEvalTask) -> None:
    with pytest.raises(TransferlabError, match="keywords:key_sentences"):
        ifeval_checks.check("keywords:key_sentences", "Anything.")
    row = {"key": 1, "prompt": "p", "instruction_id_list": ["keywords:no_such_check"], "kwargs": [{}]}
    with pytest.raises(TransferlabError, match="keywords:no_such_check"):
        task._example(row)


@pytest.mark.parametrize(
    "instruction_id, kwargs",
    [
        ("keywords:existence", {"keywords": None}),  # dropped as None, then drawn at random
        ("keywords:letter_frequency", {"letter": "ab", "let_frequency": 2, "let_relation": "at least"}),
        ("length_constraints:number_words", {"relation": "at least"}),
    ],
)
def test_arguments_a_checker_would_randomise_are_refused(task: IFEvalTask, instruction_id: str, kwargs: dict) -> None:
    row = {"key": 2, "prompt": "p", "instruction_id_list": [instruction_id], "kwargs": [kwargs]}
    with pytest.raises(TransferlabError, match="random"):
        task._example(row)


def test_letter_frequency_counts_the_named_symbol(task: IFEvalTask) -> None:
    """Prompt 1122 asks for 4 '#': the reference would count a random letter instead."""
    example = next(e for e in task.all_examples() if e.meta["key"] == 1122)
    assert example.meta["kwargs"][1]["letter"] == "#"
    tweet = "loving the new season of our show, tune in tonight for the best moments of the year "
    for _ in range(5):  # the same answer, every time
        assert task.score(example, tweet + "#fun #tv #night #live")["prompt_strict"] == 1.0
        assert task.score(example, tweet + "#fun #tv #night")["prompt_strict"] == 0.0


def test_every_example_scores(task: IFEvalTask) -> None:
    for example in task.all_examples():
        scores = task.score(example, "Sure.\nThis is a short generic answer. It has two sentences.")
        assert set(scores) == set(task.metrics)
        assert all(0.0 <= v <= 1.0 for v in scores.values())
