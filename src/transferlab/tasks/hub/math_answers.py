"""Final answers of competition math (MATH): the last `\\boxed{...}`, and when two answers are equal.

Equality is the normalisation of Hendrycks et al.'s MATH code, as lm-evaluation-harness
applies it (`hendrycks_math/utils.py`): both answers are stripped of spacing, `\\left`/
`\\right`, degrees, dollar signs, units after `\\text{ `, percent signs and a short `x =`,
fractions and square roots are written one way (`\\frac12` -> `\\frac{1}{2}`, `0.5` ->
`\\frac{1}{2}`, `3/4` -> `\\frac{3}{4}`, `\\sqrt2` -> `\\sqrt{2}`), then compared as strings.
Rewritten here in plain functions that never raise on a model's odd output.
"""

from __future__ import annotations

import re


def last_boxed(text: str) -> str | None:
    """The last `\\boxed{...}` (or `\\fbox{...}`, or `\\boxed x`) in `text`, braces balanced; None if none."""
    if "\\boxed " in text:
        return "\\boxed " + text.split("\\boxed ")[-1].split("$")[0]
    start = text.rfind("\\boxed")
    if start < 0:
        start = text.rfind("\\fbox")
    if start < 0:
        return None
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
    return None


def unbox(boxed: str | None) -> str | None:
    """The content of a `\\boxed{...}` / `\\fbox{...}` / `\\boxed x` string."""
    if boxed is None:
        return None
    for left in ("\\boxed ", "\\boxed{", "\\fbox{"):
        if boxed.startswith(left):
            inner = boxed[len(left):]
            return inner[:-1] if left.endswith("{") and inner.endswith("}") else inner
    return None


def boxed_answer(text: str) -> str | None:
    return unbox(last_boxed(text))


def answer_of(completion: str) -> str:
    """What a completion answers: its last boxed expression, else (lm-eval's rule) the text between
    its first and last `$`, else the whole text."""
    boxed = boxed_answer(completion)
    if boxed is not None:
        return boxed
    dollars = [i for i, ch in enumerate(completion) if ch == "$"]
    return completion[dollars[0] + 1 : dollars[-1]] if len(dollars) > 1 else completion.strip()


def _fix_fracs(s: str) -> str:
    head, *rest = s.split("\\frac")
    out = head
    for part in rest:
        out += "\\frac"
        if part.startswith("{"):
            out += part
            continue
        if len(part) < 2:  # "\\frac1": nothing to rewrite it into
            return s
        a, b, tail = part[0], part[1], part[2:]
        out += f"{{{a}}}{{{b}}}{tail}" if b != "{" else f"{{{a}}}{b}{tail}"
    return out


def _fix_slash(s: str) -> str:
    match = re.fullmatch(r"(-?\d+)/(-?\d+)", s)
    return f"\\frac{{{int(match[1])}}}{{{int(match[2])}}}" if match and s == f"{int(match[1])}/{int(match[2])}" else s


def _fix_sqrt(s: str) -> str:
    head, *rest = s.split("\\sqrt")
    return head + "".join("\\sqrt" + (p if p.startswith("{") or not p else f"{{{p[0]}}}{p[1:]}") for p in rest)


def normalise(answer: str) -> str:
    """An answer in the canonical string form MATH's equivalence compares."""
    s = answer.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    s = s.replace("tfrac", "frac").replace("dfrac", "frac").replace("\\left", "").replace("\\right", "")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "").replace("\\$", "")
    if s.count("\\text{ ") == 1:  # units, written after the number
        s = s.split("\\text{ ")[0]
    s = s.replace("\\%", "")
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    if not s:
        return s
    if s.startswith("."):
        s = "0" + s
    if s.count("=") == 1 and len(s.split("=")[0]) <= 2:  # "x = 3" -> "3"
        s = s.split("=")[1]
    s = _fix_sqrt(s).replace(" ", "")
    s = _fix_fracs(s)
    if s == "0.5":
        s = "\\frac{1}{2}"
    return _fix_slash(s)


def equivalent(predicted: str | None, gold: str | None) -> bool:
    """Whether two final answers are the same after normalisation; None never matches."""
    if predicted is None or gold is None:
        return False
    return normalise(predicted) == normalise(gold)
