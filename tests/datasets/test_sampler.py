"""SequenceSampler: window selection against the paper's formulas, batch contents, memory bound, DataLoader."""

from __future__ import annotations

import numpy as np
import pytest

from dreamer_pipeline.datasets.dataset import open_dataset
from dreamer_pipeline.datasets.sampler import SamplerError, SequenceSampler
from dreamer_pipeline.datasets.store import ExperienceStore
from factories import make_store, step_id


@pytest.fixture
def dataset(tmp_path):
    a = make_store(tmp_path / "a.zarr", [40, 3, 25, 60], seed=1, chunk_steps=16)
    b = make_store(tmp_path / "b.zarr", [30, 12], seed=2, chunk_steps=16)
    return open_dataset(a, b)


def check_batch_against_stores(sampler, batch, episode, offset):
    T = sampler.seq_len
    for i in range(len(episode)):
        store = sampler.data.stores[sampler.store_of[episode[i]]]
        start = int(sampler.start_of[episode[i]] + offset[i])
        np.testing.assert_array_equal(batch["image"][i], store.read("image", start, start + T))
        for key in ("action", "reward", "is_last", "is_terminal"):
            np.testing.assert_array_equal(batch[key][i], store.read(key, start, start + T))
        stored_first = store.read("is_first", start, start + T)
        np.testing.assert_array_equal(batch["is_first"][i, 1:], stored_first[1:])
    assert batch["is_first"][:, 0].all()  # every window starts from the zero state (published replay)


@pytest.mark.parametrize("cache", ["none", "lru", "ram"])
@pytest.mark.parametrize("mode", ["episode", "step"])
def test_batches_match_the_stores_and_never_cross_episodes(dataset, cache, mode):
    sampler = SequenceSampler(dataset, batch_size=6, seq_len=10, mode=mode, cache=cache, seed=3, threads=2)
    for _ in range(15):
        episode, offset = sampler.sample_windows()
        batch = sampler.gather(episode, offset)
        assert batch["image"].shape == (6, 10, 64, 64, 1) and batch["image"].dtype == np.uint8
        assert batch["action"].dtype == np.int64 and batch["reward"].dtype == np.float32
        assert all(batch[k].dtype == bool and batch[k].shape == (6, 10) for k in ("is_first", "is_last", "is_terminal"))
        ids = step_id(batch["image"])
        assert np.all(np.diff(ids, axis=1) == 1)  # consecutive steps of one store
        assert not batch["is_first"][:, 1:].any() and not batch["is_last"][:, :-1].any()  # inside one episode
    check_batch_against_stores(sampler, batch, episode, offset)


def test_short_episodes_are_skipped_and_all_short_is_an_error(tmp_path):
    data = open_dataset(make_store(tmp_path / "s.zarr", [3, 20, 4], chunk_steps=8))
    sampler = SequenceSampler(data, batch_size=32, seq_len=5)
    ids = step_id(sampler.sample()["image"])
    assert ids.min() >= 3 and ids.max() < 23  # only the 20-step episode (steps 3..22)
    with pytest.raises(SamplerError, match="no episode has at least seq_len=21"):
        SequenceSampler(data, seq_len=21)


def test_prioritize_ends_matches_the_paper_formula(tmp_path):
    # One episode of length 8, T = 5: start = min(randint(0, 9), 3) -> P = 1/9, 1/9, 1/9, 6/9
    data = open_dataset(make_store(tmp_path / "e.zarr", [8]))
    n = 20000
    for prioritize, expected in [(True, [1 / 9, 1 / 9, 1 / 9, 6 / 9]), (False, [0.25] * 4)]:
        sampler = SequenceSampler(data, batch_size=n, seq_len=5, prioritize_ends=prioritize, seed=1)
        _, offset = sampler.sample_windows()
        freq = np.bincount(offset, minlength=4) / n
        assert freq.shape == (4,)
        np.testing.assert_allclose(freq, expected, atol=4 * np.sqrt(0.25 / n))


def test_episode_mode_versus_step_uniform_mode(tmp_path):
    # Episodes of 6 and 10 steps, T = 5: 2 and 6 windows. Episode mode: each episode 1/2.
    # Step mode: each of the 8 windows 1/8, so the long episode gets 6/8.
    data = open_dataset(make_store(tmp_path / "u.zarr", [6, 10]))
    n = 16000
    step = SequenceSampler(data, batch_size=n, seq_len=5, mode="step", seed=2)
    episode, offset = step.sample_windows()
    window = np.where(episode == 0, offset, 2 + offset)
    np.testing.assert_allclose(np.bincount(window, minlength=8) / n, [1 / 8] * 8, atol=4 * np.sqrt(1 / 8 / n))
    uniform_episode = SequenceSampler(data, batch_size=n, seq_len=5, mode="episode", seed=2)
    episode, _ = uniform_episode.sample_windows()
    assert abs(np.mean(episode == 1) - 0.5) < 0.02


def test_deterministic_given_seed(dataset):
    def draw(seed, cache="none"):
        sampler = SequenceSampler(dataset, batch_size=4, seq_len=8, seed=seed, cache=cache)
        return [sampler.sample() for _ in range(3)]

    first, again, ram, other = draw(7), draw(7), draw(7, "ram"), draw(8)
    for x, y, z in zip(first, again, ram):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
            np.testing.assert_array_equal(x[key], z[key])
    assert not np.array_equal(first[0]["image"], other[0]["image"])


def test_reward_free_batches_have_no_reward(tmp_path):
    data = open_dataset(make_store(tmp_path / "f.zarr", [20, 20], reward_free=True))
    sampler = SequenceSampler(data, batch_size=2, seq_len=5)
    assert not sampler.has_reward and "reward" not in sampler.sample()


