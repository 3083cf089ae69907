"""Shared fixtures: the bundled real-text sample (the package's own data, never ../shared)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from thresher.demo import sample_path


@pytest.fixture(scope="session")
def sample_pool() -> Path:
    return sample_path("pool.parquet")


@pytest.fixture(scope="session")
def news_target() -> Path:
    return sample_path("target_news.jsonl")


@pytest.fixture(scope="session")
def small_pool(tmp_path_factory) -> Path:
    """The first 1,500 records of the bundled pool: big enough to be real, small enough to run often."""
    path = tmp_path_factory.mktemp("small") / "pool.parquet"
    pq.write_table(pq.read_table(sample_path("pool.parquet")).slice(0, 1500), path, row_group_size=400)
    return path


@pytest.fixture(scope="session")
def sample_records(sample_pool) -> list[dict]:
    return pq.read_table(sample_pool).slice(0, 60).to_pylist()
