"""`StoreError`: the one error type of experience stores (its own module so that the chunk reader
and writer, which `store.py` builds on, can raise it too)."""

from __future__ import annotations

import os


class StoreError(ValueError):
    """A store that cannot be used: missing, foreign, of the wrong version or schema, corrupt, or
    locked by another writer. The message names the store and the problem."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"experience store {self.path}: {problem}")
