"""Probe tests run single-threaded: the algorithms are small batched solves, and on a shared
two-core machine spinning BLAS threads cost far more than they give."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):  # numpy / scikit-learn BLAS too
        yield
    torch.set_num_threads(before)


def planted(layers: int = 3, pairs: int = 60, d: int = 24, seed: int = 0, signal: float = 1.5):
    """Activations with a truth direction, a nuisance per group and noise; rows come in (true, false) pairs."""
    rng = np.random.default_rng(seed)
    y = np.tile([1, 0], pairs)
    groups = np.repeat(np.arange(pairs), 2)
    truth = rng.normal(size=d)
    truth /= np.linalg.norm(truth)
    nuisance = rng.normal(size=(layers, pairs, 1, d)).repeat(2, axis=2).reshape(layers, 2 * pairs, d) * 2
    X = rng.normal(size=(layers, 2 * pairs, d)) + nuisance + signal * np.outer(y - 0.5, truth)[None]
    return X, y, groups
