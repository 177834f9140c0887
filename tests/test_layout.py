"""The source tree keeps its layout: no import circle, imports point down the layers, no study
imports another, no module over 400 lines (tools/check_layout.py, on the real tree and on a
copy with each rule broken once)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

TOOLS = Path(__file__).parents[1] / "tools"
sys.path.insert(0, str(TOOLS))

import check_layout  # noqa: E402


def test_the_source_tree_keeps_its_layout():
    assert check_layout.problems() == []
    done = subprocess.run([sys.executable, str(TOOLS / "check_layout.py")], capture_output=True, text=True)
    assert done.returncode == 0 and "no circle" in done.stdout


def test_each_broken_rule_is_reported(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(check_layout.ROOT / "transferlab", src / "transferlab",
                    ignore=shutil.ignore_patterns("__pycache__"))
    pkg = src / "transferlab"

    def append(relative: str, text: str) -> None:
        path = pkg / relative
        path.write_text(path.read_text() + "\n" + text + "\n")

    append("stats.py", "def _circle():\n    from transferlab.tasks import base  # noqa")
    append("tasks/base.py", "def _circle():\n    from transferlab import stats  # noqa")
    append("learn/sft.py", "from transferlab.engine.store import Store  # noqa")
    append("probes/plan.py", "from transferlab.transfer.analysis import seed_mean  # noqa")
    append("models.py", "\n".join(f"# filler {i}" for i in range(400)))
    found = "\n".join(check_layout.problems(src))
    assert "import circle: transferlab.stats -> transferlab.tasks.base" in found
    assert "transferlab.learn.sft (learn) imports transferlab.engine.store (engine)" in found
    assert "study 'probes' imports study 'transfer'" in found
    assert "models.py:" in found and "more than 400" in found
