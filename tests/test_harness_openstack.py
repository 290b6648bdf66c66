"""libcloud's stock OpenStack driver against the OpenStack test server, doing each call the product makes.

The assertions are what a user of a real cloud would check: the server carries its metadata and key,
a deleted thing is gone, refusals come back as the errors a real Nova or Neutron gives.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import libcloud.pricing
import pytest
from libcloud.common.exceptions import BaseHTTPError, RateLimitReachedError
from libcloud.common.types import InvalidCredsError, LibcloudError
from libcloud.compute.base import Node
from libcloud.compute.drivers.openstack import OpenStack_2_NodeDriver
from libcloud.compute.types import KeyPairDoesNotExistError, NodeState

ROOT = Path(__file__).resolve().parent.parent
META = {"oscar-deploy:deployment": "d1", "oscar-deploy:group": "wn"}


@pytest.fixture(autouse=True, scope="module")
def _no_openstack_price_lookups() -> Iterator[None]:
    """libcloud has no OpenStack prices and re-reads its 0.2 s pricing file for every flavor it lists
    (a miss is not cached); an empty table gives the same 0.0 prices at once."""
    libcloud.pricing.set_pricing("compute", "openstack", {})
    yield
    libcloud.pricing.invalidate_module_pricing_cache("compute", "openstack")


@pytest.fixture
def driver(openstack_server: Any) -> OpenStack_2_NodeDriver:
    return OpenStack_2_NodeDriver(**openstack_server.driver_kwargs())


@pytest.fixture
def public_key(tmp_path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    return (tmp_path / "k.pub").read_text()


def _size(driver: OpenStack_2_NodeDriver, name: str = "m1.small") -> Any:
    return next(s for s in driver.list_sizes() if s.name == name)


def _image(driver: OpenStack_2_NodeDriver) -> Any:
    return next(i for i in driver.list_images() if i.name == "Ubuntu 24.04 LTS (Noble Numbat)")


def _network(driver: OpenStack_2_NodeDriver, name: str = "private") -> Any:
    return next(n for n in driver.ex_list_networks() if n.name == name)


def _running(driver: OpenStack_2_NodeDriver, node: Node) -> Node:
    ((ready, _ips),) = driver.wait_until_running(
        [node], wait_period=0.05, timeout=10, ssh_interface="private_ips"
    )
    return ready


def _boot(driver: OpenStack_2_NodeDriver, name: str = "oscar-deploy-d1-wn-1", **extra: Any) -> Node:
    return driver.create_node(
        name=name, size=_size(driver), image=_image(driver), networks=[_network(driver)], **extra
    )


@pytest.mark.parametrize("auth", ["password", "appcred", "oidc"])
def test_every_keystone_method_reaches_the_services(openstack_server: Any, auth: str) -> None:
    driver = OpenStack_2_NodeDriver(**openstack_server.driver_kwargs(auth))
    assert "m1.small" in [s.name for s in driver.list_sizes()]
    assert any(n.extra.get("router:external") for n in driver.ex_list_networks())
    assert len(driver.list_images()) == 6


@pytest.mark.parametrize(
    ("auth", "field"), [("password", "secret"), ("appcred", "secret"), ("oidc", "secret")]
)
def test_wrong_secrets_are_refused(openstack_server: Any, auth: str, field: str) -> None:
    kwargs = {**openstack_server.driver_kwargs(auth), field: "wrong"}
    with pytest.raises(InvalidCredsError):
        OpenStack_2_NodeDriver(**kwargs).list_sizes()


def test_unknown_identity_provider_is_not_found(openstack_server: Any) -> None:
    with pytest.raises(BaseHTTPError, match="Could not find Identity Provider") as err:
        OpenStack_2_NodeDriver(**{**openstack_server.driver_kwargs("oidc"), "key": "other-idp"}).list_sizes()
    assert err.value.code == 404


def test_wrong_project_and_region(openstack_server: Any) -> None:
    with pytest.raises(InvalidCredsError):
        OpenStack_2_NodeDriver(**{**openstack_server.driver_kwargs(), "ex_tenant_name": "other"}).list_sizes()
    with pytest.raises(LibcloudError, match="Could not find specified endpoint"):
        OpenStack_2_NodeDriver(
            **{**openstack_server.driver_kwargs(), "ex_force_service_region": "RegionTwo"}
        ).list_sizes()


def test_services_refuse_requests_without_a_token(openstack_server: Any) -> None:
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(openstack_server.endpoint + "/compute/v2.1/servers/detail", timeout=5)
    assert err.value.code == 401


def test_flavors_with_extra_specs_as_nova_shows_them(
    openstack_server: Any, driver: OpenStack_2_NodeDriver
) -> None:
    small = _size(driver)
    assert (small.vcpus, small.ram, small.disk) == (1, 2048, 20)
    assert driver.ex_get_size_extra_specs("g1") == {"pci_passthrough:alias": "nvidia-t4:1"}
    assert "pci_passthrough:alias" not in _size(driver, "g1.large").extra  # not before microversion 2.61
    # From 2.61 Nova embeds them as "extra_specs", a key libcloud's _to_size does not read.
    newer = OpenStack_2_NodeDriver(**openstack_server.driver_kwargs(), ex_force_microversion="2.61")
    flavors = newer.connection.request("/flavors/detail").object["flavors"]
    assert next(f for f in flavors if f["id"] == "g1")["extra_specs"] == {
        "pci_passthrough:alias": "nvidia-t4:1"
    }


def test_images_are_listed_across_pages_with_their_properties(
    openstack_server: Any, driver: OpenStack_2_NodeDriver
) -> None:
    openstack_server.cloud.images_page_size = 2
    images = driver.list_images()
    assert len(images) == 6 and len({i.id for i in images}) == 6
    assert sum(1 for c in openstack_server.calls if c["action"] == "ListImages") == 3
    noble = _image(driver)
    assert (noble.extra["os_distro"], noble.extra["os_version"]) == ("ubuntu", "24.04")


def test_key_pairs(driver: OpenStack_2_NodeDriver, public_key: str) -> None:
    imported = driver.import_key_pair_from_string("oscar-deploy-d1-key", public_key)
    assert imported.public_key == public_key.strip() and len(imported.fingerprint.split(":")) == 16
    created = driver.create_key_pair("oscar-deploy-d1-key2")
    assert created.private_key.startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert driver.get_key_pair("oscar-deploy-d1-key2").private_key is None  # handed out once only
    with pytest.raises(BaseHTTPError, match="already exists") as dup:
        driver.import_key_pair_from_string("oscar-deploy-d1-key", public_key)
    assert dup.value.code == 409
    with pytest.raises(BaseHTTPError, match="Keypair data is invalid"):
        driver.import_key_pair_from_string("oscar-deploy-d1-bad", "ssh-rsa bm90IGEga2V5 x")
    assert sorted(k.name for k in driver.list_key_pairs()) == ["oscar-deploy-d1-key", "oscar-deploy-d1-key2"]
    assert driver.delete_key_pair(imported) and driver.delete_key_pair(created)
    assert driver.list_key_pairs() == []
    with pytest.raises(KeyPairDoesNotExistError):
        driver.get_key_pair("oscar-deploy-d1-key")


def test_security_groups_and_rules(openstack_server: Any, driver: OpenStack_2_NodeDriver) -> None:
    group = driver.ex_create_security_group("oscar-deploy-d1-sg", "oscar")
    ssh = driver.ex_create_security_group_rule(group, "tcp", 22, 22, cidr="0.0.0.0/0")
    driver.ex_create_security_group_rule(group, "tcp", 1, 65535, source_security_group=group)
    with pytest.raises(BaseHTTPError, match="already exists") as dup:
        driver.ex_create_security_group_rule(group, "tcp", 22, 22, cidr="0.0.0.0/0")
    assert dup.value.code == 409
    (listed,) = [g for g in driver.ex_list_security_groups() if g.id == group.id]
    ingress = [r for r in listed.rules if r.from_port is not None]
    assert {(r.from_port, r.to_port, r.ip_range, r.group.get("name")) for r in ingress} == {
        (22, 22, "0.0.0.0/0", None),
        (1, 65535, "", group.id),
    }
    assert ssh.parent_group_id == group.id
    default = next(g for g in driver.ex_list_security_groups() if g.name == "default")
    with pytest.raises(BaseHTTPError) as err:
        driver.ex_delete_security_group(default)
    assert err.value.code == 409
    assert driver.ex_delete_security_group(group)
    assert [g["name"] for g in openstack_server.state()["security_groups"]] == ["default"]


def test_server_lifecycle_with_every_option(
    openstack_server: Any, driver: OpenStack_2_NodeDriver, public_key: str
) -> None:
    key = driver.import_key_pair_from_string("oscar-deploy-d1-key", public_key)
    group = driver.ex_create_security_group("oscar-deploy-d1-sg", "oscar")
    node = _boot(
        driver,
        ex_keyname=key.name,
        ex_security_groups=[group],
        ex_metadata=META,
        ex_userdata="#cloud-config\nruncmd: [k3s]\n",
    )
    assert node.state == NodeState.PENDING and node.private_ips == []  # BUILD: no addresses yet
    node = _running(driver, node)
    assert node.private_ips == ["10.0.0.10"] and node.public_ips == []
    assert node.extra["metadata"] == META and node.extra["key_name"] == key.name
    (seen,) = openstack_server.state()["servers"]
    assert seen["user_data"] == "#cloud-config\nruncmd: [k3s]\n"
    assert seen["security_groups"] == ["oscar-deploy-d1-sg"] and seen["networks"] == ["private"]
    assert [n.name for n in driver.list_nodes()] == ["oscar-deploy-d1-wn-1"]
    with pytest.raises(BaseHTTPError, match="in use"):
        driver.ex_delete_security_group(group)

    assert driver.destroy_node(node)
    ports = openstack_server.state()["ports"]
    assert driver.list_nodes() == [] and [p for p in ports if p["device_owner"].startswith("compute:")] == []
    assert driver.ex_delete_security_group(group) and driver.delete_key_pair(key)


def test_create_refuses_what_nova_refuses(openstack_server: Any, driver: OpenStack_2_NodeDriver) -> None:
    with pytest.raises(BaseHTTPError, match="Invalid key_name"):
        _boot(driver, ex_keyname="missing")
    # Nova counts the project's own networks and every shared one: the shared public network too
    with pytest.raises(BaseHTTPError, match="Multiple possible networks") as err:
        driver.create_node(name="ambiguous", size=_size(driver), image=_image(driver))
    assert err.value.code == 409
    public = _network(driver, "public")
    with pytest.raises(BaseHTTPError, match="not allowed to create an interface on external") as err:
        openstack_server.cloud.networks[public.id]["shared"] = False
        driver.create_node(name="external", size=_size(driver), image=_image(driver), networks=[public])
    assert err.value.code == 403
    driver.create_node(name="one-network", size=_size(driver), image=_image(driver))  # the only one: chosen
    driver.ex_create_security_group("twin", "a")
    driver.ex_create_security_group("twin", "b")  # Neutron allows it ...
    group = next(g for g in driver.ex_list_security_groups() if g.name == "twin")
    with pytest.raises(BaseHTTPError, match="Multiple security_group matches"):  # ... Nova then refuses it
        _boot(driver, ex_security_groups=[group])
    assert [s["name"] for s in openstack_server.state()["servers"]] == ["one-network"]


def test_floating_ip_create_attach_detach_delete(
    openstack_server: Any, driver: OpenStack_2_NodeDriver
) -> None:
    node = _running(driver, _boot(driver, name="oscar-deploy-d1-fe"))
    (pool,) = driver.ex_list_floating_ip_pools()
    ip = driver.ex_create_floating_ip(pool.name)
    assert ip.ip_address.startswith("203.0.113.")
    assert driver.ex_attach_floating_ip_to_node(node, ip)
    (listed,) = driver.ex_list_floating_ips()
    assert listed.extra["port_id"] == driver.ex_get_node_ports(node)[0].id
    (node,) = driver.list_nodes()
    assert node.public_ips == [ip.ip_address] and node.private_ips == ["10.0.0.10"]
    assert driver.ex_detach_floating_ip_from_node(node, ip)
    assert driver.list_nodes()[0].public_ips == []
    assert driver.ex_delete_floating_ip(ip)
    assert driver.ex_list_floating_ips() == [] and openstack_server.state()["floating_ips"] == []


def test_leftovers_are_what_carries_the_deployments_metadata_or_prefix(
    openstack_server: Any, driver: OpenStack_2_NodeDriver, public_key: str
) -> None:
    tagged = _running(driver, _boot(driver, name="worker", ex_metadata=META))
    named = _boot(driver, name="oscar-deploy-d1-fe")
    _boot(driver, name="oscar-deploy-d10-fe")
    key = driver.import_key_pair_from_string("oscar-deploy-d1-key", public_key)
    group = driver.ex_create_security_group("oscar-deploy-d1-sg", "x")
    volume = driver.create_volume(1, "oscar-deploy-d1-data")
    ip = driver.ex_create_floating_ip("public")
    driver.ex_attach_floating_ip_to_node(tagged, ip)
    left = openstack_server.leftovers("d1")
    assert sorted(s["name"] for s in left["servers"]) == ["oscar-deploy-d1-fe", "worker"]
    assert [len(left[kind]) for kind in ("keypairs", "security_groups", "volumes", "floating_ips")] == [
        1,
        1,
        1,
        1,
    ]
    for node in (tagged, named):
        driver.destroy_node(node)
    time.sleep(0.25)
    driver.delete_key_pair(key), driver.ex_delete_security_group(group), driver.destroy_volume(volume)
    assert len(openstack_server.leftovers("d1")["floating_ips"]) == 1  # detached by the delete, still leaked
    driver.ex_delete_floating_ip(ip)
    assert all(items == [] for items in openstack_server.leftovers("d1").values())
    assert [s["name"] for s in openstack_server.leftovers("d10")["servers"]] == ["oscar-deploy-d10-fe"]


def test_volume_create_attach_detach_delete(openstack_server: Any, driver: OpenStack_2_NodeDriver) -> None:
    node = _boot(driver, name="oscar-deploy-d1-fe")
    volume = driver.create_volume(20, "oscar-deploy-d1-data")
    with pytest.raises(BaseHTTPError, match="vm_state building") as err:
        driver.attach_volume(node, volume)
    assert err.value.code == 409
    node = _running(driver, node)
    time.sleep(0.25)  # the volume leaves "creating" too
    assert driver.attach_volume(node, volume)
    (attached,) = driver.list_volumes()
    assert attached.extra["attachments"][0]["server_id"] == node.id and attached.extra["state"] == "in-use"
    with pytest.raises(BaseHTTPError, match="Volume status must be available"):
        driver.destroy_volume(attached)
    assert driver.detach_volume(attached)
    assert driver.destroy_volume(attached)
    assert driver.list_volumes() == [] and openstack_server.state()["volumes"] == []


def test_rate_limit_faults_are_seeded_and_refuse_only_mutating_calls(
    openstack_server: Any, driver: OpenStack_2_NodeDriver, public_key: str
) -> None:
    def run() -> list[int]:
        openstack_server.set_faults({"seed": 11, "rules": [{"code": "overLimit", "rate": 0.4}]})
        refused = []
        for n in range(20):
            try:
                driver.import_key_pair_from_string(f"oscar-deploy-d1-k{n}", public_key)
            except RateLimitReachedError as exc:
                assert exc.code == 429 and "Rate limit exceeded" in str(exc)
                refused.append(n)
        return refused

    first = run()
    assert 3 <= len(first) <= 14
    assert len(driver.list_key_pairs()) == 20 - len(first)  # refused calls did nothing; reads pass
    openstack_server.reset()
    driver = OpenStack_2_NodeDriver(**openstack_server.driver_kwargs())  # reset forgets tokens
    assert run() == first


def test_server_errors_from_neutron_and_nova(openstack_server: Any, driver: OpenStack_2_NodeDriver) -> None:
    openstack_server.set_faults(
        {
            "rules": [
                {"code": "ServiceUnavailable", "actions": ["CreateSecurityGroup"], "remaining": 1},
                {"code": "computeFault", "actions": ["CreateServer"], "remaining": 1},
            ]
        }
    )
    with pytest.raises(BaseHTTPError) as err:
        driver.ex_create_security_group("oscar-deploy-d1-sg", "x")
    assert err.value.code == 503 and "currently unavailable" in err.value.message
    with pytest.raises(BaseHTTPError) as err:
        _boot(driver)
    assert err.value.code == 500
    driver.ex_create_security_group("oscar-deploy-d1-sg", "x")
    _boot(driver)


def test_no_valid_host_puts_only_that_flavor_in_error(
    openstack_server: Any, driver: OpenStack_2_NodeDriver
) -> None:
    openstack_server.set_faults(
        {"rules": [{"code": "NoValidHost", "actions": ["CreateServer"], "instance_type": "m1.large"}]}
    )
    big = driver.create_node(
        name="big", size=_size(driver, "m1.large"), image=_image(driver), networks=[_network(driver)]
    )
    small = _running(driver, _boot(driver, name="small"))
    time.sleep(0.25)
    states = {n.name: n for n in driver.list_nodes()}
    assert (
        states["big"].state == NodeState.ERROR and "No valid host" in states["big"].extra["fault"]["message"]
    )
    assert states["small"].state == NodeState.RUNNING and small.id == states["small"].id
    assert driver.destroy_node(big)


def test_latency_per_call_and_parallel_creates_overlap(
    openstack_server: Any, driver: OpenStack_2_NodeDriver
) -> None:
    size, image, network = _size(driver), _image(driver), _network(driver)
    openstack_server.set_faults({"latency_s": 0.4})

    def create(n: int) -> Node:
        own = OpenStack_2_NodeDriver(**openstack_server.driver_kwargs())  # one per thread, as the engine does
        return own.create_node(name=f"oscar-deploy-d1-wn-{n}", size=size, image=image, networks=[network])

    started = time.monotonic()
    with ThreadPoolExecutor(6) as pool:
        nodes = list(pool.map(create, range(6)))
    elapsed = time.monotonic() - started
    # Each create is token + POST + GET = 3 calls of 0.4 s; serially 6 creates would take 7.2 s.
    assert 1.2 <= elapsed < 3.5, elapsed
    assert len({n.id for n in nodes}) == 6 and len(openstack_server.state()["servers"]) == 6


def _http(url: str, data: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url,
        data=json.dumps(data).encode() if data is not None else None,
        method="POST" if data is not None else "GET",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_control_endpoints_over_http(openstack_server: Any, driver: OpenStack_2_NodeDriver) -> None:
    base = openstack_server.endpoint + "/_harness"
    assert _http(base + "/faults", {"rules": [{"code": "overLimit", "actions": ["CreateKeypair"]}]})[0] == 200
    with pytest.raises(RateLimitReachedError):
        driver.create_key_pair("oscar-deploy-d1-key")
    assert _http(base + "/faults", {"rules": [{"code": "x", "rate": -1}]})[0] == 400
    assert _http(base + "/faults", {})[0] == 200
    driver.create_key_pair("oscar-deploy-d1-key")
    assert [k["name"] for k in _http(base + "/state")[1]["keypairs"]] == ["oscar-deploy-d1-key"]
    faults = [c["fault"] for c in _http(base + "/calls")[1]["calls"] if c["action"] == "CreateKeypair"]
    assert faults == ["overLimit", None]
    assert _http(base + "/reset", {})[0] == 200 and openstack_server.state()["keypairs"] == []


def test_runs_by_hand_with_python_m() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "tests.harness.openstack", "--port", str(port), "--region", "RegionTwo"]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        assert f"127.0.0.1:{port}" in proc.stdout.readline()
        driver = OpenStack_2_NodeDriver(
            "demo",
            "secret",
            ex_force_auth_url=f"http://127.0.0.1:{port}",
            ex_force_auth_version="3.x_password",
            ex_tenant_name="demo",
            ex_domain_name="Default",
            ex_force_service_region="RegionTwo",
        )
        assert len(driver.list_sizes()) == 6
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _boot_as(driver: OpenStack_2_NodeDriver, name: str, flavor: str, **extra: Any) -> Node:
    return driver.create_node(
        name=name, size=_size(driver, flavor), image=_image(driver), networks=[_network(driver)], **extra
    )


def test_nova_checks_the_flavor_against_the_image_and_user_data_on_its_base64(
    openstack_server: Any, driver: OpenStack_2_NodeDriver
) -> None:
    with pytest.raises(BaseHTTPError, match="Flavor's disk is too small for requested image") as err:
        _boot_as(driver, "tiny", "m1.tiny")
    assert err.value.code == 400
    openstack_server.cloud.add_flavor("z", "zero.disk", 1, 2048, 0)
    with pytest.raises(BaseHTTPError, match="Only volume-backed servers") as err:
        _boot_as(driver, "zero", "zero.disk")
    assert err.value.code == 403
    bdm = [{"boot_index": 0, "uuid": _image(driver).id, "source_type": "image", "destination_type": "volume",
            "volume_size": 10, "delete_on_termination": True}]
    _boot_as(driver, "zero-from-volume", "zero.disk", ex_blockdevicemappings=bdm)
    with pytest.raises(BaseHTTPError, match=r"user_data.* is too long"):
        _boot(driver, name="big-user-data", ex_userdata="x" * 50000)  # 66668 characters in base64
    assert [s["name"] for s in openstack_server.state()["servers"]] == ["zero-from-volume"]


def test_neutron_ethertype_and_floating_ip_router_rules(
    openstack_server: Any, driver: OpenStack_2_NodeDriver
) -> None:
    group = driver.ex_create_security_group("oscar-deploy-d1-sg", "x")
    with pytest.raises(BaseHTTPError, match="Conflicting value ethertype IPv4 for CIDR 2001:db8::/32"):
        driver.ex_create_security_group_rule(group, "tcp", 22, 22, cidr="2001:db8::/32")
    node = _running(driver, _boot(driver))
    port = driver.ex_get_node_ports(node)[0]
    public = _network(driver, "public")
    fip = driver.network_connection.request(
        "/v2.0/floatingips", method="POST",
        data={"floatingip": {"floating_network_id": public.id, "port_id": port.id}},
    ).object["floatingip"]
    assert fip["status"] == "DOWN" and fip["router_id"] == openstack_server.cloud.router_id


def test_soft_delete_keeps_the_server_until_force_delete(
    openstack_server: Any, driver: OpenStack_2_NodeDriver
) -> None:
    openstack_server.cloud.reclaim_instance_interval_s = 3600
    node = _running(driver, _boot(driver))
    assert driver.destroy_node(node)
    (listed,) = driver.list_nodes()
    assert listed.extra["vm_state"] == "soft-delete" and openstack_server.state()["servers"][0]["status"] == (
        "SOFT_DELETED"
    )
    driver.connection.request(f"/servers/{node.id}/action", method="POST", data={"forceDelete": None})
    assert driver.list_nodes() == []


def test_tokens_expire_and_zones_and_regions_are_the_sites(openstack_server: Any) -> None:
    driver = OpenStack_2_NodeDriver(**openstack_server.driver_kwargs())
    driver.list_sizes()
    openstack_server.cloud.expire_tokens()
    with pytest.raises(BaseHTTPError) as err:  # libcloud still believes its token and gets a 401
        driver.connection.request("/flavors")
    assert err.value.code == 401
    openstack_server.cloud.compute_zones, openstack_server.cloud.volume_zones = ["az-1"], ["ceph"]
    fresh = OpenStack_2_NodeDriver(**openstack_server.driver_kwargs())
    zones = fresh.connection.request("/os-availability-zone").object["availabilityZoneInfo"]
    assert [z["zoneName"] for z in zones] == ["az-1"]
    with pytest.raises(BaseHTTPError, match="Availability zone 'az-1' is invalid"):
        fresh.create_volume(1, "v", location="az-1")
    openstack_server.cloud.region = "WAW4-1"
    kwargs = {**openstack_server.driver_kwargs(), "ex_force_service_region": "RegionOne"}
    elsewhere = OpenStack_2_NodeDriver(**kwargs)
    with pytest.raises(LibcloudError, match="Could not find specified endpoint"):
        elsewhere.list_sizes()
