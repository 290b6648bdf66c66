"""The OpenStack driver against the OpenStack test server (Keystone v3 + Nova + Neutron + Glance + Cinder),
through libcloud's stock OpenStack_2 driver; assertions read the server's own state, as an operator
would read Horizon."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Any

import pytest

from provisioner.clouds.base import (
    TAG_DEPLOYMENT,
    TAG_GROUP,
    CloudDriver,
    FirewallRule,
    NodeRequest,
    resource_name,
)
from provisioner.clouds.openstack import OpenStackDriver, flavor_order, pick_image
from provisioner.config import ProvisionerSettings
from provisioner.credentials import CredentialSource, OpenStackCredentials
from provisioner.errors import AuthError, CapacityError, NotFound, Throttled

FAST = ProvisionerSettings(api_retries=8, retry_base_s=0.01, retry_max_s=0.05, create_timeout_s=20)
RULES = (FirewallRule("tcp", 22, 22, "0.0.0.0/0", "ssh"), FirewallRule("tcp", 1, 65535, "cluster", "inside"),
         FirewallRule("udp", 8472, 8472, "cluster", "flannel"))
SOURCE = CredentialSource("environment")


def _credentials(server: Any, auth: str = "password", secret: str | None = None) -> OpenStackCredentials:
    url = server.endpoint + "/v3"
    if auth == "appcred":
        return OpenStackCredentials(url, "application_credential", secret or "appcred-secret", SOURCE,
                                    application_credential_id="appcred-id", region="RegionOne")
    if auth == "oidc":
        return OpenStackCredentials(url, "oidc_access_token", secret or "oidc-access-token", SOURCE,
                                    identity_provider="egi.eu", project_name="demo", region="RegionOne")
    return OpenStackCredentials(url, "password", secret or "secret", SOURCE, username="demo",
                                project_name="demo", region="RegionOne")


def _driver(server: Any, auth: str = "password", **kw: Any) -> OpenStackDriver:
    kw.setdefault("poll_s", 0.05)
    return OpenStackDriver(_credentials(server, auth), None, kw.pop("settings", FAST), **kw)


@pytest.fixture
def driver(openstack_server: Any) -> OpenStackDriver:
    return _driver(openstack_server, network="private")


@pytest.fixture
def public_key(tmp_path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    return (tmp_path / "k.pub").read_text()


def _request(driver: OpenStackDriver, deployment: str, group: str, index: int, key: str, sg: str,
             size: str = "m1.small", **kw: Any) -> NodeRequest:
    image = driver.resolve_image("ubuntu", "24.04", "amd64", None)
    return NodeRequest(deployment, group, resource_name(deployment, group, str(index)), size, image, key, sg,
                       **kw)


def _live(server: Any) -> dict[str, list[Any]]:
    state = server.state()
    return {"servers": state["servers"], "keypairs": state["keypairs"], "volumes": state["volumes"],
            "floating_ips": state["floating_ips"],
            "security_groups": [g for g in state["security_groups"] if g["name"] != "default"]}


def test_the_driver_satisfies_the_contract(driver: OpenStackDriver) -> None:
    def takes(d: CloudDriver) -> str:
        return d.provider

    assert takes(driver) == "openstack" and driver.region == "RegionOne"


@pytest.mark.parametrize("auth", ["password", "appcred", "oidc"])
def test_each_keystone_method_works(openstack_server: Any, auth: str) -> None:
    driver = _driver(openstack_server, auth)
    assert driver.sizes_that_fit(1, 512)[0] == "m1.tiny"


@pytest.mark.parametrize("auth", ["password", "appcred", "oidc"])
def test_wrong_secret_is_an_auth_error_that_does_not_show_it(openstack_server: Any, auth: str,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    driver = OpenStackDriver(_credentials(openstack_server, auth, secret="wr0ng-s3cret-value"), None, FAST)
    with pytest.raises(AuthError) as err:
        driver.sizes_that_fit(1, 512)
    for text in (str(err.value), repr(err.value), repr(driver), caplog.text):
        assert "wr0ng-s3cret-value" not in text
    assert "appcred-id" not in str(err.value)


def test_flavor_cheapest_that_fits_from_the_live_list(driver: OpenStackDriver) -> None:
    assert driver.sizes_that_fit(2, 3000) == ["m1.medium", "m1.large", "g1.large", "m1.xlarge"]
    assert driver.sizes_that_fit(1, 1024, disk_gib=30)[0] == "m1.medium"  # m1.small's disk is 20 GB
    assert driver.sizes_that_fit(1, 1, explicit="4") == ["m1.large"]
    with pytest.raises(NotFound, match=r"m9\.huge"):
        driver.sizes_that_fit(1, 1, explicit="m9.huge")
    assert driver.sizes_that_fit(64, 1) == []


def test_flavor_order_ties_by_ram_then_disk() -> None:
    flavors = [{"id": "a", "name": "a", "vcpus": 2, "ram": 4096, "disk": 40},
               {"id": "b", "name": "b", "vcpus": 2, "ram": 4096, "disk": 20},
               {"id": "c", "name": "c", "vcpus": 2, "ram": 2048, "disk": 80},
               {"id": "d", "name": "d", "vcpus": 1, "ram": 8192, "disk": 0}]
    assert [f["name"] for f in flavor_order(flavors, 1, 2048, None)] == ["d", "c", "b", "a"]
    assert [f["name"] for f in flavor_order(flavors, 2, 2048, 30)] == ["c", "a"]


def test_image_by_properties_then_name(openstack_server: Any, driver: OpenStackDriver) -> None:
    images = {i["name"]: i["id"] for i in openstack_server.cloud.images.values()}
    assert driver.resolve_image("ubuntu", "24.04", "amd64", None) == images["Ubuntu 24.04 LTS (Noble Numbat)"]
    assert driver.resolve_image("ubuntu", "22.04", "arm64", None) == images[
        "Ubuntu 22.04 LTS (Jammy Jellyfish) arm64"]
    assert driver.resolve_image("x", "y", "amd64", "CentOS Stream 9") == images["CentOS Stream 9"]
    with pytest.raises(NotFound):
        driver.resolve_image("ubuntu", "18.04", "amd64", None)
    by_name = [{"id": "1", "name": "ubuntu-24.04-arm64", "created_at": "2025"},
               {"id": "2", "name": "ubuntu-24.04-server", "created_at": "2024"},
               {"id": "3", "name": "ubuntu-24.04-server", "created_at": "2025"}]
    assert pick_image(by_name, "ubuntu", "24.04", "amd64")["id"] == "3"
    assert pick_image(by_name, "ubuntu", "24.04", "arm64")["id"] == "1"


def test_key_pair_and_security_group_once(openstack_server: Any, driver: OpenStackDriver,
                                          public_key: str) -> None:
    assert driver.ensure_key_pair("d1", public_key) == driver.ensure_key_pair("d1", public_key)
    group = driver.ensure_security_group("d1", RULES)
    assert driver.ensure_security_group("d1", RULES) == group
    live = _live(openstack_server)
    assert [k["name"] for k in live["keypairs"]] == ["oscar-deploy-d1-key"]
    assert [g["name"] for g in live["security_groups"]] == ["oscar-deploy-d1-sg"]
    rules = [r for r in openstack_server.cloud.security_groups[group]["security_group_rules"]
             if r["direction"] == "ingress"]
    assert sorted((r["protocol"], r["port_range_min"], r["remote_ip_prefix"], r["remote_group_id"])
                  for r in rules) == [("tcp", 1, None, group), ("tcp", 22, "0.0.0.0/0", None),
                                      ("udp", 8472, None, group)]


def test_revoking_others_replaces_a_cidr_rule_and_keeps_the_clusters(openstack_server: Any,
                                                                     driver: OpenStackDriver) -> None:
    """``create --update`` narrowing ``admin_cidr``: the old CIDR rule goes, the new one comes, the
    rules between the group's members stay."""
    group = driver.ensure_security_group("d1", RULES)
    narrowed = (FirewallRule("tcp", 22, 22, "192.0.2.0/24", "ssh"), *RULES[1:])
    assert driver.ensure_security_group("d1", narrowed, revoke_others=True) == group
    rules = [r for r in openstack_server.cloud.security_groups[group]["security_group_rules"]
             if r["direction"] == "ingress"]
    assert sorted((r["protocol"], r["port_range_min"], r["remote_ip_prefix"], r["remote_group_id"])
                  for r in rules) == [("tcp", 1, None, group), ("tcp", 22, "192.0.2.0/24", None),
                                      ("udp", 8472, None, group)]


