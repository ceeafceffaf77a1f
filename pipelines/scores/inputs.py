"""Read evaluation results into score records: run directories, eval.json files, CSV tables.

Two inputs, one record type:

Games are Atari games, Catch or Control Suite tasks (`games.py`).

- `eval.json`, written by `dreamer-pipeline evaluate` once per iteration at
  `results/runs/{game}/{variant}/seed{seed}/iter{k:04d}/eval.json`. Its schema (format version 1)
  is documented in docs/scores.md and enforced here: required fields must be present and well
  typed, documented optional fields are checked, and any other key is an error, so a writer and
  this reader cannot drift apart silently.
- A CSV table with the header `game,method,seed,score` and an optional `frames` column, for
  results from elsewhere (another codebase, a paper's table).

Every problem is one `ScoresError` naming the file (and line) and what is wrong.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from .games import check_game
from .normalised import ScoresError

EVAL_FORMAT_VERSION = 1
EVAL_REQUIRED = {
    "game": str,
    "variant": str,
    "seed": int,
    "iteration": int,
    "frames": int,
    "returns": list,
    "mean_return": float,
}
EVAL_OPTIONAL = {
    "format_version": int,
    "lengths": list,          # agent steps per evaluation episode, aligned with `returns`
    "episodes": int,          # len(returns)
    "policy": str,            # "greedy" (the paper's evaluation) or "sample"
    "agent_steps": int,       # frames / action_repeat
    "checkpoint": str,        # the actor-critic checkpoint evaluated
    "checkpoint_sha256": str,
    "ale_py_version": str,
    "env": dict,              # the environment settings of the evaluation
    "created": str,           # ISO 8601 time
    "info": dict,             # free-form extras; the scores code never reads them
}
CSV_REQUIRED = ("game", "method", "seed", "score")
CSV_OPTIONAL = ("frames",)
_ITERATION_DIR = re.compile(r"iter(\d+)")
_SEED_DIR = re.compile(r"seed(\d+)")


@dataclass(frozen=True)
class ScoreRecord:
    """One evaluation of one seed of one method on one game."""

    game: str
    method: str
    seed: str
    score: float              # mean evaluation return
    frames: int | None        # environment frames of training when evaluated; None if unknown
    source: str               # file (and line) it came from, for error messages


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_type(path: Path, key: str, value: object, kind: type) -> None:
    if kind is float:
        ok = _is_number(value)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise ScoresError(f"{path}: field {key!r} must be {kind.__name__}, got {value!r}")


def read_eval_json(path: str | Path) -> ScoreRecord:
    """Read and validate one eval.json (schema in docs/scores.md) into a ScoreRecord."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScoresError(f"{path}: no such eval.json") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ScoresError(f"{path}: not a readable JSON file ({error})") from None
    if not isinstance(data, dict):
        raise ScoresError(f"{path}: an eval.json holds one JSON object, not {type(data).__name__}")
    missing = [key for key in EVAL_REQUIRED if key not in data]
    if missing:
        raise ScoresError(f"{path}: missing required field(s) {', '.join(missing)} "
                          f"(schema: docs/scores.md)")
    unknown = sorted(set(data) - set(EVAL_REQUIRED) - set(EVAL_OPTIONAL))
    if unknown:
        raise ScoresError(f"{path}: undocumented field(s) {', '.join(unknown)}; eval.json "
                          f"accepts {', '.join(list(EVAL_REQUIRED) + list(EVAL_OPTIONAL))} "
                          f"(put extras under 'info'; schema: docs/scores.md)")
    for key, kind in {**EVAL_REQUIRED, **EVAL_OPTIONAL}.items():
        if key in data:
            _check_type(path, key, data[key], kind)
    try:
        check_game(data["game"])
    except ScoresError as error:
        raise ScoresError(f"{path}: {error}") from None
    _check_eval_values(path, data)
    _check_layout(path, data)
    return ScoreRecord(data["game"], data["variant"], str(data["seed"]),
                       float(data["mean_return"]), data["frames"], str(path))


def _check_eval_values(path: Path, data: dict) -> None:
    if data.get("format_version", EVAL_FORMAT_VERSION) != EVAL_FORMAT_VERSION:
        raise ScoresError(f"{path}: format_version {data['format_version']} is not supported "
                          f"(this reader knows {EVAL_FORMAT_VERSION})")
    returns = data["returns"]
    if not returns or not all(_is_number(value) for value in returns):
        raise ScoresError(f"{path}: 'returns' must be a non-empty list of finite numbers")
    mean = math.fsum(returns) / len(returns)
    if not math.isclose(data["mean_return"], mean, rel_tol=1e-6, abs_tol=1e-6):
        raise ScoresError(f"{path}: mean_return {data['mean_return']} is not the mean of "
                          f"'returns' ({mean})")
    for key in ("seed", "iteration", "frames", "episodes", "agent_steps"):
        if key in data and data[key] < 0:
            raise ScoresError(f"{path}: {key!r} must be >= 0, got {data[key]}")
    if "episodes" in data and data["episodes"] != len(returns):
        raise ScoresError(f"{path}: episodes is {data['episodes']} but 'returns' holds "
                          f"{len(returns)}")
    if "lengths" in data and len(data["lengths"]) != len(returns):
        raise ScoresError(f"{path}: 'lengths' holds {len(data['lengths'])} entries, "
                          f"'returns' {len(returns)}")
    if "policy" in data and data["policy"] not in ("greedy", "sample"):
        raise ScoresError(f"{path}: policy must be 'greedy' or 'sample', got {data['policy']!r}")


