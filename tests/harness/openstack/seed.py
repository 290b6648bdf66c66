"""What a fresh test project holds: who may log in, flavors, images."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Credentials:
    """Who may log in. Defaults are what `driver_kwargs()` uses."""

    users: dict[tuple[str, str], str] = field(default_factory=lambda: {("demo", "Default"): "secret"})
    project: str = "demo"
    project_domain_id: str = "default"
    project_domain_name: str = "Default"
    app_creds: dict[str, str] = field(default_factory=lambda: {"appcred-id": "appcred-secret"})
    identity_provider: str = "egi.eu"
    protocol: str = "openid"
    oidc_tokens: set[str] = field(default_factory=lambda: {"oidc-access-token"})


FLAVORS = [
    ("1", "m1.tiny", 1, 512, 1, {"hw:cpu_policy": "shared"}),
    ("2", "m1.small", 1, 2048, 20, {"hw:cpu_policy": "shared"}),
    ("3", "m1.medium", 2, 4096, 40, {"hw:cpu_policy": "shared"}),
    ("4", "m1.large", 4, 8192, 80, {"hw:cpu_policy": "shared"}),
    ("5", "m1.xlarge", 8, 16384, 160, {"hw:cpu_policy": "shared"}),
    ("g1", "g1.large", 4, 16384, 80, {"pci_passthrough:alias": "nvidia-t4:1"}),
]
IMAGES = [
    ("Ubuntu 24.04 LTS (Noble Numbat)", "ubuntu", "24.04", "x86_64"),
    ("Ubuntu 24.04 LTS (Noble Numbat) arm64", "ubuntu", "24.04", "aarch64"),
    ("Ubuntu 22.04 LTS (Jammy Jellyfish)", "ubuntu", "22.04", "x86_64"),
    ("Ubuntu 22.04 LTS (Jammy Jellyfish) arm64", "ubuntu", "22.04", "aarch64"),
    ("Ubuntu 20.04 LTS (Focal Fossa)", "ubuntu", "20.04", "x86_64"),
    ("CentOS Stream 9", "centos", "9", "x86_64"),
]
