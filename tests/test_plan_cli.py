"""The `plan`/`validate` commands as a user runs them, and the CLI's lazy start-up."""

from __future__ import annotations

import json
import os
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


def oscar_deploy(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OSCAR_DEPLOY_GENERAL_CACHE_DIR": str(tmp_path / "cache"),
           "OSCAR_DEPLOY_CONFIG": str(REPO / "oscar-deploy.cfg")}
    return subprocess.run([sys.executable, "-m", "provisioner.cli", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=120)


AWS = "tosca/templates/oscar-aws.yaml"


def test_plan_json_is_one_document_on_stdout_and_warnings_go_to_stderr(tmp_path: Path) -> None:
    done = oscar_deploy("plan", AWS, "-o", "json", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)  # the whole of stdout, nothing else
    assert document["groups"] and document["cost_per_hour"] > 0
    assert "0.0.0.0/0" in done.stderr and done.stderr.count("0.0.0.0/0: SSH") <= 1


def test_plan_table_and_validate(tmp_path: Path) -> None:
    table = oscar_deploy("plan", AWS, "-i", "admin_cidr=203.0.113.0/24", tmp_path=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "t3a.medium" in table.stdout and "Estimated cost" in table.stdout and not table.stderr
    valid = oscar_deploy("validate", AWS, tmp_path=tmp_path)
    assert valid.returncode == 0 and "valid" in valid.stdout


def test_an_unknown_instance_type_exits_2_naming_node_and_value_without_traceback(tmp_path: Path) -> None:
    done = oscar_deploy("plan", AWS, "-i", "wn_instance_type=t3.mediun", tmp_path=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and not done.stdout
    assert "wn" in done.stderr and "'t3.mediun'" in done.stderr and "t3.medium" in done.stderr


MINIMAL = "tests/broken/valid_minimal.yaml"  # a FrontEnd that names no provider


def test_default_provider_setting_decides_where_a_provider_less_template_plans(tmp_path: Path) -> None:
    default = oscar_deploy("plan", MINIMAL, "-o", "json", tmp_path=tmp_path)
    assert default.returncode == 0, default.stderr
    assert [g["provider"] for g in json.loads(default.stdout)["groups"]] == ["aws"]

    config = tmp_path / "openstack.cfg"
    config.write_text("[provisioner]\ndefault_provider = openstack\n")
    chosen = oscar_deploy("--config", str(config), "plan", MINIMAL, "-o", "json", tmp_path=tmp_path)
    assert chosen.returncode == 0, chosen.stderr
    group = json.loads(chosen.stdout)["groups"][0]
    assert (group["provider"], group["size"]) == ("openstack", "flavor≥2cpu/4096MiB")

    named = oscar_deploy("--config", str(config), "plan", AWS, "-o", "json", tmp_path=tmp_path)
    assert {g["provider"] for g in json.loads(named.stdout)["groups"]} == {"aws"}, "a named provider wins"


def test_an_unknown_default_provider_is_a_config_error_naming_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.cfg"
    config.write_text("[provisioner]\ndefault_provider = gcp\n")
    done = oscar_deploy("--config", str(config), "validate", MINIMAL, tmp_path=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert str(config) in done.stderr and "default_provider" in done.stderr and "'gcp'" in done.stderr


SHIPPED = ("oscar-aws", "oscar-openstack", "oscar-edge", "oscar-hybrid")


def installed_command() -> list[str]:
    """The installed ``oscar-deploy`` beside this interpreter (the venv's), else the module."""
    beside = Path(sys.executable).parent / "oscar-deploy"
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "provisioner.cli"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_templates_validate_and_plan_by_name_from_any_directory_with_no_inputs(
        name: str, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "OSCAR_DEPLOY_GENERAL_CACHE_DIR": str(tmp_path / "cache"), "HOME": str(tmp_path)}
    env.pop("OSCAR_DEPLOY_CONFIG", None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*installed_command(), *args], capture_output=True, text=True, cwd=elsewhere,
                              env=env, timeout=120)

    valid = run("validate", f"{name}.yaml")
    assert valid.returncode == 0 and f"{name}.yaml: valid" in valid.stdout, valid.stderr
    planned = run("plan", name, "-o", "json")
    assert planned.returncode == 0, planned.stderr
    document = json.loads(planned.stdout)
    assert Path(document["sources"][0]).name == f"{name}.yaml" and document["groups"]
    assert "Traceback" not in planned.stderr
    # the open default admin CIDR is worth a warning only where a security group would apply it
    assert ("0.0.0.0/0" in planned.stderr) == (name != "oscar-edge"), planned.stderr
    assert not list(elsewhere.iterdir()), "planning wrote into the working directory"
