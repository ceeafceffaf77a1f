"""Upper bounds on the sizes and counts a configuration or a command may ask for.

Generous for the paper's protocol (Hafner et al. 2021: 200 iterations, batches of 16 x 50, one
environment per collector) and for large machines, but a typo such as `batch_size: 1e12` or
`--envs 20000` is one clear error instead of a hang, an out-of-memory kill or a Snakemake plan that
never finishes (measured: `iterations: 1e9` made `snakemake -n` run past 60 s at 4.9 GB).
"""

from __future__ import annotations

MAX_ENVS = 256  # environments of one vector env (collector, prefill, evaluation): more than any node has cores
MAX_THREADS = 1024
MAX_STEPS = 10**10  # agent steps of one store or stage (the paper's whole run is 5 * 10**7)
MAX_ITERATIONS = 2000  # iterations of one run (the paper: 200); each is several Snakemake jobs
MAX_GAMES = 100  # the paper's benchmark has 55
MAX_SEEDS = 100
MAX_COLLECTORS = 256
MAX_BATCH_SIZE = 4096  # sequences per batch (the paper: 16 in the published code, 50 in the text)
MAX_SEQUENCE_LENGTH = 10_000  # steps per sequence (the paper: 50)
MAX_UPDATES = 10**9
MAX_EPISODES = 100_000  # evaluation episodes per iteration
MAX_WORKERS = 64  # DataLoader worker processes
MAX_VIDEO_SEQUENCES = 64


def check_at_most(where: str, value: int | float, limit: int | float) -> None:
    """Raise ValueError naming `where` if `value` exceeds `limit`."""
    if value > limit:
        raise ValueError(f"{where} is {value:,}, more than the limit {limit:,} (see pipelines/limits.py)")
