"""Dataset statistics through dask, checked against plain numpy; a dask.distributed LocalCluster run."""

from __future__ import annotations

import numpy as np
import pytest

from dreamer_pipeline.datasets.dataset import Replay, open_dataset
from dreamer_pipeline.datasets.stats import dataset_stats, format_stats
from dreamer_pipeline.datasets.store import ExperienceStore
from factories import make_store


def numpy_reference(paths):
    stores = [ExperienceStore(p) for p in paths]
    cat = {k: np.concatenate([s.read(k) for s in stores]) for k in ("image", "action", "reward", "is_first", "is_terminal")}
    lengths = np.concatenate([s.episodes().lengths for s in stores])
    episode_id = np.cumsum(cat["is_first"]) - 1
    returns = np.bincount(episode_id, weights=cat["reward"].astype(np.float64))
    transition = ~cat["is_first"]
    reward = cat["reward"][transition]
    image = cat["image"].astype(np.float64)
    return {
        "lengths": lengths, "returns": returns, "transitions": int(transition.sum()),
        "hist": np.bincount(cat["action"][transition], minlength=6),
        "nonzero": int((reward != 0).sum()), "sum": float(reward.astype(np.float64).sum()),
        "min": float(reward.min()), "max": float(reward.max()),
        "pixel_mean": image.mean(), "pixel_std": image.std(), "terminal": int(cat["is_terminal"].sum()),
    }


@pytest.fixture
def two_stores(tmp_path):
    return [make_store(tmp_path / "a.zarr", [30, 7, 51, 2], seed=4, chunk_steps=16),
            make_store(tmp_path / "b.zarr", [40, 13], seed=5, chunk_steps=16)]


def check_against_numpy(stats, reference):
    assert stats["steps"] == reference["lengths"].sum() and stats["episodes"] == len(reference["lengths"])
    assert stats["transitions"] == reference["transitions"]
    for key, ref in (("episode_length", reference["lengths"]), ("episode_return", reference["returns"])):
        summary = stats[key]
        np.testing.assert_allclose(
            [summary["min"], summary["mean"], summary["median"], summary["max"], summary["p5"], summary["p95"]],
            [ref.min(), ref.mean(), np.median(ref), ref.max(), np.percentile(ref, 5), np.percentile(ref, 95)],
        )
    assert stats["actions"]["histogram"] == reference["hist"].tolist()
    reward = stats["reward"]
    assert (reward["nonzero"], reward["min"], reward["max"]) == (reference["nonzero"], reference["min"], reference["max"])
    np.testing.assert_allclose([reward["sum"], reward["mean"]], [reference["sum"], reference["sum"] / reference["transitions"]])
    np.testing.assert_allclose([stats["pixels"]["mean"], stats["pixels"]["std"]], [reference["pixel_mean"], reference["pixel_std"]])
    assert stats["terminal_episodes"] == reference["terminal"]


def test_stats_match_numpy(two_stores):
    stats = dataset_stats(open_dataset(*two_stores), block_steps=32)
    check_against_numpy(stats, numpy_reference(two_stores))
    assert list(stats["steps_per_store"].values()) == [90, 53]
    table = format_stats(stats)
    assert "episode length" in table and "NOOP" in table and "steps per store" in table


def test_stats_cover_only_the_replay_window(two_stores):
    replay = Replay(two_stores, capacity_steps=54)  # b: 13 + 40; a's last episode (2) would exceed 54
    stats = dataset_stats(replay)
    assert stats["steps"] == 53 and stats["episode_length"]["max"] == 40
    assert stats["steps_per_store"] == {str(two_stores[1]): 53}


def test_reward_free_stats_have_no_rewards(tmp_path):
    stats = dataset_stats(make_store(tmp_path / "f.zarr", [9, 12], reward_free=True))
    assert stats["reward"] is None and stats["episode_return"] is None and not stats["has_reward"]
    assert "reward-free" in format_stats(stats)


def test_stats_on_a_local_dask_cluster(two_stores):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        stats = dataset_stats(open_dataset(*two_stores), scheduler=cluster.scheduler_address)
    check_against_numpy(stats, numpy_reference(two_stores))
