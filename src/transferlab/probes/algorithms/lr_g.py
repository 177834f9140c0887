"""LR-G: logistic regression on activations with each group's mean subtracted."""

from __future__ import annotations

from transferlab.errors import TransferlabError
from transferlab.probes.algorithms.lr import LR, fit_logistic


class LRG(LR):
    """Logistic regression on group-centred rows, so it learns what differs inside a question.

    Trains on the groups holding both labels. Its intercept belongs to centred data, so
    the threshold for raw rows is fitted on the (raw) training rows instead.
    """

    name = "lr-g"
    uses_groups = True

    def _direction(self, X, y, codes, answer_types):
        if not self.C > 0:
            raise TransferlabError(f"LR-G needs C > 0, got {self.C}")
        coef, _ = fit_logistic(X, y, self.C, self.tol, self.max_iter, codes=codes, stop=self.stop)
        return coef, None
