"""No dead code: vulture over the package and the benchmarks finds nothing that nothing uses.

Uses count from the package, the benchmarks, tests/, the Snakefile and its rules and the CLI's
command table (the last two are not Python uses, so their names are handed to vulture as a file of
names), and `.vulture_allowlist.py`: what only a framework calls (torch's `forward`, protocol
methods, settings torch reads), each with its reason. Findings are reported for the package and
the benchmarks only; tests/ is read for its uses (a property a test reads is part of the package's
interface). At 60% confidence vulture reports unused functions, methods, classes, attributes and
variables, and unused imports (90%).
"""

from __future__ import annotations

import keyword
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["datasets", "models", "pipelines", "benchmarks"]
ALLOWLIST = ROOT / ".vulture_allowlist.py"
MIN_CONFIDENCE = 60


def used_names(out: Path) -> Path:
    """The names vulture cannot see used, as a file of `_.name` lines it reads as uses: every
    identifier in the Snakefile and workflow/rules/*.smk (not Python), and the commands
    pipelines/cli.py loads by their "module:attribute" strings."""
    workflow = "\n".join(p.read_text() for p in [ROOT / "Snakefile", *sorted((ROOT / "workflow/rules").glob("*.smk"))])
    names = set(re.findall(r"\b[A-Za-z_]\w*\b", workflow)) - set(keyword.kwlist) - {"None", "True", "False"}
    commands = set(re.findall(r'"[\w.]+:(\w+)"', (ROOT / "pipelines/cli.py").read_text()))
    assert commands, "no \"module:attribute\" command table found in pipelines/cli.py"
    out.write_text("_ = object()\n" + "".join(f"_.{name}\n" for name in sorted(names | commands)))
    return out


def vulture(*extra: Path) -> list[str]:
    """vulture's report lines on SOURCES and the `extra` modules."""
    command = [sys.executable, "-m", "vulture", *SOURCES, "tests", str(ALLOWLIST), *map(str, extra),
               "--min-confidence", str(MIN_CONFIDENCE)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    if result.returncode not in (0, 3):  # 3: dead code found; anything else: vulture itself failed
        pytest.fail(f"vulture failed ({result.returncode}):\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    reported = (*SOURCES, *(str(p) for p in extra))
    return [line for line in result.stdout.splitlines() if line.startswith(reported)]


@pytest.fixture(scope="module")
def used_elsewhere(tmp_path_factory):
    pytest.importorskip("vulture", reason="vulture is in the [test] extra")
    return used_names(tmp_path_factory.mktemp("vulture") / "used_names.py")


def test_no_dead_code(used_elsewhere):
    findings = vulture(used_elsewhere)
    assert not findings, ("vulture found code nothing uses. Delete it; or, if only a framework calls "
                          "it, add it to .vulture_allowlist.py with the reason:\n" + "\n".join(findings))


def test_the_check_catches_a_new_unused_function(used_elsewhere, tmp_path):
    # the same run over one more module holding a function nothing calls must fail on it
    module = tmp_path / "new_module.py"
    module.write_text("def helper_nobody_calls(x):\n    return x + 1\n")
    findings = vulture(used_elsewhere, module)
    assert any("unused function 'helper_nobody_calls'" in line for line in findings), findings


def test_the_allowlist_names_only_what_exists():
    # a stale entry would keep dead code alive: every allowed name must still be defined somewhere
    pytest.importorskip("vulture", reason="vulture is in the [test] extra")
    source = "\n".join(p.read_text() for folder in SOURCES for p in (ROOT / folder).rglob("*.py"))
    allowed = re.findall(r"^_\.(\w+)", ALLOWLIST.read_text(), re.M)
    assert allowed, "the allow-list is empty or not in the `_.name` form"
    missing = [name for name in allowed
               if not re.search(rf"\b(def|class)\s+{name}\b|\b{name}\s*[:=]|\.{name}\s*=|\*{name}\b", source)]
    assert not missing, f".vulture_allowlist.py names what no longer exists: {missing}"
