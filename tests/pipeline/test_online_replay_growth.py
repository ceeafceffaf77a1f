"""The online learner's growing replay: a collector's store is read only once it is a whole store.

A collector creates its store in several writes (zarr.json, then the attributes). The learner used
to list every store with a zarr.json and open it, so a refresh that fell between the two writes
ended the stage with "is not a dreamer-pipeline experience store" (seen once in CI).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import zarr

from dreamer_pipeline.pipelines.acting.online_link import OnlineLink
from dreamer_pipeline.pipelines.config import load_config
from dreamer_pipeline.pipelines.stages.train_online import CollectorJob, OnlineLearner, learner_batches

ROOT = Path(__file__).resolve().parents[2]


def test_a_store_being_created_is_left_out_until_it_is_whole(tmp_path, store_factory):
    cfg = load_config(ROOT / "config/debug.yaml")
    earlier = store_factory("earlier", [40, 40])
    half_made = tmp_path / "iter0001" / "experience" / "shard0.zarr"
    zarr.open_group(str(half_made), mode="w", zarr_format=3)  # zarr.json, no attributes yet
    collector = subprocess.Popen(["sleep", "60"])  # a collector still running
    try:
        job = CollectorJob(0, half_made.with_suffix(".json"), steps=100, seed=0, process=collector)
        link = OnlineLink.at(tmp_path / "online")
        link.folder.mkdir()
        link.write_collector(0, steps=100, target=100)
        learner = OnlineLearner(link, [job], train_every=1, target_updates=10, publish_every=5, lead_updates=2)
        assert learner.committed_steps() == (0,) and learner.stores_with_experience((0,)) == []
        batches = learner_batches(learner, 0, cfg, (str(earlier),), (), seed=0, device="cpu")
        batch = next(batches)  # read the replay without the half-made store
        assert batch["image"].shape[:2] == (cfg.train.batch_size, cfg.train.sequence_length)
        batches.close()
    finally:
        collector.kill()
        collector.wait()
