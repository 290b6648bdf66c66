"""driver_for picks the provider's driver, checks the credentials fit it, and needs a region for EC2."""

from __future__ import annotations

import pytest

from provisioner.clouds.ec2 import Ec2Driver
from provisioner.clouds.fleet import FleetDriver
from provisioner.clouds.openstack import OpenStackDriver
from provisioner.clouds.registry import driver_for
from provisioner.credentials import AwsCredentials, CredentialSource, OpenStackCredentials
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
