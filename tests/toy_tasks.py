"""Small in-code tasks for unit tests: real Task subclasses over generated data."""

from __future__ import annotations

from transferlab.tasks.base import Example, Task


class Comparison(Task):
    """'Is a larger than b?' with True/False choices (one-token answers)."""

    name = "toy-compare"
    domain = "numbers"
    output_type = "multiple_choice"

    def load(self) -> list[Example]:
        out = []
        for i in range(120):
            a, b = i % 17 + 3, (i * 7) % 13 + 2
            truth = a > b
            out.append(Example(uid=f"cmp{i}", prompt=f"{a}>{b}?", target="True" if truth else "False",
                               choices=("True", "False"), answer=0 if truth else 1))
        return out


class Echo(Task):
    """Repeat a word: a generation task with exact-match scoring."""

    name = "toy-echo"
    output_type = "generate"
    metrics = ("exact_match",)
    primary_metric = "exact_match"
    max_new_tokens = 8

    def load(self) -> list[Example]:
        words = ["cat", "dog", "sun", "map", "key", "hat", "pen", "cup"] * 5
        return [Example(uid=f"echo{i}", prompt=f"say {w}", target=w) for i, w in enumerate(words)]

    def score(self, example: Example, completion: str) -> dict[str, float]:
        return {"exact_match": float(completion.strip() == example.target)}
