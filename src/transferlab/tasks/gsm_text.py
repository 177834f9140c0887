"""How GSM8K writes numbers, read and written: the `####` answer line and the tidying of rendered text.

Scoring reads model output with `NUMBER`, `normalize_number` and `numbers_equal`; variant
generation keeps a rendered solution only if its `####` line reads as a number and then
writes its numbers the way the language's originals do. Both sides share these rules,
so they live here, apart from the template machinery.
"""
from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation

# --------------------------------------------------------------------------- numbers in GSM8K text
# Shared with scoring: a rendered variant is only kept if its `####` line reads as a number.

NUMBER = re.compile(r"(?:(?<!\w)[-\u2212])?\d+(?:[.,\u00a0\u202f\u066b\u066c]\d+)*")


def ascii_digits(text: str) -> str:
    """Any script's decimal digits (Devanagari, Arabic-Indic, full-width...) as ASCII."""
    return "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() and not ch.isascii() else ch for ch in text)


def normalize_number(token: str) -> str | None:
    """A number as written (`$1,234.50`, `1.234,5`, `18.0`, `١٤`) in canonical form (`1234.5`, `18`).

    A lone comma followed by three digits is a thousands separator (GSM8K answers are
    whole numbers far more often than they have three decimals); otherwise a lone comma
    is a decimal comma. When both `.` and `,` appear, the last one is the decimal mark.
    """
    text = ascii_digits(token.strip()).translate({0x2212: "-", 0x066B: ".", 0x066C: ",", 0xA0: None, 0x202F: None})
    text = text.strip().lstrip("$€£¥").rstrip(".")
    if "," in text and "." in text:
        decimal_mark = "," if text.rfind(",") > text.rfind(".") else "."
        text = text.replace("." if decimal_mark == "," else ",", "").replace(",", ".")
    elif "," in text or "." in text:
        mark = "," if "," in text else "."
        groups = text.split(mark)
        thousands = len(groups) > 2 or (mark == "," and len(groups[1]) == 3)
        text = "".join(groups) if thousands else ".".join(groups)
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def answer_line(solution: str) -> str | None:
    """The answer of a reference solution: its `####` line, which must hold exactly one number.

    Stricter than the scorer's `extract_strict`, so a broken reference (`#### 299/5`) is caught, not read as 299.
    """
    if "####" not in solution:
        return None
    lines = solution.rsplit("####", 1)[1].strip().splitlines()
    line = lines[0].strip().lstrip("$€£¥").rstrip(".").strip() if lines else ""
    return normalize_number(line) if NUMBER.fullmatch(line) else None


def numbers_equal(predicted: str | None, gold: str | None) -> bool:
    """Numeric equality of two number strings (`"18.0"` equals `"18"`); None never matches."""
    if predicted is None or gold is None:
        return False
    a, b = normalize_number(predicted), normalize_number(gold)
    return a is not None and a == b


# --------------------------------------------------------------------------- number formatting

_COMMA_DECIMAL = frozenset({"dan", "nob", "nno", "swe", "deu", "fin", "isl", "nld", "fra", "ita"})
_SPACE_THOUSANDS = frozenset({"swe"})
_DEVANAGARI = frozenset({"hin", "mar"})
_TEXT_NUMBER = re.compile(r"\b[0-9]+\.[0-9]+\b|\b[0-9]{5,}\b")
_ANSWER_LINE = re.compile(r"(####[^\n]*)")
_SENTENCE_START = re.compile(r"([.!?]+\s*)([a-z])")
_CALCULATION = re.compile(r"<<[^>]*>>")


def localize_numbers(text: str, language: str) -> str:
    """Write numbers the way the language's originals do (decimal comma, digit grouping,
    Devanagari digits); the `####` answer line stays plain so answers are parsed uniformly."""
    comma = language in _COMMA_DECIMAL
    grouping = " " if language in _SPACE_THOUSANDS else ("." if comma else ",")

    def one(match: re.Match[str]) -> str:
        whole, _, decimals = match.group().partition(".")
        whole = f"{int(whole):,}".replace(",", grouping) if int(whole) >= 10_000 else whole
        return whole + ((("," if comma else ".") + decimals) if decimals else "")

    parts = _ANSWER_LINE.split(text)
    for i in range(0, len(parts), 2):
        parts[i] = _TEXT_NUMBER.sub(one, parts[i])
        if language in _DEVANAGARI:
            parts[i] = parts[i].translate(str.maketrans("0123456789", "०१२३४५६७८९"))
    return "".join(parts)


def capitalize_sentences(text: str) -> str:
    text = text[:1].upper() + text[1:]
    return _SENTENCE_START.sub(lambda m: m.group(1) + m.group(2).upper(), text)


def strip_calculations(text: str) -> str:
    """Drop GSM8K's `<<6*2=12>>` calculator annotations: noise for a chat model to imitate."""
    return _CALCULATION.sub("", text)


__all__ = [
    "NUMBER", "answer_line", "ascii_digits", "capitalize_sentences", "localize_numbers", "normalize_number",
    "numbers_equal", "strip_calculations",
]
