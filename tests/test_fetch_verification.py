"""Every artifact the roles fetch is verified (``roles/common/tasks/fetch.yml``), run for real by
ansible-playbook on this machine: from an air-gap directory, by the sha256 pinned in versions.yml or by
upstream's checksum file of the same release; a mismatch stops the play naming the file and both sums,
and an artifact with no checksum at all is refused unless versions.yml lists it as unverifiable."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.test_configure_helpers import REPO, run_tool


def _fetch(tmp: Path, airgap: Path, fetch_vars: dict[str, Any], **extra: Any) -> tuple[int, str, Path]:
    dest = tmp / "dest" / str(fetch_vars["common_fetch_file"])
    dest.parent.mkdir(exist_ok=True)
    task = {"name": "Fetch", "ansible.builtin.include_role": {"name": "common", "tasks_from": "fetch"},
            "vars": {**fetch_vars, "common_fetch_dest": str(dest)}}
    play = [{"name": "Fetch one artifact", "hosts": "localhost", "connection": "local", "gather_facts": False,
             "vars": {"ansible_python_interpreter": sys.executable, "airgap_dir": str(airgap), **extra},
             "tasks": [task]}]
    (tmp / "play.yml").write_text(yaml.safe_dump(play))
    (tmp / "ansible.cfg").write_text(f"[defaults]\nroles_path = {REPO / 'playbooks' / 'roles'}\n")
    result = run_tool("ansible-playbook", "-i", "localhost,", str(tmp / "play.yml"), cwd=tmp)
    return result.returncode, result.stdout + result.stderr, dest


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_pinned_sha256_is_checked_and_a_mismatch_names_both_sums(tmp_path: Path) -> None:
    airgap = tmp_path / "airgap"
    airgap.mkdir()
    (airgap / "chart-1.0.tgz").write_bytes(b"the real chart")
    spec = {"common_fetch_file": "chart-1.0.tgz", "common_fetch_url": "https://192.0.2.1/chart-1.0.tgz"}
    good = {"chart-1.0.tgz": _sha(b"the real chart")}
    rc, out, dest = _fetch(tmp_path, airgap, spec, artifact_sha256=good)
    assert rc == 0, out
    assert dest.read_bytes() == b"the real chart"
    dest.unlink()
    (airgap / "chart-1.0.tgz").write_bytes(b"a tampered chart")
    rc, out, dest = _fetch(tmp_path, airgap, spec, artifact_sha256=good)
    assert rc != 0 and not dest.exists()
    assert f"{airgap}/chart-1.0.tgz: sha256 mismatch: expected {good['chart-1.0.tgz']}, " \
           f"actual {_sha(b'a tampered chart')}" in out


def test_upstreams_checksum_file_is_read_for_the_artifacts_line(tmp_path: Path) -> None:
    """As k3s's sha256sum-ARCH.txt lists several files: the line for the URL's file name counts."""
    airgap = tmp_path / "airgap"
    airgap.mkdir()
    (airgap / "k3s-arm64").write_bytes(b"binary")
    spec = {"common_fetch_file": "k3s-arm64", "common_fetch_url": "https://192.0.2.1/v1/k3s-arm64",
            "common_fetch_checksum_url": "https://192.0.2.1/v1/sha256sum-arm64.txt",
            "common_fetch_checksum_file": "sha256sum-arm64.txt"}
    (airgap / "sha256sum-arm64.txt").write_text(f"{_sha(b'images')}  k3s-airgap-images-arm64.tar.zst\n"
                                                f"{_sha(b'binary')}  k3s-arm64\n")
    rc, out, dest = _fetch(tmp_path, airgap, spec)
    assert rc == 0, out
    assert dest.read_bytes() == b"binary"
    dest.unlink()
    (airgap / "sha256sum-arm64.txt").write_text(f"{_sha(b'other')}  k3s-arm64\n")
    rc, out, _ = _fetch(tmp_path, airgap, spec)
    assert rc != 0 and f"expected {_sha(b'other')}, actual {_sha(b'binary')}" in out
    (airgap / "sha256sum-arm64.txt").write_text(f"{_sha(b'binary')}  k3s\n")
    rc, out, _ = _fetch(tmp_path, airgap, spec)
    assert rc != 0 and f"no line for k3s-arm64 in {airgap}/sha256sum-arm64.txt" in out


def test_an_artifact_without_any_checksum_is_refused(tmp_path: Path) -> None:
    airgap = tmp_path / "airgap"
    airgap.mkdir()
    (airgap / "oscar-9.9.9.tgz").write_bytes(b"a chart bumped without its checksum")
    spec = {"common_fetch_file": "oscar-9.9.9.tgz", "common_fetch_url": "https://192.0.2.1/oscar-9.9.9.tgz"}
    rc, out, dest = _fetch(tmp_path, airgap, spec)
    assert rc != 0 and not dest.exists()
    assert "no checksum for oscar-9.9.9.tgz" in out
    # versions.yml's own list of unverifiable downloads is the only way around it.
    versions = yaml.safe_load((REPO / "playbooks/group_vars/all/versions.yml").read_text())
    (name,) = versions["artifact_unverified"]
    (airgap / name).write_text("# a manifest\n")
    rc, out, dest = _fetch(tmp_path, airgap, {"common_fetch_file": name,
                                              "common_fetch_url": f"https://192.0.2.1/{name}"},
                           artifact_unverified=json.loads(json.dumps(versions["artifact_unverified"])))
    assert rc == 0, out
    assert dest.read_text() == "# a manifest\n"
