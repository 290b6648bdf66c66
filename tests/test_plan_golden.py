"""Golden cases: template(s) + inputs in, the `plan -o json` document out (pyinfra's habit).

Each ``tests/golden/<case>/`` holds ``case.yaml``::

    templates: [tosca/templates/oscar-aws.yaml]   # repo-relative, or a file of the case directory
    inputs: {wn_num: 3}                           # given as -i NAME=VALUE (optional)
    import_paths: [../shared/compat/im-tosca]    # --import-path (optional)

plus any template files of its own, and ``expected.json``, the exact stdout of
``oscar-deploy plan ... -o json`` run from the repository root. Any difference fails the test.
After an intended change, regenerate and review the diff::

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_plan_golden.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from provisioner.cli import main

REPO = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
CASES = sorted(p.parent.name for p in GOLDEN.glob("*/case.yaml"))


def _path(case_dir: Path, name: str) -> str:
    """A case's file as a repo-relative path (so ``sources`` in the plan do not depend on the checkout);
    ``../shared/...`` is the shared compatibility corpus beside the repository."""
    local = case_dir / name
    path = local if local.exists() else REPO / name
    if not path.exists():
        pytest.skip(f"{name} is absent (the shared compatibility corpus is not beside this checkout)")
    return os.path.relpath(path, REPO)


def run_case(case_dir: Path, cache_dir: Path) -> tuple[int, str, str]:
    case: dict[str, Any] = yaml.safe_load((case_dir / "case.yaml").read_text(encoding="utf-8"))
    args = ["plan", *(_path(case_dir, t) for t in case["templates"]), "-o", "json"]
    for name, value in (case.get("inputs") or {}).items():
        args += ["-i", f"{name}={value}"]
    for directory in case.get("import_paths") or ():
        args += ["--import-path", _path(case_dir, directory)]
    env = {"OSCAR_DEPLOY_GENERAL_CACHE_DIR": str(cache_dir),
           "OSCAR_DEPLOY_CONFIG": str(REPO / "oscar-deploy.cfg")}
    result = CliRunner().invoke(main, args, env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.skipif(not CASES, reason="no golden cases yet")
@pytest.mark.parametrize("case", CASES)
def test_plan_json_matches_the_golden_file(case: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    case_dir = GOLDEN / case
    code, stdout, stderr = run_case(case_dir, tmp_path)
    assert code == 0, stderr
    document = json.loads(stdout)  # stdout is one JSON document and nothing else
    for warning in document["warnings"]:
        assert warning in stderr  # every warning also reaches the operator on stderr
    expected_file = case_dir / "expected.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        expected_file.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert expected_file.is_file(), f"{expected_file} missing: run with UPDATE_GOLDEN=1 and review it"
    expected = json.loads(expected_file.read_text(encoding="utf-8"))
    assert document == expected, f"plan of {case} changed; if intended: UPDATE_GOLDEN=1 and review the diff"
