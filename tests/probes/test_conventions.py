"""`protocol: repeng` reproduces the original study's conventions; the default stays held out and keeps its keys."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.probes.conftest import planted
from tests.probes.test_protocol import data
from transferlab.cli import app
from transferlab.errors import TransferlabError
from transferlab.probes import conventions
from transferlab.probes.algorithms import make
from transferlab.probes.protocol import Data, _auroc, evaluate, fit_bank
from transferlab.probes.spec import ProbeStudyConfig, parse_probe_spec


def flipped(d: Data, name: str) -> Data:
    """The same statements with every label reversed: a probe's direction points the wrong way on it."""
    return Data(name, d.acts, 1 - d.labels, d.groups, d.answer_types, d.splits)


def repeng_row_accuracy(y: np.ndarray, logits: np.ndarray) -> float:
    """mishajw/repeng's eval_probe_by_row, restated with scikit-learn: flip by AUROC, then the ROC
    point nearest to (0, 1), rows strictly above its threshold predicted true."""
    from sklearn.metrics import accuracy_score, roc_auc_score, roc_curve

    def at_best(values: np.ndarray) -> float:
        fpr, tpr, thresholds = roc_curve(y, values)
        return accuracy_score(y, values > thresholds[np.argmin(np.sqrt((1 - tpr) ** 2 + fpr**2))])

    return at_best(-logits) if roc_auc_score(y, logits) < roc_auc_score(y, -logits) else at_best(logits)


def test_the_row_threshold_is_repengs_roc_rule():
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(150):
        m = int(rng.integers(4, 40))
        y = rng.integers(0, 2, m)
        if y.min() == y.max():
            continue
        scores = np.round(rng.normal(size=(4, m)) * 3, int(rng.integers(0, 3)))  # rounding makes ties
        S, Y = torch.as_tensor(scores), torch.as_tensor(y)
        auroc = _auroc(S, Y)
        correct, chosen = conventions.eval_threshold_rows(S, Y, auroc)
        for k in range(4):
            if abs(float(auroc[k]) - 0.5) < 1e-9:  # scikit-learn's trapezoid rounds a tie either way
                continue
            assert float(correct[k].double().mean()) == pytest.approx(repeng_row_accuracy(y, scores[k]), abs=1e-12)
            assert float(chosen[k]) == pytest.approx(max(float(auroc[k]), 1 - float(auroc[k])))
            checked += 1
    assert checked > 400


@pytest.mark.parametrize("grouped", [True, False])
def test_repeng_chooses_the_sign_on_the_evaluation_data(grouped):
    signal = 2.0 if grouped else 5.0  # rows are noisier than questions (each pair shares a nuisance)
    a = data("a", 0, grouped=grouped, signal=signal)
    b = flipped(data("b", 0, grouped=grouped, signal=signal), "b")  # a's truth direction, labels reversed
    bank = fit_bank([a, b], {"dim": {}, "lr": {}}, [1, 2])
    honest = {e.dataset: e for e in evaluate(bank, [a, b], resamples=20)}["b"]
    repeng = {e.dataset: e for e in evaluate(bank, [a, b], resamples=20, protocol="repeng")}["b"]
    from_a = [i for i, t in enumerate(bank.trained_on) if t == "a"]
    assert bool((honest.acc[from_a] < 0.3).all()), "held out, a's sign is wrong on b"
    assert bool((repeng.acc[from_a] > 0.7).all()), "chosen on b itself, the sign is right"
    assert bool((repeng.acc[from_a] >= honest.acc[from_a]).all())
    assert bool((repeng.hparams_acc[from_a] >= honest.hparams_acc[from_a]).all())
    if grouped:  # on questions only the sign is chosen, and by accuracy: never lower anywhere
        assert bool((repeng.acc >= honest.acc - 1e-6).all())


def test_lda_without_shrinkage_is_scikit_learns_default():
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    for d in (24, 120):  # a regular covariance, and a singular one (fewer rows than features)
        X, y, _ = planted(layers=1, pairs=40, d=d)
        y = y.copy()
        y[:6] = 0  # unequal priors, so the intercept's prior term is checked too
        ours = make("lda", **conventions.fit_params("repeng", "lda")).fit(X[0], y)
        ref = LinearDiscriminantAnalysis().fit(X[0], y)
        np.testing.assert_allclose(ours.coef_, ref.coef_[0], rtol=1e-8, atol=1e-10)
        assert ours.intercept_ == pytest.approx(ref.intercept_[0], rel=1e-8)
        shrunk = make("lda").fit(X[0], y)
        assert np.abs(shrunk.coef_ - ours.coef_).max() > 1e-3 * np.abs(ours.coef_).max(), "the default shrinks"
    with pytest.raises(TransferlabError, match="svd solver does not shrink"):
        make("lda", solver="svd").fit(X[0], y)