def test_create_node_with_metadata_key_group_user_data_then_list_and_destroy(
        openstack_server: Any, driver: OpenStackDriver, public_key: str) -> None:
    key = driver.ensure_key_pair("d1", public_key)
    sg = driver.ensure_security_group("d1", RULES)
    node = driver.create_node(_request(driver, "d1", "wn", 1, key, sg, user_data="#cloud-config\n{}\n"))
    assert node.name == "oscar-deploy-d1-wn-1" and node.group == "wn" and node.state == "running"
    assert node.size == "m1.small" and node.private_ips == ("10.0.0.10",)
    (seen,) = openstack_server.state()["servers"]
    assert seen["metadata"] == {TAG_DEPLOYMENT: "d1", TAG_GROUP: "wn"} and seen["key_name"] == key
    assert seen["security_groups"] == ["oscar-deploy-d1-sg"] and seen["user_data"] == "#cloud-config\n{}\n"
    assert [n.id for n in driver.list_nodes("d1")] == [node.id]
    assert driver.list_nodes("d2") == []
    driver.destroy_node(node)
    driver.destroy_node(node)  # gone already: fine
    assert driver.list_nodes("d1") == []


def test_list_nodes_by_metadata_or_name_prefix(openstack_server: Any, driver: OpenStackDriver) -> None:
    raw = driver.libcloud
    size = next(s for s in raw.list_sizes() if s.name == "m1.small")
    image = next(i for i in raw.list_images() if i.name.startswith("Ubuntu 24.04"))
    net = [n for n in raw.ex_list_networks() if n.name == "private"]
    tagged = raw.create_node(name="renamed", size=size, image=image, networks=net,
                             ex_metadata={TAG_DEPLOYMENT: "d1"})
    named = raw.create_node(name="oscar-deploy-d1-wn-7", size=size, image=image, networks=net)
    raw.create_node(name="oscar-deploy-d10-wn-1", size=size, image=image, networks=net)
    raw.create_node(name="other", size=size, image=image, networks=net, ex_metadata={TAG_DEPLOYMENT: "d2"})
    assert sorted(n.id for n in driver.list_nodes("d1")) == sorted([tagged.id, named.id])


