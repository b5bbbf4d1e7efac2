"""The package metadata builds without setuptools warnings (issue 13, item 18)."""

from __future__ import annotations

import warnings
from pathlib import Path

from setuptools.config.pyprojecttoml import apply_configuration
from setuptools.dist import Distribution

REPO = Path(__file__).resolve().parents[1]


def test_pyproject_metadata_has_no_deprecation_warnings() -> None:
    """``project.license`` as a table made every install print ~50 lines of warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dist = apply_configuration(Distribution(), REPO / "pyproject.toml")
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "deprecat" in m.lower()], messages
    assert dist.metadata.license_expression == "Apache-2.0"
