"""The wheel holds the sparktrack package and nothing else found beside it in a checkout."""

from __future__ import annotations

import os
import tomllib

from setuptools import find_packages

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_only_the_sparktrack_package_is_included(tmp_path):
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as file:
        include = tomllib.load(file)["tool"]["setuptools"]["packages"]["find"]["include"]
    # A checkout with a store folder (as `make run` leaves) and other look-alike folders.
    for folder in ("sparktrack", "sparktrack/_store", "sparktrack_store", "sparktrack-store",
                   "sparktrack_store/experiments", "sparktrackextras"):
        os.makedirs(tmp_path / folder, exist_ok=True)
        (tmp_path / folder / "__init__.py").write_text("")
    found = sorted(find_packages(where=str(tmp_path), include=include))
    assert found == ["sparktrack", "sparktrack._store"]