def test_capacity_no_valid_host_is_a_capacity_error_and_leaves_no_server(
        openstack_server: Any, driver: OpenStackDriver) -> None:
    sg = driver.ensure_security_group("d1", RULES)
    openstack_server.set_faults({"rules": [{"code": "NoValidHost", "actions": ["CreateServer"],
                                            "instance_type": "m1.large"}]})
    with pytest.raises(CapacityError, match="No valid host"):
        driver.create_node(_request(driver, "d1", "wn", 1, "", sg, size="m1.large"))
    assert driver.list_nodes("d1") == []
    fallback = driver.sizes_that_fit(4, 8192)[1]
    driver.create_node(_request(driver, "d1", "wn", 1, "", sg, size=fallback))
    assert [n.size for n in driver.list_nodes("d1")] == [fallback]


def test_front_end_gets_a_floating_ip_once_on_a_private_network(
        openstack_server: Any, driver: OpenStackDriver) -> None:
    sg = driver.ensure_security_group("d1", RULES)
    node = driver.create_node(_request(driver, "d1", "fe", 1, "", sg))
    assert node.public_ips == ()
    address = driver.ensure_public_address("d1", node)
    assert driver.ensure_public_address("d1", node) == address
    (fip,) = openstack_server.state()["floating_ips"]
    assert fip["address"] == address and fip["server_id"] == node.id
    assert driver.list_nodes("d1")[0].public_ips == (address,)


def test_volume_once_and_attached(openstack_server: Any, driver: OpenStackDriver) -> None:
    sg = driver.ensure_security_group("d1", RULES)
    node = driver.create_node(_request(driver, "d1", "fe", 1, "", sg))
    volume = driver.ensure_volume("d1", "fe", 10, None)
    assert driver.ensure_volume("d1", "fe", 10, None) == volume
    driver.attach_volume(volume, node)
    driver.attach_volume(volume, node)
    (seen,) = openstack_server.state()["volumes"]
    assert seen["name"] == "oscar-deploy-d1-fe-data" and seen["server_id"] == node.id
    assert openstack_server.cloud.volumes[volume]["size"] == 10


def _deploy(driver: OpenStackDriver, deployment: str, public_key: str, workers: int = 2) -> list[Any]:
    key = driver.ensure_key_pair(deployment, public_key)
    sg = driver.ensure_security_group(deployment, RULES)
    front = driver.create_node(_request(driver, deployment, "fe", 1, key, sg))
    driver.ensure_public_address(deployment, front)
    volume = driver.ensure_volume(deployment, "fe", 5, None)
    driver.attach_volume(volume, front)
    return [front] + [driver.create_node(_request(driver, deployment, "wn", i, key, sg, size="m1.medium"))
                      for i in range(1, workers + 1)]