def test_default_mode_reads_only_the_chunks_a_batch_needs(tmp_path):
    # 1,600 steps in 100 chunks of 16; a batch of 2 windows of 10 touches at most 4 chunks.
    store = make_store(tmp_path / "big.zarr", [400] * 4, chunk_steps=16)
    sampler = SequenceSampler(open_dataset(store), batch_size=2, seq_len=10)
    assert sampler.chunk_reads == 0  # construction loads no image
    for batches in range(1, 6):
        sampler.sample()
        assert sampler.chunk_reads <= 4 * batches
    total_image_bytes = ExperienceStore(store).num_steps * 64 * 64
    assert sampler.resident_image_bytes <= total_image_bytes // 10
    lru = SequenceSampler(open_dataset(store), batch_size=2, seq_len=10, cache="lru", cache_bytes=3 * 16 * 4096)
    for _ in range(20):
        lru.sample()
    assert lru.resident_image_bytes <= 3 * 16 * 4096  # the LRU holds at most cache_bytes


def test_bad_settings(dataset):
    with pytest.raises(SamplerError, match="mode"):
        SequenceSampler(dataset, mode="uniform")
    with pytest.raises(SamplerError, match="cache"):
        SequenceSampler(dataset, cache="disk")


def test_dataloader_with_two_workers(dataset):
    torch = pytest.importorskip("torch")
    from dreamer_pipeline.datasets.torch_loader import make_loader, to_torch

    kwargs = dict(batch_size=3, seq_len=6, seed=5)
    loader = make_loader(dataset, num_workers=2, limit=3, **kwargs)
    batches = list(loader)
    assert len(batches) == 6
    assert batches[0]["image"].dtype == torch.uint8 and batches[0]["action"].dtype == torch.int64
    keys = {tuple(step_id(b["image"].numpy()).ravel()) for b in batches}
    assert len(keys) == 6  # the two workers do not repeat each other
    again = list(make_loader(dataset, num_workers=2, limit=3, **kwargs))
    for x, y in zip(batches, again):  # reproducible across runs
        assert torch.equal(x["image"], y["image"])
    single = list(make_loader(dataset, num_workers=0, limit=2, **kwargs))
    reference = SequenceSampler(dataset, **kwargs)
    for got in single:
        expected = to_torch(reference.sample())
        assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_zarr_fallback_reads_the_same_batches(dataset, monkeypatch):
    from dreamer_pipeline.datasets.chunks import ChunkReader

    fast = SequenceSampler(dataset, batch_size=4, seq_len=9, seed=11)
    assert all(reader.fast for reader in fast.readers)
    expected = [fast.sample() for _ in range(3)]
    monkeypatch.setattr(ChunkReader, "_fast_path_directory", staticmethod(lambda array: None))
    slow = SequenceSampler(dataset, batch_size=4, seq_len=9, seed=11)
    assert not any(reader.fast for reader in slow.readers)
    for batch in expected:
        got = slow.sample()
        assert all(np.array_equal(batch[k], got[k]) for k in batch)


def test_prefetch_yields_the_same_batches(dataset):
    expected = SequenceSampler(dataset, batch_size=3, seq_len=7, seed=9)
    stream = SequenceSampler(dataset, batch_size=3, seq_len=7, seed=9).prefetch(depth=2)
    for _ in range(4):
        got, want = next(stream), expected.sample()
        assert all(np.array_equal(got[k], want[k]) for k in want)
    stream.close()  # stops the background thread


def test_windows_inside_episodes_start_with_is_first(tmp_path):
    """The published replay sets is_first on the first step of every sampled sequence, so a window
    that starts mid-episode is filtered from the zero state with a zeroed first action."""
    data = open_dataset(make_store(tmp_path / "w.zarr", [60], chunk_steps=16))
    sampler = SequenceSampler(data, batch_size=64, seq_len=10, prioritize_ends=False, seed=0)
    episode, offset = sampler.sample_windows()
    batch = sampler.gather(episode, offset)
    assert (offset > 0).sum() > 50  # most windows start inside the episode
    assert batch["is_first"][:, 0].all() and not batch["is_first"][:, 1:].any()
    store = ExperienceStore(data.stores[0].path)
    assert not store.read("is_first", int(offset.max()), int(offset.max()) + 1)[0]  # the store is unchanged


@pytest.mark.parametrize("mode", ["episode", "step"])
def test_device_replay_gives_the_cpu_samplers_batches(dataset, mode):
    """train.replay_device: the replay resident on a torch device (here the CPU's) yields exactly
    the batches of a SequenceSampler with the same seed, as tensors."""
    import torch

    from dreamer_pipeline.datasets.device_replay import DeviceSequenceSampler

    reference = SequenceSampler(dataset, batch_size=5, seq_len=10, mode=mode, seed=7, threads=1)
    resident = DeviceSequenceSampler(dataset, "cpu", batch_size=5, seq_len=10, mode=mode, seed=7)
    assert resident.resident_bytes >= sum(int(n) for n in dataset.episodes.length if n >= 10) * 64 * 64
    assert resident.selection.resident_image_bytes < 64 * 64 * 10  # the host copy was released
    for _ in range(4):
        expected, batch = reference.sample(), resident.sample()
        assert sorted(batch) == sorted(expected)
        for key, value in expected.items():
            assert batch[key].dtype == torch.from_numpy(value).dtype, key
            np.testing.assert_array_equal(batch[key].numpy(), value, err_msg=key)
    resident.close()
