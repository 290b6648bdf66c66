"""The broken corpus (tests/broken/cases.yaml): every case is refused with exit 2, no traceback,
and one short paragraph naming the file and the culprit — through the real CLI, and through the
loader directly (so a planner change cannot hide a loader regression)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from provisioner.config import GeneralSettings, Settings, load_settings
from provisioner.errors import BadInput
from provisioner.plan import make_plan
from provisioner.resources import templates_dir
from provisioner.template import load_cluster_spec, parse_input_pairs

BROKEN = Path(__file__).resolve().parent / "broken"
CASES: list[dict[str, Any]] = yaml.safe_load((BROKEN / "cases.yaml").read_text())


def _args(case: dict[str, Any]) -> list[str]:
    args = []
    for arg in case["args"]:
        if arg.startswith("templates/"):
            args.append(str(templates_dir() / arg.removeprefix("templates/")))
        elif arg.endswith(".yaml"):
            args.append(str(BROKEN / arg))
        else:
            args.append(arg)
    return args


def _global_args(case: dict[str, Any]) -> list[str]:
    return ["--config", str(BROKEN / case["config"])] if "config" in case else []


def test_the_corpus_is_big_enough_and_every_file_is_used() -> None:
    assert len(CASES) >= 25
    used = {arg for case in CASES for arg in [*case["args"], case.get("config")]}
    ignored = used | {"cases.yaml", "valid_minimal.yaml"}
    unused = [p.name for p in [*BROKEN.glob("*.yaml"), *BROKEN.glob("*.cfg")] if p.name not in ignored]
    assert not unused, f"corpus files no case uses: {unused}"


def test_the_minimal_template_the_corpus_breaks_is_itself_valid() -> None:
    spec = load_cluster_spec([BROKEN / "valid_minimal.yaml"], {})
    assert [g.role for g in spec.groups] == ["front-end"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_cli_refuses_with_exit_2_and_names_file_and_culprit(case: dict[str, Any]) -> None:
    from provisioner.cli import main

    result = CliRunner().invoke(main, [*_global_args(case), "validate", *_args(case)])
    output = result.output
    assert result.exit_code == 2, output
    assert "Traceback" not in output
    assert sum(line.startswith("error:") for line in output.splitlines()) == 1, output
    assert len(output.strip().splitlines()) <= 3, f"not one short paragraph:\n{output}"
    for expected in case["expect"]:
        assert expected in output, f"{expected!r} missing from: {output}"
    for forbidden in case.get("forbid", []):
        assert forbidden not in output, f"{forbidden!r} must not be shown: {output}"


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_loader_raises_bad_input_naming_file_and_culprit(case: dict[str, Any], tmp_path: Path) -> None:
    if "config" in case:  # the settings are read before any template
        with pytest.raises(BadInput) as caught:
            load_settings(str(BROKEN / case["config"]), env={}, cwd=tmp_path, home=tmp_path)
        assert all(expected in str(caught.value) for expected in case["expect"]), str(caught.value)
        return
    args = _args(case)
    templates, pairs, inputs_file = [], [], None
    while args:
        arg = args.pop(0)
        if arg == "-i":
            pairs.append(args.pop(0))
        elif arg == "--inputs":
            inputs_file = args.pop(0)
        else:
            templates.append(Path(arg))
    with pytest.raises(BadInput) as caught:
        spec = load_cluster_spec(templates, parse_input_pairs(pairs, inputs_file))
        if case.get("stage") == "plan":
            make_plan(spec, Settings(GeneralSettings(cache_dir=str(tmp_path / "cache"))))
    message = str(caught.value)
    assert "\n" not in message.strip()
    for expected in case["expect"]:
        assert expected in message
