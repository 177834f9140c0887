"""Locate data files shipped inside installed PyPI packages, without importing them.

Several data packages cannot be imported here (their code wants dependencies we do not
install), so files are found through the distribution's metadata instead.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from transferlab.errors import missing_package


def package_root(distribution: str, install: str) -> Path:
    """The site-packages directory that holds `distribution`'s files."""
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        raise missing_package(distribution, "this data", install) from None
    return Path(str(dist.locate_file("")))


def package_file(distribution: str, relative: str, install: str) -> Path:
    """Path of a file shipped by an installed distribution; a clear error if it is missing."""
    path = package_root(distribution, install) / relative
    if not path.exists():
        raise missing_package(distribution, f"the file {relative}", install)
    return path
