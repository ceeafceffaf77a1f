"""`StoreError`: the one error type of experience stores (its own module so that the chunk reader
and writer, which `store.py` builds on, can raise it too), and `SchemaError`, for attributes that
describe no valid action space or image shape (here so that `schema.py` and `action_space.py`
share it)."""

from __future__ import annotations

import os


class StoreError(ValueError):
    """A store that cannot be used: missing, foreign, of the wrong version or schema, corrupt, or
    locked by another writer. The message names the store and the problem."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"experience store {self.path}: {problem}")


class SchemaError(ValueError):
    """Attributes that do not describe a valid action space or image shape (the message says why)."""
