"""The sweep's faster paths give the outputs of the plain ones, and its threads are set together.

- LDA's SVD solver in row space (eigenvectors of the n x n Gram matrix) equals the SVD of the
  scaled rows, including when singular values fall below its tolerance;
- CCS's steps as bmm over rows laid out once equal the einsum formulation they replaced;
- `probes.threads`: torch and every BLAS / OpenMP pool get one number inside a sweep, at most
  the idle cores, restored after.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.probes.conftest import planted
from transferlab.probes import threads
from transferlab.probes.algorithms import ccs as ccs_module
from transferlab.probes.algorithms import make
from transferlab.probes.algorithms.lda import _svd_direction


@pytest.mark.parametrize("duplicated", [False, True])
def test_lda_svd_in_row_space_equals_the_full_svd(duplicated):
    X, y, _ = planted(layers=4, pairs=30, d=90)  # 60 rows, 90 features
    if duplicated:  # repeated rows: the scaled rows lose rank, singular values fall below tol
        X[:, 1::4] = X[:, 0::4]
        y = y.copy()
        y[1::4] = y[0::4]
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    fast = _svd_direction(Xt, yt, 1e-4)  # n < d: the row-space path
    full = _svd_direction(Xt, yt, 1e-4, row_space=False)
    for a, b in zip(fast, full):
        scale = float(b.abs().max())
        assert float((a - b).abs().max()) <= 1e-9 * scale
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    ours = make("lda", shrinkage=None, solver="svd").fit(X[0], y)
    ref = LinearDiscriminantAnalysis().fit(X[0], y)
    np.testing.assert_allclose(ours.coef_, ref.coef_[0], rtol=1e-8, atol=1e-10)


def _einsum_ccs(probe, X, y, codes):
    """CCS's direction as it was computed before its steps became bmm calls (the reference)."""
    a, b = ccs_module.contrast_pairs(y, codes, probe.seed)
    B, d = X.shape[0], X.shape[2]
    xa, xb = X[:, a].float(), X[:, b].float()
    xa = xa - xa.mean(dim=1, keepdim=True)
    xb = xb - xb.mean(dim=1, keepdim=True)
    sa = xa.pow(2).sum(dim=2).mean(dim=1).sqrt().clamp_min(1e-12) / d**0.5
    sb = xb.pow(2).sum(dim=2).mean(dim=1).sqrt().clamp_min(1e-12) / d**0.5
    xa, xb = xa / sa[:, None, None], xb / sb[:, None, None]
    generator = torch.Generator().manual_seed(probe.seed)
    w = (torch.randn(B, probe.n_restarts, d, generator=generator) / d**0.5).requires_grad_()
    bias = torch.zeros(B, probe.n_restarts, requires_grad=True)
    optimiser = torch.optim.AdamW([w, bias], lr=probe.lr, weight_decay=probe.weight_decay)

    def losses():
        pa = torch.sigmoid(torch.einsum("bmd,brd->brm", xa, w) + bias[:, :, None])
        pb = torch.sigmoid(torch.einsum("bmd,brd->brm", xb, w) + bias[:, :, None])
        return ((pa - (1 - pb)).pow(2) + torch.minimum(pa, pb).pow(2)).mean(dim=2)

    with torch.enable_grad():
        for _ in range(probe.max_iter):
            optimiser.zero_grad()
            losses().sum().backward()
            optimiser.step()
    with torch.no_grad():
        chosen = w.detach()[torch.arange(B), losses().argmin(dim=1)].to(X.dtype)
    return chosen / ((sa + sb) / 2).to(X.dtype)[:, None]


def test_ccs_steps_as_bmm_equal_the_einsum_formulation():
    X, y, g = planted(layers=3, pairs=40, d=48)
    probe = make("ccs", n_restarts=3, max_iter=40)
    codes = torch.as_tensor(np.unique(g, return_inverse=True)[1].reshape(-1))
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    ours, _ = probe._direction(Xt, yt, codes, None)
    reference = _einsum_ccs(probe, Xt, yt, codes)
    scale = float(reference.abs().max())
    assert float((ours - reference).abs().max()) <= 1e-6 * scale


def test_threads_are_set_together_inside_a_sweep_and_restored_after():
    from threadpoolctl import threadpool_info

    before = torch.get_num_threads(), {p["filepath"]: p["num_threads"] for p in threadpool_info()}
    with threads.limited(2) as n:  # (these tests otherwise run on one thread: conftest)
        assert n == 2 and torch.get_num_threads() == 2
        assert all(pool["num_threads"] == 2 for pool in threadpool_info())
        with threads.limited(3) as inner:  # a nested call (evaluate -> score_bank) keeps the outer setting
            assert inner == 2 and torch.get_num_threads() == 2
    assert (torch.get_num_threads(), {p["filepath"]: p["num_threads"] for p in threadpool_info()}) == before
    assert 1 <= threads.sweep_threads() <= torch.get_num_threads()


def test_a_busy_machine_gets_one_thread_an_idle_one_every_core(monkeypatch):
    import os

    cores = len(os.sched_getaffinity(0))
    monkeypatch.setattr(os, "getloadavg", lambda: (cores + 3.0, 0.0, 0.0))
    assert threads.idle_cores() == 1
    before = torch.get_num_threads()
    torch.set_num_threads(cores)
    try:
        assert threads.sweep_threads() == 1
        monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
        assert threads.idle_cores() == cores and threads.sweep_threads() == cores
    finally:
        torch.set_num_threads(before)
