"""Partition keys from files never become paths."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from quire_assets.resources.io_manager import safe_name


@pytest.mark.parametrize("key", ["RAD/2019/0042", "../x", "..", ".", "a\\b", "no-accession:1.2.3", "Ü/…", ""])
def test_safe_names_are_single_reversible_path_parts(key):
    name = safe_name(key)
    assert "/" not in name and "\\" not in name
    assert not name.startswith(".")
    assert name not in ("", ".", "..")
    if key:
        assert unquote(name) == key


def test_very_long_keys_are_bounded():
    name = safe_name("x/" * 400)
    assert len(name) <= 200 and "/" not in name
