"""What the wheel installs: the code packages, and ``tosca/`` and ``playbooks/`` inside ``provisioner``
(mapped in ``pyproject.toml``; they stay at the repository's root), never as top-level packages of
their own; and the tool finds its templates and playbooks in that layout as in a checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_the_wheel_lists_every_code_package_and_maps_the_data_under_provisioner() -> None:
    config = _setuptools()
    on_disk = sorted(".".join(p.parent.relative_to(ROOT).parts)
                     for top in ("provisioner", "elastic") for p in (ROOT / top).rglob("__init__.py"))
    data = {"provisioner.tosca": "tosca", "provisioner.playbooks": "playbooks"}
    assert sorted(config["packages"]) == sorted([*on_disk, *data]), "a package is missing from pyproject.toml"
    assert config["package-dir"] == data
    assert not {p.split(".")[0] for p in config["packages"]} & {"tosca", "playbooks"}


def test_an_installed_layout_finds_its_templates_and_playbooks_from_anywhere(tmp_path: Path) -> None:
    """The wheel's layout, made by hand (code packages copied, data where the mapping puts it): the
    shipped template plans from another directory, and the paths point inside the installed package."""
    site = tmp_path / "site"
    for package in ("provisioner", "elastic"):
        shutil.copytree(ROOT / package, site / package, ignore=shutil.ignore_patterns("__pycache__"))
    for name, target in _setuptools()["package-dir"].items():
        shutil.copytree(ROOT / target, site.joinpath(*name.split(".")))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = ("from provisioner.resources import playbooks_dir, templates_dir\n"
             "print(templates_dir()); print(playbooks_dir())\n"
             "from provisioner.cli import main\n"
             "main(['plan', 'oscar-edge', '-o', 'json'], prog_name='oscar-deploy')\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=elsewhere,
                            env={"PYTHONPATH": str(site), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    templates, playbooks = result.stdout.splitlines()[:2]
    assert templates == str(site / "provisioner" / "tosca" / "templates")
    assert playbooks == str(site / "provisioner" / "playbooks")
    assert '"groups"' in result.stdout
