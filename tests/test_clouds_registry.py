"""driver_for picks the provider's driver, checks the credentials fit it, and needs a region for EC2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from provisioner.clouds.ec2 import Ec2Driver
from provisioner.clouds.fleet import FleetDriver
from provisioner.clouds.openstack import OpenStackDriver
from provisioner.clouds.registry import driver_for
from provisioner.credentials import (
    AwsCredentials,
    CredentialSource,
    OpenStackCredentials,
    credentials_from_auth_file,
)
from provisioner.errors import BadInput, CredentialsError
from provisioner.spec import BoardSpec

SOURCE = CredentialSource("environment")
AWS = AwsCredentials("AKIDEXAMPLE", "s3cr3t-value", SOURCE, region="eu-west-1")
OST = OpenStackCredentials("https://keystone.example.org:5000/v3", "password", "pw-s3cr3t", SOURCE,
                           username="u", project_name="p", region="RegionOne")


def test_each_provider_gets_its_driver_and_region() -> None:
    ec2 = driver_for("aws", AWS, "us-west-2")
    assert isinstance(ec2, Ec2Driver) and ec2.region == "us-west-2"
    assert driver_for("aws", AWS, None).region == "eu-west-1"  # the credential's region next
    ost = driver_for("openstack", OST, None, network="private")
    assert isinstance(ost, OpenStackDriver) and ost.region == "RegionOne" and ost.network == "private"
    fleet = driver_for("fleet", None, None, boards={"edge": (BoardSpec("pi-1", "192.0.2.1"),)})
    assert isinstance(fleet, FleetDriver) and [n.name for n in fleet.list_nodes("d1")] == ["pi-1"]


def test_wrong_credentials_unknown_provider_and_missing_region_are_bad_input() -> None:
    with pytest.raises(CredentialsError, match="type = EC2"):
        driver_for("aws", OST, "eu-west-1")
    with pytest.raises(CredentialsError, match="type = OpenStack"):
        driver_for("openstack", AWS, None)
    with pytest.raises(BadInput, match="no region"):
        driver_for("aws", AwsCredentials("k", "s", SOURCE), None)
    with pytest.raises(BadInput, match="unknown provider 'gce'"):
        driver_for("gce", AWS, None)


def test_no_secret_in_a_drivers_repr() -> None:
    for driver in (driver_for("aws", AWS, None), driver_for("openstack", OST, None)):
        assert "s3cr3t" not in repr(driver)


def test_an_im_auth_file_reaches_both_test_clouds(ec2_emulator: Any, openstack_server: Any,
                                                  tmp_path: Path) -> None:
    """The auth file's ``host`` is the EC2 endpoint override; the OpenStack line's is Keystone's URL."""
    auth = tmp_path / "auth.dat"
    auth.write_text(
        f"id = aws; type = EC2; username = AKIDEXAMPLE; password = aws-s3cr3t; region = eu-west-1; "
        f"host = {ec2_emulator.endpoint}\n"
        f"id = ost; type = OpenStack; host = {openstack_server.endpoint}/v3; username = demo; "
        "password = secret; tenant = demo; domain = Default; auth_version = 3.x_password; "
        "region = RegionOne\n")
    auth.chmod(0o600)  # as an operator keeps it (a 0644 file is an operator slip)
    auth.chmod(0o600)
    aws = credentials_from_auth_file(auth, "aws")
    ec2 = driver_for("aws", aws, None)
    assert ec2.resolve_image("ubuntu", "24.04", "amd64", None).startswith("ami-")
    assert [c.region for c in ec2_emulator.calls] == ["eu-west-1"]
    ost = driver_for("openstack", credentials_from_auth_file(auth, "openstack"), None)
    assert ost.sizes_that_fit(1, 512)[0] == "m1.tiny"
