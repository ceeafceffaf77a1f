"""The package's data files (`pipelines/data/`), read by path.

The top-level folders are namespace packages (no `__init__.py`, so a checkout never shadows
Hugging Face's `datasets`), and `importlib.resources` on Python 3.11 cannot read a namespace
package installed in editable mode. The data lies beside this module in every install.
"""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"


def data_text(name: str) -> str:
    """The text of `pipelines/data/<name>` (UTF-8)."""
    return (DATA_DIR / name).read_text(encoding="utf-8")
