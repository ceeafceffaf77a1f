"""Stop training at the first non-finite loss, before anything is saved from it.

A NaN or inf loss poisons the weights in the same update (its gradients are NaN too), and every
checkpoint written after it would carry the damage. The update loop calls `check_finite_losses`
on every update's metrics before it logs or writes a checkpoint (in batches, so that a GPU is not
made to wait for the host after every update), so the
last good checkpoint stays untouched and the run stops with one error that names the stage, the
update, the loss term and the stores the batch was drawn from.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

MAX_LISTED_STORES = 5


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss (or metric); nothing was saved from that update."""

    def __init__(self, stage: str, update: int, term: str, value: float, stores: Sequence[str]):
        self.stage, self.update, self.term, self.value, self.stores = stage, update, term, value, list(stores)
        listed = ", ".join(self.stores[:MAX_LISTED_STORES])
        more = f" and {len(self.stores) - MAX_LISTED_STORES} more" if len(self.stores) > MAX_LISTED_STORES else ""
        source = f"a batch from {listed}{more}" if self.stores else "a batch"
        super().__init__(
            f"{stage}: update {update}: {term} is {value} on {source}. Training stopped before saving anything "
            "from this update; the last checkpoint is untouched. Check the data with `dreamer-pipeline verify`, "
            "or lower the learning rate.")


def is_loss_term(key: str) -> bool:
    name = key.rsplit("/", 1)[-1]
    return "loss" in name or name.endswith("nll")


def check_finite_losses(metrics: Mapping[str, Any], *, stage: str, update: int, stores: Sequence[str] = ()) -> None:
    """Raise `NonFiniteLossError` if any metric of one update is NaN or infinite (loss terms named first)."""
    bad = []
    for key, value in metrics.items():
        if hasattr(value, "item"):
            value = value.item()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isfinite(value):
            bad.append((not is_loss_term(key), key, value))
    if bad:
        _, term, value = min(bad, key=lambda item: item[:2])
        raise NonFiniteLossError(stage, update, term, value, stores)
