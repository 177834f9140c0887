"""PCA-G: the first principal component after subtracting each group's mean."""

from __future__ import annotations

from transferlab.probes.algorithms import _common as C
from transferlab.probes.algorithms.base import Probe


class PCAG(Probe):
    """Direction = first principal component of group-centred rows (groups with both labels).

    Inside a question the rows differ mostly by whether their answer is right, so this
    unsupervised direction tends to be the truth direction.
    """

    name = "pca-g"
    uses_groups = True

    def __init__(self) -> None:
        pass

    def _direction(self, X, y, codes, answer_types):
        return C.top_component(X, codes), None
