"""The checkout never shadows another distribution's top-level package (Hugging Face's `datasets`).

The top-level folders are namespace portions (no `__init__.py`): a regular package of the same
name anywhere on `sys.path` wins over them, even when Python starts in the repository root, where
the current directory comes first. `dreamer_pipeline.*` must keep working in editable and regular
(wheel) installs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def python(code: str, cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_a_regular_datasets_package_wins_in_the_repository_root(tmp_path):
    fake = tmp_path / "site" / "datasets"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("IS_HUGGING_FACE_STAND_IN = True\n")
    for name in ("models", "pipelines"):
        (tmp_path / "site" / name).mkdir()
        (tmp_path / "site" / name / "__init__.py").write_text("IS_STAND_IN = True\n")
    result = python(
        "import datasets, models, pipelines; "
        "assert datasets.IS_HUGGING_FACE_STAND_IN and models.IS_STAND_IN and pipelines.IS_STAND_IN; "
        "from dreamer_pipeline.datasets.store import ExperienceStore; "
        "from dreamer_pipeline.pipelines.scores.normalised import atari55; assert len(atari55()) == 55; print('ok')",
        cwd=ROOT, pythonpath=tmp_path / "site",
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


def test_no_top_level_folder_is_a_regular_package():
    for name in ("datasets", "models", "pipelines"):
        assert not (ROOT / name / "__init__.py").exists(), f"{name}/__init__.py makes the folder shadow other packages"


def test_a_wheel_install_imports_and_reads_its_package_data(tmp_path):
    source, wheel_dir, target = tmp_path / "source", tmp_path / "wheel", tmp_path / "target"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("datasets", "models", "pipelines"):  # a copy: building leaves build/ and egg-info behind
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(source), "-w", str(wheel_dir)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    [wheel] = wheel_dir.glob("*.whl")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    assert not any((target / name).exists() for name in ("datasets", "models", "pipelines"))
    result = python(
        "import dreamer_pipeline.datasets.store as store, dreamer_pipeline.pipelines.envs.atari as atari; "
        "print(store.__file__); print(len(atari.paper_games()))",
        cwd=tmp_path, pythonpath=target,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    location, games = result.stdout.split()
    assert location.startswith(str(target)) and games == "55"
