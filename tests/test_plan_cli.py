"""The `plan`/`validate` commands as a user runs them, and the CLI's lazy start-up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("toscaparser", "libcloud", "kubernetes", "ansible", "ansible_runner", "elastic")

_PROBE = """
import json, sys
from provisioner.cli import main
try:
    main(sys.argv[1:], prog_name="oscar-deploy")
except SystemExit:
    pass
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


@pytest.mark.parametrize("args", [["--help"], ["plan", "--help"], ["validate", "--help"]])
def test_help_imports_no_heavy_library(args: list[str]) -> None:
    """--help must stay fast: libcloud, kubernetes, ansible and tosca-parser cost seconds to import."""
    done = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, cwd=REPO,
                          timeout=60, check=True)
    lines = done.stdout.strip().splitlines()
    assert "Usage: oscar-deploy" in done.stdout
    loaded = set(json.loads(lines[-1]))
    assert not loaded & set(HEAVY), f"--help imported {sorted(loaded & set(HEAVY))}"