def test_lr_stops_at_scikit_learns_default_tolerance():
    def sklearn_gradient(X, y, w, b):  # of scikit-learn's objective: mean log-loss + ||w||^2 / (2 C n), C = 1
        p = 1 / (1 + np.exp(-(X @ w + b)))
        return max(np.abs(X.T @ (p - y) / len(y) + w / len(y)).max(), abs((p - y).mean()))

    for d in (24, 120):  # the primal and the dual solver
        X, y, g = planted(layers=2, pairs=40, d=d)
        tight, loose = make("lr").fit(X, y), make("lr", **conventions.fit_params("repeng", "lr")).fit(X, y)
        for layer in range(2):
            assert sklearn_gradient(X[layer], y, loose.coef_[layer], loose.intercept_[layer]) <= 1e-4
            assert sklearn_gradient(X[layer], y, tight.coef_[layer], tight.intercept_[layer]) < 1e-9
        assert np.abs(loose.coef_ - tight.coef_).max() > 0, "stopped early, not at the optimum"
        grouped = make("lr-g", **conventions.fit_params("repeng", "lr-g")).fit(X, y, groups=g)
        assert np.abs(grouped.coef_ - make("lr-g").fit(X, y, groups=g).coef_).max() > 0


def test_user_params_win_over_the_protocols():
    assert conventions.fit_params("heldout", "lda", {"shrinkage": 0.2}) == {"shrinkage": 0.2}
    assert conventions.fit_params("repeng", "lda") == {"shrinkage": None, "solver": "svd"}
    assert conventions.fit_params("repeng", "lr", {"tol": 1e-6})["tol"] == 1e-6
    assert conventions.fit_params("repeng", "dim") == {}


def test_the_protocol_keys_fits_and_scores_it_changes_and_no_default_key(tiny, tmp_path):
    from transferlab.probes.plan import FIT_VERSION, SCORE_VERSION, plan_probes
    from transferlab.tasks.base import stable_hash

    tiny.identity = "tiny-llama@test"
    base = dict(model="tiny-llama", datasets=("cities", "larger_than"), algorithms=("dim", "lda", "lr"), limit=6,
                resamples=20, output=str(tmp_path), report=False)
    heldout = plan_probes(ProbeStudyConfig(**base), {"tiny-llama": tiny})
    repeng = plan_probes(ProbeStudyConfig(**base, protocol="repeng"), {"tiny-llama": tiny})
    # the default's keys are the formula of the stores written before protocols existed
    for (name, algorithm), key in heldout.fit_keys.items():
        assert key == stable_hash("probe", FIT_VERSION, heldout.model.identity, heldout.activation_keys[name],
                                  algorithm, {}, heldout.layers)
    assert heldout.score_key == stable_hash("probe-scores", SCORE_VERSION, list(heldout.fit_keys.values()),
                                            list(heldout.activation_keys.values()), 20)
    changed = {k for k in heldout.fit_keys if heldout.fit_keys[k] != repeng.fit_keys[k]}
    assert {a for _, a in changed} == {"lda", "lr"}, "DIM fits alike under both: shared, fitted once"
    assert repeng.score_key != heldout.score_key
    assert heldout.activation_keys == repeng.activation_keys


def test_a_repeng_study_reuses_what_it_shares_and_says_which_protocol_ran(tiny, tmp_path):
    from transferlab.probes.results import ProbeResults
    from transferlab.probes.study import run_probe_study

    tiny.identity = "tiny-llama@test"
    cfg = dict(model="tiny-llama", datasets=("cities", "larger_than"), algorithms=("dim", "lr"), limit=6,
               resamples=20, output=str(tmp_path / "run"), report=False)
    run_probe_study(ProbeStudyConfig(**cfg), loaded=tiny)
    assert ProbeResults(tmp_path / "run").read_run()["protocol"] == "heldout"
    run_probe_study(ProbeStudyConfig(**cfg, protocol="repeng"), loaded=tiny)
    run = ProbeResults(tmp_path / "run").read_run()
    assert run["protocol"] == "repeng" and run["params"]["lr"] == {"tol": 1e-4, "stop": "gradient"}
    assert (run["jobs"]["ran"], run["jobs"]["reused"]) == (3, 4), "2 LR fits and the scoring; extracts and DIM reused"


def test_an_unknown_protocol_is_a_one_line_error_before_any_work(tmp_path):
    with pytest.raises(TransferlabError, match=r"^unknown probe protocol 'repng': did you mean 'repeng'\?$"):
        ProbeStudyConfig(protocol="repng").checked()
    with pytest.raises(TransferlabError, match=r"p.yaml:2: protocol: unknown probe protocol 'honest'"):
        parse_probe_spec("study: probes\nprotocol: honest\n", "p.yaml")
    out = tmp_path / "never"
    result = CliRunner().invoke(app, ["probes", "run", "--protocol", "repng", "--out", str(out)])
    assert result.exit_code != 0 and isinstance(result.exception, TransferlabError)  # main() prints it, one line
    assert "did you mean 'repeng'" in str(result.exception) and "\n" not in str(result.exception)
    assert not out.exists(), "nothing was created"


def test_the_report_states_which_protocol_ran(tmp_path):
    from tests.probes.test_study import planted_run
    from transferlab.probes.report import write_report
    from transferlab.probes.results import ProbeResults

    root = planted_run(tmp_path / "run")
    write_report(root)
    assert "Protocol `heldout`: sign and threshold chosen on the probe's own training rows" in \
        (root / "report" / "summary.md").read_text(), "a run from before protocols is the default's"
    ProbeResults(root).update_run(protocol="repeng")
    write_report(root)
    assert "Protocol `repeng`: mishajw/repeng's conventions" in (root / "report" / "summary.md").read_text()