def test_sweep_removes_the_deployment_and_nothing_else(openstack_server: Any, driver: OpenStackDriver,
                                                       public_key: str) -> None:
    _deploy(driver, "d1", public_key)
    others = _deploy(driver, "d2", public_key, workers=0)
    removed = driver.sweep("d1")
    assert sorted(r.kind for r in removed) == ["address", "instance", "instance", "instance", "key_pair",
                                               "security_group", "volume"]
    live = _live(openstack_server)
    assert [s["id"] for s in live["servers"]] == [others[0].id]
    assert [k["name"] for k in live["keypairs"]] == ["oscar-deploy-d2-key"]
    assert [g["name"] for g in live["security_groups"]] == ["oscar-deploy-d2-sg"]
    assert [v["name"] for v in live["volumes"]] == ["oscar-deploy-d2-fe-data"]
    assert len(live["floating_ips"]) == 1 and live["floating_ips"][0]["port_id"]
    assert driver.sweep("d1") == []


def test_sweep_keep_data(openstack_server: Any, driver: OpenStackDriver, public_key: str) -> None:
    _deploy(driver, "d1", public_key, workers=0)
    assert "volume" not in {r.kind for r in driver.sweep("d1", keep_data=True)}
    live = _live(openstack_server)
    assert [v["name"] for v in live["volumes"]] == ["oscar-deploy-d1-fe-data"]
    assert live["servers"] == [] and live["keypairs"] == [] and live["floating_ips"] == []


@pytest.mark.parametrize(("seed", "auth"), [(1, "password"), (2, "appcred"), (3, "oidc")])
def test_twenty_percent_faults_still_succeed_and_log_no_secret(
        openstack_server: Any, public_key: str, seed: int, auth: str,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    driver = _driver(openstack_server, auth, network="private")
    openstack_server.set_faults({"seed": seed, "rules": [
        {"code": "overLimit", "rate": 0.1}, {"code": "ServiceUnavailable", "rate": 0.06},
        {"code": "computeFault", "rate": 0.05}]})
    _deploy(driver, "d1", public_key, workers=3)
    assert len(driver.list_nodes("d1")) == 4
    driver.sweep("d1")
    assert openstack_server.injector.injected
    assert _live(openstack_server) == {"servers": [], "keypairs": [], "volumes": [], "floating_ips": [],
                                       "security_groups": []}
    assert "retrying" in caplog.text
    for secret in ("appcred-secret", "oidc-access-token", "appcred-id"):
        assert secret not in caplog.text


def test_throttling_that_never_ends_gives_up_typed(openstack_server: Any, driver: OpenStackDriver) -> None:
    openstack_server.set_faults({"rules": [{"code": "overLimit", "actions": ["CreateSecurityGroup"]}]})
    with pytest.raises(Throttled, match=r"(?i)rate limit"):
        driver.ensure_security_group("d1", RULES)
    attempts = [c for c in openstack_server.calls if c["action"] == "CreateSecurityGroup"]
    assert len(attempts) == FAST.api_retries


def test_a_fresh_driver_lists_sizes_by_flavor_name(openstack_server: Any, driver: OpenStackDriver) -> None:
    sg = driver.ensure_security_group("d1", RULES)
    driver.create_node(_request(driver, "d1", "wn", 1, "", sg, size="m1.medium"))
    assert [n.size for n in _driver(openstack_server).list_nodes("d1")] == ["m1.medium"]


def test_zones_from_nova_or_none_when_the_cloud_does_not_serve_them(openstack_server: Any,
                                                                    driver: OpenStackDriver) -> None:
    from provisioner.clouds.openstack import available_zones

    openstack_server.cloud.compute_zones = ["az-1", "az-2"]
    assert driver.list_zones() == ["az-1", "az-2"]
    answer = {"availabilityZoneInfo": [  # Nova's answer, as the API reference shows it
        {"zoneName": "zone-b", "zoneState": {"available": True}, "hosts": None},
        {"zoneName": "zone-down", "zoneState": {"available": False}, "hosts": None},
        {"zoneName": "nova", "zoneState": {"available": True}, "hosts": None}]}
    assert available_zones(answer) == ["nova", "zone-b"]
