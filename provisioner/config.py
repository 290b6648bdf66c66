"""Settings: one INI file, parsed once into typed dataclasses and passed in (no import-time globals).

Where the file comes from, first found wins: ``--config``, ``$OSCAR_DEPLOY_CONFIG``, the working
directory's ``oscar-deploy.cfg``, ``~/.config/oscar-deploy/oscar-deploy.cfg``,
``/etc/oscar-deploy/oscar-deploy.cfg``; with none, the defaults below (which the shipped
``oscar-deploy.cfg`` documents). Every key can then be overridden by ``OSCAR_DEPLOY_<SECTION>_<KEY>``.
An unknown section or key, in the file or in the environment, is an error that names it.
"""

from __future__ import annotations

import configparser
import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_type_hints

from provisioner.errors import ConfigError

CONFIG_NAME = "oscar-deploy.cfg"
ENV_FILE = "OSCAR_DEPLOY_CONFIG"
ENV_PREFIX = "OSCAR_DEPLOY_"
PROVIDERS = ("aws", "openstack")
"""Clouds a template's machines can be created in (``[provisioner] default_provider``)."""


@dataclasses.dataclass(frozen=True)
class GeneralSettings:
    state: str = "~/.local/state/oscar-deploy/state.db"
    """SQLite state file (mode 0600); ``--state`` overrides it."""
    cache_dir: str = "~/.cache/oscar-deploy"
    """Where fetched template imports are cached."""
    log_level: str = "info"


@dataclasses.dataclass(frozen=True)
class ProvisionerSettings:
    parallel_creates: int = 10
    """Instances created at once."""
    create_timeout_s: float = 900.0
    """How long a machine may take to reach 'running'."""
    ssh_timeout_s: float = 600.0
    """How long the front-end and edge boards may take to answer over SSH."""
    api_retries: int = 8
    """Attempts for a throttled or 5xx cloud call."""
    retry_base_s: float = 0.5
    retry_max_s: float = 20.0
    ansible_unreachable_retries: int = 3
    ssh_user: str = "ubuntu"
    """Login user on cloud images when the template does not say."""
    ansible_vars: str = ""
    """A YAML file of playbook variables for every configure run (e.g. airgap_dir on offline sites)."""
    default_provider: str = "aws"
    """Cloud (aws or openstack) of machines whose template names none, e.g. the IM's templates."""

    def __post_init__(self) -> None:
        if self.default_provider not in PROVIDERS:
            raise ValueError(f"default_provider: {self.default_provider!r} is not one of "
                             f"{', '.join(PROVIDERS)}")


@dataclasses.dataclass(frozen=True)
class ElasticSettings:
    idle_time_s: float = 60.0
    """A worker with no user pods this long is drained and powered off (about one boot time)."""
    adaptive_idle: bool = True
    """Sooner, when the recent arrival rate says the node will not be needed within a boot."""
    cooldown_s: float = 30.0
    """A node is never powered off this soon after its power-on."""
    max_wait_poweron_s: float = 600.0
    """A node not Ready this long after power-on is failed and removed."""
    max_wait_poweroff_s: float = 300.0
    extra_free: int = 0
    """Spare idle nodes kept on."""
    max_booting: int = 0
    """Nodes powering on at once; 0 means unlimited."""
    max_nodes: int = 0
    """Cluster-wide cap on workers; 0 means only the groups' max."""
    pending_grace_s: float = 30.0
    """A pod pending with no node and no Unschedulable condition this long counts as demand."""
    wait_target_s: float = 90.0
    """A pending pod expected (from its service's past run times) to get room on a running node
    sooner than a boot, or within this long, waits for it instead of powering a node on."""
    batch_idle_s: float = 0.2
    batch_max_s: float = 2.0
    tick_s: float = 10.0
    backoff_min_s: float = 300.0
    backoff_max_s: float = 1800.0
    system_namespaces: str = "kube-system,kube-public,kube-node-lease"
    metrics_port: int = 9153
    drain_timeout_s: float = 120.0
    """How long a scale-down retries evictions (PodDisruptionBudgets) before it is undone."""
    eviction_retry_s: float = 2.0
    """Wait between eviction attempts while draining."""
    namespace: str = "kube-system"
    """Namespace of the daemon's Lease and status/requests ConfigMaps (the ``nodes`` commands too)."""


@dataclasses.dataclass(frozen=True)
class Settings:
    general: GeneralSettings = dataclasses.field(default_factory=GeneralSettings)
    provisioner: ProvisionerSettings = dataclasses.field(default_factory=ProvisionerSettings)
    elastic: ElasticSettings = dataclasses.field(default_factory=ElasticSettings)
    source: str | None = None
    """The file these came from, if any."""


_SECTIONS: dict[str, type] = {
    "general": GeneralSettings,
    "provisioner": ProvisionerSettings,
    "elastic": ElasticSettings,
}


def candidate_paths(explicit: str | None, env: Mapping[str, str], cwd: Path, home: Path) -> list[Path]:
    """The config files looked at, in order; the first that exists wins."""
    if explicit:
        return [Path(explicit)]
    if env.get(ENV_FILE):
        return [Path(env[ENV_FILE])]
    return [
        cwd / CONFIG_NAME,
        home / ".config" / "oscar-deploy" / CONFIG_NAME,
        Path("/etc/oscar-deploy") / CONFIG_NAME,
    ]


def _convert(raw: str, typ: Any, where: str) -> Any:
    try:
        if typ is bool:
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if typ is int:
            return int(raw)
        if typ is float:
            return float(raw)
        return raw.strip()
    except ValueError:
        raise ConfigError(f"{where}: {raw!r} is not a valid {typ.__name__}") from None


def _section_values(cls: type, values: Mapping[str, str], where: str) -> Any:
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, raw in values.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(known))})")
        kwargs[key] = _convert(raw, hints[key], f"{where}: {key}")
    try:
        return cls(**kwargs)
    except ValueError as error:  # a value of the right type but outside its allowed set
        raise ConfigError(f"{where}: {error}") from None


def load_settings(
    explicit: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    home: Path | None = None,
) -> Settings:
    """Read the first config file found and apply ``OSCAR_DEPLOY_<SECTION>_<KEY>`` overrides."""
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    home = Path.home() if home is None else home
    raw: dict[str, dict[str, str]] = {name: {} for name in _SECTIONS}
    source = None
    for path in candidate_paths(explicit, env, cwd, home):
        if path.is_file():
            source = str(path)
            parser = configparser.ConfigParser(interpolation=None, default_section="__none__")
            try:
                parser.read(path, encoding="utf-8")
            except configparser.Error as exc:
                raise ConfigError(f"{path}: {exc}".replace("\n", " ")) from None
            for section in parser.sections():
                if section not in _SECTIONS:
                    raise ConfigError(
                        f"{path}: unknown section [{section}] (known: {', '.join(_SECTIONS)})"
                    )
                raw[section].update(parser.items(section))
            break
        if explicit or env.get(ENV_FILE):
            raise ConfigError(f"{path}: config file not found")

    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_FILE:
            continue
        rest = name[len(ENV_PREFIX):].lower()
        section, _, key = rest.partition("_")
        if section not in _SECTIONS or not key:
            raise ConfigError(
                f"environment: {name} names no setting (expected {ENV_PREFIX}<SECTION>_<KEY>, "
                f"sections: {', '.join(s.upper() for s in _SECTIONS)})"
            )
        raw[section][key] = value

    sections = {
        name: _section_values(cls, raw[name], f"{source or 'environment'} [{name}]")
        for name, cls in _SECTIONS.items()
    }
    return Settings(**sections, source=source)

