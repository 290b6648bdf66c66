"""Configuration: lookup order, typed values, env overrides, and errors that name the culprit."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.config import Settings, load_settings
from provisioner.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_config_documents_exactly_the_defaults(tmp_path: Path) -> None:
    loaded = load_settings(str(ROOT / "oscar-deploy.cfg"), env={}, cwd=tmp_path, home=tmp_path)
    defaults = Settings()
    assert loaded.general == defaults.general
    assert loaded.provisioner == defaults.provisioner
    assert loaded.elastic == defaults.elastic


def test_lookup_order_prefers_explicit_then_env_then_cwd(tmp_path: Path) -> None:
    (tmp_path / "home" / ".config" / "oscar-deploy").mkdir(parents=True)
    (tmp_path / "home" / ".config" / "oscar-deploy" / "oscar-deploy.cfg").write_text(
        "[elastic]\nidle_time_s = 11\n")
    (tmp_path / "cwd").mkdir()
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    assert load_settings(env={}, cwd=cwd, home=home).elastic.idle_time_s == 11
    (cwd / "oscar-deploy.cfg").write_text("[elastic]\nidle_time_s = 22\n")
    assert load_settings(env={}, cwd=cwd, home=home).elastic.idle_time_s == 22
    other = tmp_path / "other.cfg"
    other.write_text("[elastic]\nidle_time_s = 33\n")
    env = {"OSCAR_DEPLOY_CONFIG": str(other)}
    assert load_settings(env=env, cwd=cwd, home=home).elastic.idle_time_s == 33
    explicit = tmp_path / "explicit.cfg"
    explicit.write_text("[elastic]\nidle_time_s = 44\n")
    assert load_settings(str(explicit), env=env, cwd=cwd, home=home).elastic.idle_time_s == 44


def test_environment_overrides_every_key_with_its_type(tmp_path: Path) -> None:
    env = {"OSCAR_DEPLOY_PROVISIONER_PARALLEL_CREATES": "25", "OSCAR_DEPLOY_ELASTIC_IDLE_TIME_S": "90.5"}
    settings = load_settings(env=env, cwd=tmp_path, home=tmp_path)
    assert settings.provisioner.parallel_creates == 25
    assert settings.elastic.idle_time_s == 90.5


@pytest.mark.parametrize(
    ("text", "env", "culprit"),
    [
        ("[nonsense]\nx = 1\n", {}, "unknown section [nonsense]"),
        ("[elastic]\nidle_tim = 1\n", {}, "unknown key 'idle_tim'"),
        ("[elastic]\nidle_time_s = soon\n", {}, "idle_time_s: 'soon' is not a valid float"),
        ("", {"OSCAR_DEPLOY_ELASTIC_IDLE": "1"}, "unknown key 'idle'"),
        ("", {"OSCAR_DEPLOY_BOGUS_KEY": "1"}, "OSCAR_DEPLOY_BOGUS_KEY names no setting"),
        ("[elastic\n", {}, "oscar-deploy.cfg"),
    ],
)
def test_bad_config_is_an_error_naming_it(tmp_path: Path, text: str, env: dict[str, str],
                                          culprit: str) -> None:
    (tmp_path / "oscar-deploy.cfg").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(env=env, cwd=tmp_path, home=tmp_path)
    assert culprit in str(info.value)


def test_missing_explicit_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(str(tmp_path / "nope.cfg"), env={}, cwd=tmp_path, home=tmp_path)


def test_site_playbook_variables_sit_between_the_generated_ones_and_the_callers(tmp_path: Path) -> None:
    """An offline site names its airgap_dir once in [provisioner] ansible_vars; --vars still wins."""
    from provisioner.configure import playbook_variables
    from provisioner.errors import BadInput

    site = tmp_path / "site.yml"
    site.write_text("airgap_dir: /srv/airgap\nk3s_version: v9.9.9+k3s1\n")
    env = {"OSCAR_DEPLOY_PROVISIONER_ANSIBLE_VARS": str(site)}
    settings = load_settings(env=env, cwd=tmp_path, home=tmp_path)
    variables = playbook_variables({"k3s_version": "v1.36.1+k3s1", "k3s_token": "t"},
                                   settings.provisioner.ansible_vars, {"k3s_version": "v1.33.0+k3s1"})
    assert variables == {"k3s_version": "v1.33.0+k3s1", "k3s_token": "t", "airgap_dir": "/srv/airgap"}
    assert playbook_variables({"a": 1}, "", None) == {"a": 1}
    site.write_text("- not\n- a mapping\n")
    with pytest.raises(BadInput, match=r"site\.yml: expected a mapping"):
        playbook_variables({}, str(site), None)