def _check_layout(path: Path, data: dict) -> None:
    """Where a file sits in the run layout, its folders must agree with its contents."""
    parts = Path(os.path.abspath(path)).parts   # textual; resolve() costs syscalls per file
    if len(parts) < 5:
        return
    game, variant, seed_dir, iteration_dir = parts[-5:-1]
    iteration = _ITERATION_DIR.fullmatch(iteration_dir)
    seed = _SEED_DIR.fullmatch(seed_dir)
    if not (iteration and seed):
        return
    expected = {"game": game, "variant": variant, "seed": int(seed.group(1)),
                "iteration": int(iteration.group(1))}
    for key, value in expected.items():
        if data[key] != value:
            raise ScoresError(f"{path}: {key} is {data[key]!r} but the run layout "
                              f"{{game}}/{{variant}}/seed{{seed}}/iter{{k:04d}} says {value!r}")


def find_eval_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand run directories (searched for `iter*/eval.json`) and eval.json paths, sorted."""
    found: list[Path] = []
    for entry in map(Path, paths):
        if entry.is_dir():
            files = sorted(entry.rglob("iter*/eval.json"))
            if not files:
                raise ScoresError(f"{entry}: no iter*/eval.json below this directory")
            found.extend(files)
        elif entry.is_file():
            if entry.suffix.lower() == ".csv":
                raise ScoresError(f"{entry}: a CSV table goes to --table, not the run arguments")
            found.append(entry)
        else:
            raise ScoresError(f"{entry}: no such file or directory")
    return sorted(dict.fromkeys(found))


def read_runs(paths: Iterable[str | Path], progress: bool = False) -> list[ScoreRecord]:
    """Every evaluation below the given run directories / eval.json files."""
    files = find_eval_files(paths)
    records = [read_eval_json(path) for path in
               tqdm(files, desc="eval.json", unit="file", disable=not progress)]
    _reject_duplicates(records)
    return records


def read_score_csv(path: str | Path) -> list[ScoreRecord]:
    """A table `game,method,seed,score[,frames]` (one evaluation per row) as ScoreRecords."""
    path = Path(path)
    if not path.is_file():
        raise ScoresError(f"{path}: no such CSV table")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        missing = [name for name in CSV_REQUIRED if name not in header]
        unknown = [name for name in header if name not in CSV_REQUIRED + CSV_OPTIONAL]
        if missing or unknown:
            raise ScoresError(f"{path}: the header must be {','.join(CSV_REQUIRED)} with an "
                              f"optional frames column; missing {missing or 'none'}, "
                              f"unknown {unknown or 'none'}")
        reader.fieldnames = header
        records = []
        for line, row in enumerate(reader, start=2):
            where = f"{path}:{line}"
            if None in row or any(row[name] is None for name in header):
                raise ScoresError(f"{where}: expected {len(header)} columns")
            values = {key: value.strip() for key, value in row.items()}
            try:
                check_game(values["game"])
            except ScoresError as error:
                raise ScoresError(f"{where}: {error}") from None
            if not values["method"] or not values["seed"]:
                raise ScoresError(f"{where}: method and seed must not be empty")
            records.append(ScoreRecord(values["game"], values["method"], values["seed"],
                                       _parse_number(where, "score", values["score"]),
                                       _parse_frames(where, values.get("frames", "")), where))
    if not records:
        raise ScoresError(f"{path}: the table has a header but no rows")
    _reject_duplicates(records)
    return records


def _parse_number(where: str, name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ScoresError(f"{where}: {name} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ScoresError(f"{where}: {name} must be finite, got {text!r}")
    return value


def _parse_frames(where: str, text: str) -> int | None:
    if not text:
        return None
    value = _parse_number(where, "frames", text)
    if value < 0 or value != int(value):
        raise ScoresError(f"{where}: frames must be a whole number >= 0, got {text!r}")
    return int(value)


def _reject_duplicates(records: Sequence[ScoreRecord]) -> None:
    seen: dict[tuple, ScoreRecord] = {}
    for record in records:
        key = (record.game, record.method, record.seed, record.frames)
        if key in seen:
            when = "with no frames" if record.frames is None else f"at {record.frames} frames"
            raise ScoresError(f"two results for {record.method} seed {record.seed} on "
                              f"{record.game} {when}: {seen[key].source} and {record.source}")
        seen[key] = record


def final_records(records: Iterable[ScoreRecord]) -> dict[tuple[str, str], dict[str, ScoreRecord]]:
    """Per (method, game), each seed's final evaluation: the one with the most frames."""
    finals: dict[tuple[str, str], dict[str, ScoreRecord]] = {}
    for record in records:
        seeds = finals.setdefault((record.method, record.game), {})
        current = seeds.get(record.seed)
        if current is not None and (current.frames is None or record.frames is None):
            raise ScoresError(f"{record.method} seed {record.seed} on {record.game} has several "
                              f"results but not all give frames, so the final one is unclear: "
                              f"{current.source} and {record.source}")
        if current is None or record.frames > current.frames:
            seeds[record.seed] = record
    return finals
