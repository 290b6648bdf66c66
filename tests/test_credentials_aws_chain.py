"""AWS credentials through botocore's own provider chain, as every AWS SDK finds them.

A profile with ``credential_process`` stands in for the refreshable kinds (SSO, assumed roles, web
identity, the instance's role share botocore's ``RefreshableCredentials``): the process prints
short-lived keys, each run new ones, so the test sees botocore renew them ahead of their expiry and
the EC2 driver sign with the new ones, as the elastic daemon must after an hour.
"""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path
from typing import Any

import pytest

from provisioner.clouds.ec2 import Ec2Driver
from provisioner.config import ProvisionerSettings
from provisioner.credentials import (
    AwsCredentials,
    CredentialSource,
    credentials_from_source,
    resolve_credentials,
)
from provisioner.errors import CredentialsError

REGION = "eu-west-1"


def _process(tmp_path: Path, minutes: int) -> Path:
    """A credential process whose keys expire in ``minutes`` and change at every run (it counts)."""
    counter = tmp_path / "runs"
    script = tmp_path / "creds.py"
    expiry = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
    script.write_text(
        "#!/usr/bin/env python3\n"
        "import json, pathlib\n"
        f"p = pathlib.Path({str(counter)!r})\n"
        "n = int(p.read_text()) + 1 if p.exists() else 1\n"
        "p.write_text(str(n))\n"
        f"print(json.dumps({{'Version': 1, 'AccessKeyId': f'AKIDPROCESS{{n:09d}}', "
        f"'SecretAccessKey': f'process-secret-{{n}}-xyz', 'SessionToken': f'process-token-{{n}}', "
        f"'Expiration': {expiry!r}}}))\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance role to find here
    return home


def test_a_profile_with_credential_process_is_read_and_renewed(tmp_path: Path, home: Path,
                                                               ec2_emulator: Any) -> None:
    script = _process(tmp_path, minutes=5)  # inside botocore's refresh window: renewed on each use
    (home / ".aws" / "config").write_text(f"[profile ci]\nregion = {REGION}\ncredential_process = {script}\n")
    creds = resolve_credentials(["aws"], None, {"AWS_PROFILE": "ci"}, home)["aws"]
    assert isinstance(creds, AwsCredentials)
    assert creds.source == CredentialSource("aws-sdk-chain", str(home / ".aws" / "config"), "ci")
    assert creds.region == REGION and creds.access_key_id.startswith("AKIDPROCESS")
    assert "process-secret" not in repr(creds) and "process-token" not in repr(creds)
    driver = Ec2Driver(AwsCredentials(creds.access_key_id, creds.secret_access_key, creds.source,
                                      session_token=creds.session_token, region=REGION,
                                      endpoint_url=ec2_emulator.endpoint, refreshable=creds.refreshable),
                       REGION, ProvisionerSettings(api_retries=3, retry_base_s=0.01, retry_max_s=0.02))
    first = driver.libcloud.key
    driver.list_zones()
    second = driver.libcloud.key
    assert first != second and second.startswith("AKIDPROCESS")  # signed with the renewed keys
    assert int((tmp_path / "runs").read_text()) >= 3
    again = credentials_from_source("aws", json.loads(json.dumps(creds.source.to_json())), {}, home)
    assert again.source.kind == "aws-sdk-chain" and again.refreshable is not None


def test_static_keys_and_the_auth_file_still_come_first(tmp_path: Path, home: Path) -> None:
    script = _process(tmp_path, minutes=60)
    (home / ".aws" / "config").write_text(f"[default]\ncredential_process = {script}\n")
    (home / ".aws" / "credentials").write_text("[default]\naws_access_key_id = AKSTATIC\n"
                                               "aws_secret_access_key = static-secret\n")
    creds = resolve_credentials(["aws"], None, {}, home)["aws"]
    assert creds.access_key_id == "AKSTATIC" and creds.refreshable is None
    assert not (tmp_path / "runs").exists()  # the chain was not even asked


def test_a_failing_credential_process_is_bad_input_naming_the_profile(tmp_path: Path, home: Path) -> None:
    (home / ".aws" / "config").write_text("[profile broken]\ncredential_process = /bin/false\n")
    with pytest.raises(CredentialsError, match="profile broken"):
        resolve_credentials(["aws"], None, {"AWS_PROFILE": "broken"}, home)
