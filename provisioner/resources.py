"""Where the shipped data lives: ``tosca/`` (types, templates) and ``playbooks/``.

Both ship inside the wheel next to the ``provisioner`` package (and sit beside it in a source
checkout), so the installed tool finds them from any working directory.
"""

from __future__ import annotations

from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent


def tosca_dir() -> Path:
    return _ROOT / "tosca"


def types_dir() -> Path:
    return tosca_dir() / "types"


def templates_dir() -> Path:
    return tosca_dir() / "templates"


def playbooks_dir() -> Path:
    return _ROOT / "playbooks"
