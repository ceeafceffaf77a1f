"""Shared pytest fixtures. Keep this small; helpers live in tests/factories.py."""

from __future__ import annotations

import pytest

from factories import make_store


@pytest.fixture
def store_factory(tmp_path):
    """`store_factory(name, episode_lengths, **make_store_kwargs) -> Path` under the test's tmp_path."""

    def build(name, episode_lengths, **kwargs):
        return make_store(tmp_path / f"{name}.zarr", episode_lengths, **kwargs)

    return build
