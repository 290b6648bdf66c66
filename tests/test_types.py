"""The policy's pure core and its data are type-checked strictly (mypy ``--strict``): the daemon,
the simulator and the benchmarks all call ``decide()``, so a type slip there is everyone's bug."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STRICT = ("elastic/policy", "elastic/model.py", "provisioner/health.py",  # health: what `check` judges
          "provisioner/podrules.py", "provisioner/knownhosts.py")


def test_policy_and_model_pass_mypy_strict() -> None:
    """mypy comes with the ``test`` extra (pip install -e '.[test]')."""
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--cache-dir",
         str(REPO / ".mypy_cache"), *STRICT],
        cwd=REPO, capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
