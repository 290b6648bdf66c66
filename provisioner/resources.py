"""Where the shipped data lives: ``tosca/`` (types, templates) and ``playbooks/``.

In a source checkout (and an editable install) both sit at the repository's root, beside the
``provisioner`` package; the wheel installs them inside it (``provisioner/tosca``,
``provisioner/playbooks``, mapped in ``pyproject.toml``), so it adds no top-level ``tosca`` or
``playbooks`` package to site-packages. Either way the tool finds them from any working directory.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _data(name: str) -> Path:
    installed = _PACKAGE / name
    return installed if installed.is_dir() else _PACKAGE.parent / name


def tosca_dir() -> Path:
    return _data("tosca")


def types_dir() -> Path:
    return tosca_dir() / "types"


def templates_dir() -> Path:
    return tosca_dir() / "templates"


def playbooks_dir() -> Path:
    return _data("playbooks")
