"""The OpenStack driver on clouds as real sites run them: the test server made as strict as Nova,
Neutron, Cinder and Keystone are in the places a site differs from a fresh DevStack (networks shared
with the project, flavors that cannot hold the image, soft delete, routers, zones, lost answers), each
behaviour cited from upstream's code in ``tests/harness/openstack``. Assertions read the server's own
state, as an operator would read Horizon."""

from __future__ import annotations

import base64
import gzip
import json
import random
import string
import subprocess
from pathlib import Path
from typing import Any

import pytest

from provisioner.clouds.base import FirewallRule, NodeRequest, resource_name
from provisioner.clouds.openstack import OpenStackDriver, SizeUnfit
from provisioner.config import ProvisionerSettings
from provisioner.errors import BadInput, CapacityError, CloudError
from tests.test_clouds_openstack import RULES, _driver

QUICK = ProvisionerSettings(api_retries=4, retry_base_s=0.01, retry_max_s=0.05, create_timeout_s=3)


@pytest.fixture
def public_key(tmp_path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    return (tmp_path / "k.pub").read_text()


def _request(driver: OpenStackDriver, name: str = "1", size: str = "m1.small", **kw: Any) -> NodeRequest:
    image = driver.resolve_image("ubuntu", "24.04", "amd64", None)
    sg = driver.ensure_security_group("d1", RULES)
    return NodeRequest("d1", "wn", resource_name("d1", "wn", name), size, image, "", sg, **kw)


def _servers(server: Any) -> list[dict[str, Any]]:
    return list(server.state()["servers"])


# -- networks: Nova counts the project's networks and every shared one ------------------------------
def test_without_a_configured_network_the_projects_own_network_is_chosen(openstack_server: Any) -> None:
    driver = _driver(openstack_server)  # no network: the seeded project also sees a shared public one
    node = driver.create_node(_request(driver))
    assert node.state == "running"
    assert [s["networks"] for s in _servers(openstack_server)] == [["private"]]


def test_several_own_networks_are_bad_input_naming_them_before_any_server(openstack_server: Any) -> None:
    openstack_server.cloud.add_network("second", "10.1.0.0/24")
    driver = _driver(openstack_server)
    with pytest.raises(BadInput, match=r"several networks could take the servers: private \(.*second"):
        driver.create_node(_request(driver))
    assert _servers(openstack_server) == []
    named = _driver(openstack_server, network="second")
    named.create_node(_request(named))
    assert [s["networks"] for s in _servers(openstack_server)] == [["second"]]


# -- flavors against the image: Nova's _validate_flavor_image_nostatus ------------------------------
def test_a_flavor_disk_smaller_than_the_image_is_skipped_not_sent(openstack_server: Any) -> None:
    driver = _driver(openstack_server, network="private")
    with pytest.raises(SizeUnfit, match=r"m1\.tiny's 1 GB disk cannot hold the image") as err:
        driver.create_node(_request(driver, size="m1.tiny"))
    assert isinstance(err.value, CapacityError)  # so the engine goes on to the next flavor
    assert _servers(openstack_server) == []
    assert not [c for c in openstack_server.calls if c["action"] == "CreateServer"]


def test_an_image_min_ram_above_the_flavor_is_skipped(openstack_server: Any) -> None:
    driver = _driver(openstack_server, network="private")
    request = _request(driver)
    openstack_server.cloud.images[request.image]["min_ram"] = 4096
    with pytest.raises(SizeUnfit, match="2048 MiB of RAM, the image needs 4096"):
        driver.create_node(request)
    driver.create_node(_request(driver, size="m1.medium"))
    assert [s["flavor"] for s in _servers(openstack_server)] == ["m1.medium"]


def test_a_zero_disk_flavor_boots_from_a_volume_that_holds_the_image(openstack_server: Any) -> None:
    openstack_server.cloud.add_flavor("v1", "v1.small", 1, 2048, 0)
    driver = _driver(openstack_server, network="private")
    request = _request(driver, size="v1.small")
    openstack_server.cloud.images[request.image]["min_disk"] = 25
    driver.create_node(request)
    (server,) = openstack_server.cloud.servers.values()
    (root,) = server["block_device_mapping_v2"]
    assert root["boot_index"] == 0 and root["destination_type"] == "volume" and root["volume_size"] == 25


# -- security group rules: Neutron defaults ethertype to IPv4 ---------------------------------------
def test_an_ipv6_admin_cidr_becomes_an_ipv6_rule(openstack_server: Any) -> None:
    driver = _driver(openstack_server, network="private")
    rules = (*RULES, FirewallRule("tcp", 22, 22, "2001:db8::/32", "ssh over IPv6"))
    group = driver.ensure_security_group("d1", rules)
    assert driver.ensure_security_group("d1", rules) == group
    made = openstack_server.cloud.security_groups[group]["security_group_rules"]
    v6 = [r for r in made if r["remote_ip_prefix"] == "2001:db8::/32"]
    assert [(r["ethertype"], r["port_range_min"]) for r in v6] == [("IPv6", 22)]
    assert {r["ethertype"] for r in made if r["remote_ip_prefix"] == "0.0.0.0/0"} == {"IPv4"}


# -- soft delete: nova.conf reclaim_instance_interval -----------------------------------------------
def test_destroy_and_sweep_leave_nothing_on_a_soft_delete_cloud(openstack_server: Any,
                                                                public_key: str) -> None:
    openstack_server.cloud.reclaim_instance_interval_s = 3600
    driver = _driver(openstack_server, network="private", settings=QUICK)
    key = driver.ensure_key_pair("d1", public_key)
    sg = driver.ensure_security_group("d1", RULES)
    image = driver.resolve_image("ubuntu", "24.04", "amd64", None)
    def request(group: str) -> NodeRequest:
        return NodeRequest("d1", group, resource_name("d1", group, "1"), "m1.small", image, key, sg)

    front = driver.create_node(request("fe"))
    driver.ensure_public_address("d1", front)
    driver.attach_volume(driver.ensure_volume("d1", "fe", 5, None), front)
    worker = driver.create_node(request("wn"))
    driver.destroy_node(worker)
    assert [n.name for n in driver.list_nodes("d1")] == [front.name]
    driver.sweep("d1")
    assert openstack_server.leftovers("d1") == {"servers": [], "keypairs": [], "security_groups": [],
                                                "volumes": [], "floating_ips": []}


# -- scheduling faults: MaxRetriesExceeded is a NoValidHost ------------------------------------------
def test_max_retries_exceeded_is_capacity(openstack_server: Any) -> None:
    openstack_server.set_faults({"rules": [{"code": "MaxRetriesExceeded", "actions": ["CreateServer"],
                                            "instance_type": "g1.large"}]})
    driver = _driver(openstack_server, network="private")
    with pytest.raises(CapacityError, match="Exceeded maximum number of retries"):
        driver.create_node(_request(driver, size="g1.large"))
    assert _servers(openstack_server) == []


# -- floating IPs: from the gateway network of the router on the port's subnet ----------------------
def test_the_floating_ip_comes_from_the_routers_gateway_network(openstack_server: Any) -> None:
    cloud = openstack_server.cloud
    other = cloud.add_network("ext-other", "198.51.100.0/24", external=True, project_id="admin")
    cloud.set_router_gateway(cloud.router_id, other)  # the first external network listed is not it
    driver = _driver(openstack_server, network="private")
    node = driver.create_node(_request(driver))
    address = driver.ensure_public_address("d1", node)
    (fip,) = cloud.floating_ips.values()
    assert fip["floating_network_id"] == other["id"] and address.startswith("198.51.100.")


def test_no_router_to_an_external_network_says_so(openstack_server: Any) -> None:
    cloud = openstack_server.cloud
    cloud.add_network("ext-other", "198.51.100.0/24", external=True, project_id="admin")
    cloud.routers[cloud.router_id]["external_gateway_info"] = None
    driver = _driver(openstack_server, network="private")
    node = driver.create_node(_request(driver))
    with pytest.raises(CloudError, match=r"no router connects the server's subnet.*ext-other"):
        driver.ensure_public_address("d1", node)
    assert cloud.floating_ips == {}


# -- zones: Cinder's names are not Nova's --------------------------------------------------------------
def test_the_volume_is_created_in_cinders_zone_and_attached_across(openstack_server: Any) -> None:
    openstack_server.cloud.compute_zones = ["az-1"]
    driver = _driver(openstack_server, network="private")
    node = driver.create_node(_request(driver))
    assert node.zone == "az-1"
    volume = driver.ensure_volume("d1", "fe", 5, node.zone)
    driver.attach_volume(volume, node)
    (seen,) = openstack_server.state()["volumes"]
    assert seen["server_id"] == node.id
    assert openstack_server.cloud.volumes[volume]["availability_zone"] == "nova"


# -- lost answers: the cloud acted, the reply did not come back ---------------------------------------
def test_a_lost_create_answer_reuses_the_new_server_not_a_failed_twin(openstack_server: Any) -> None:
    driver = _driver(openstack_server, network="private", settings=QUICK)
    request = _request(driver)
    raw = driver.libcloud  # a same-name server a crashed run left in ERROR
    small = next(s for s in raw.list_sizes() if s.name == "m1.small")
    failed = raw.create_node(name=request.name, size=small,
                             image=next(i for i in raw.list_images() if i.id == request.image),
                             networks=[n for n in raw.ex_list_networks() if n.name == "private"])
    openstack_server.cloud.servers[failed.id].update(status="ERROR", fault="Build of instance aborted")
    openstack_server.set_faults({"rules": [{"code": "LostAnswer", "actions": ["CreateServer"],
                                            "remaining": 1}]})
    node = driver.create_node(request)
    assert node.state == "running" and node.id != failed.id
    assert [(s["id"], s["status"]) for s in _servers(openstack_server)] == [(node.id, "ACTIVE")]


def test_a_lost_floating_ip_answer_is_not_a_conflict(openstack_server: Any) -> None:
    driver = _driver(openstack_server, network="private")
    node = driver.create_node(_request(driver))
    openstack_server.set_faults({"rules": [{"code": "LostAnswer", "actions": ["CreateFloatingIp"],
                                            "remaining": 1}]})
    address = driver.ensure_public_address("d1", node)
    assert [f["address"] for f in openstack_server.state()["floating_ips"]] == [address]


def test_attaching_a_volume_in_error_fails_at_once(openstack_server: Any) -> None:
    driver = _driver(openstack_server, network="private", settings=QUICK)
    node = driver.create_node(_request(driver))
    volume = driver.ensure_volume("d1", "fe", 5, None)
    openstack_server.cloud.volumes[volume].update(status="error", ready_at=float("inf"))
    with pytest.raises(CloudError, match="is in error"):
        driver.attach_volume(volume, node)
    calls = [c["action"] for c in openstack_server.calls]
    assert calls.count("GetVolume") == 1 and "AttachVolume" not in calls


# -- Nova's limits and quotas ------------------------------------------------------------------------
def test_user_data_over_novas_limit_is_sent_compressed(openstack_server: Any) -> None:
    driver = _driver(openstack_server, network="private")
    text = "#cloud-config\n" + "".join(random.Random(1).choices(string.ascii_letters, k=60000)) + "\n"
    assert len(base64.b64encode(text.encode())) > 65535
    driver.create_node(_request(driver, user_data=text))
    (server,) = openstack_server.cloud.servers.values()
    assert len(server["user_data"]) <= 65535
    assert gzip.decompress(base64.b64decode(server["user_data"])).decode() == text


def test_an_instance_quota_is_a_clear_error_tried_once(openstack_server: Any) -> None:
    openstack_server.cloud.quotas["instances"] = 1
    driver = _driver(openstack_server, network="private")
    driver.create_node(_request(driver, "1"))
    with pytest.raises(CloudError, match="Quota exceeded for instances") as err:
        driver.create_node(_request(driver, "2"))
    assert not isinstance(err.value, CapacityError)
    assert [c["action"] for c in openstack_server.calls].count("CreateServer") == 2


def test_the_test_servers_shapes_are_novas_and_neutrons(openstack_server: Any) -> None:
    """What the server answers where it is strict, read through libcloud as the driver reads it."""
    from libcloud.common.exceptions import BaseHTTPError

    raw = _driver(openstack_server).libcloud
    other = openstack_server.cloud.add_network("ext-other", "198.51.100.0/24", external=True,
                                               project_id="admin")
    port = next(iter(openstack_server.cloud.ports.values()))  # on the private subnet, routed to "public"
    with pytest.raises(BaseHTTPError) as err:
        raw.network_connection.request("/v2.0/floatingips", method="POST", data={"floatingip": {
            "floating_network_id": other["id"], "port_id": port["id"]}})
    assert err.value.code == 404 and "is not reachable from subnet" in str(err.value)
    zones = raw.connection.request("/os-availability-zone").object
    assert zones == {"availabilityZoneInfo": [{"zoneName": "nova", "zoneState": {"available": True},
                                               "hosts": None}]}


# -- long runs: an OIDC access token lives about an hour ---------------------------------------------
def test_the_daemons_cloud_power_survives_a_token_expiry(openstack_server: Any, tmp_path: Path) -> None:
    """The daemon keeps its driver for days; the site's tokens do not last. The credential source (here
    an IM auth file that oidc-agent's wrapper rewrites) is read again when the cloud refuses the old one."""
    from elastic.model import NodeGroup
    from elastic.power import CloudPower, LaunchSpec
    from provisioner.credentials import credentials_from_auth_file

    cloud = openstack_server.cloud
    auth = tmp_path / "auth.dat"

    def token_file(token: str) -> None:
        auth.write_text(f"id = ost; type = OpenStack; host = {openstack_server.endpoint}/v3; "
                        f"username = egi.eu; password = {token}; tenant = openid; domain = demo; "
                        f"auth_version = 3.x_oidc_access_token\n")

    cloud.credentials.oidc_tokens = {"token-of-the-first-hour"}
    token_file("token-of-the-first-hour")
    driver = OpenStackDriver(credentials_from_auth_file(auth, "openstack"), None, QUICK, network="private",
                             poll_s=0.05)
    image = driver.resolve_image("ubuntu", "24.04", "amd64", None)
    launch = LaunchSpec(("m1.small",), image, "", driver.ensure_security_group("d1", RULES))
    power = CloudPower(driver, "d1", {"wn": launch})
    group = NodeGroup("wn", 1, 2048, max=3)
    power.power_on(group, power.new_name(group))

    cloud.credentials.oidc_tokens = {"token-of-the-second-hour"}  # the first one expired at the IdP ...
    cloud.expire_tokens()  # ... and so did the Keystone token made from it
    token_file("token-of-the-second-hour")
    power.power_on(group, power.new_name(group))
    assert len(power.machines(group) or {}) == 2
    assert "token-of-the-second-hour" not in str(driver)


# -- Keystone scoping: libcloud names the project and gives its domain by id only ----------------------
def _egi_project(cloud: Any) -> None:
    cloud.credentials.users = {("alice", "egi"): "alices-password"}
    cloud.credentials.project = "vo.access.egi.eu"
    cloud.credentials.project_domain_id = "0a5e1f3c9d2b4e6f8a7c5b3d1e9f2a4c"
    cloud.credentials.project_domain_name = "egi"


def test_a_password_scoped_by_a_domain_name_or_a_project_id_logs_in(openstack_server: Any) -> None:
    from provisioner.credentials import CredentialSource, OpenStackCredentials

    _egi_project(openstack_server.cloud)
    common = {"username": "alice", "user_domain_name": "egi", "region": "RegionOne"}
    url, source = openstack_server.endpoint + "/v3", CredentialSource("environment")
    by_domain_name = OpenStackCredentials(url, "password", "alices-password", source,
                                          project_name="vo.access.egi.eu", project_domain_name="egi",
                                          **common)
    by_id = OpenStackCredentials(url, "password", "alices-password", source,
                                 project_id=openstack_server.cloud.project_id, **common)
    for credentials in (by_domain_name, by_id):
        driver = OpenStackDriver(credentials, None, QUICK)
        assert "m1.small" in driver.sizes_that_fit(1, 1024)
    unknown = OpenStackCredentials(url, "password", "alices-password", source, project_name="vo.other",
                                   project_domain_name="egi", **common)
    with pytest.raises(BadInput, match=r"project 'vo.other' is not one this user may use.*vo\.access"):
        OpenStackDriver(unknown, None, QUICK).sizes_that_fit(1, 1024)


# -- regions and services: from the catalog, as the site names them ----------------------------------
def test_region_and_service_names_come_from_the_catalog(openstack_server: Any) -> None:
    from provisioner.credentials import CredentialSource, OpenStackCredentials

    cloud = openstack_server.cloud
    cloud.region = "WAW4-1"
    cloud.service_names.update(compute="compute", image="image", network="network", volumev3="volume")
    url, source = openstack_server.endpoint + "/v3", CredentialSource("environment")
    credentials = OpenStackCredentials(url, "password", "secret", source, username="demo",
                                       project_name="demo")
    driver = OpenStackDriver(credentials, None, QUICK, network="private", poll_s=0.05)
    node = driver.create_node(_request(driver))
    assert driver.region == "WAW4-1"
    driver.attach_volume(driver.ensure_volume("d1", "fe", 5, None), node)
    elsewhere = OpenStackCredentials(url, "password", "secret", source, username="demo", project_name="demo",
                                     region="RegionOne")
    with pytest.raises(BadInput, match=r"no region 'RegionOne' in the catalog \(regions with compute: "
                                       r"WAW4-1\)"):
        OpenStackDriver(elsewhere, None, QUICK).sizes_that_fit(1, 1024)


def test_the_im_auth_files_service_name_and_region_keys(openstack_server: Any, tmp_path: Path) -> None:
    from provisioner.credentials import credentials_from_auth_file

    cloud = openstack_server.cloud
    cloud.region = "WAW4-1"
    cloud.service_names["compute"] = "nova-waw"
    auth = tmp_path / "auth.dat"
    line = (f"id = ost; type = OpenStack; host = {openstack_server.endpoint}/v3; username = demo; "
            f"password = secret; tenant = demo; service_region = WAW4-1; service_name = ")
    auth.write_text(line + "nova-waw\n")
    driver = OpenStackDriver(credentials_from_auth_file(auth, "openstack"), None, QUICK)
    assert "m1.small" in driver.sizes_that_fit(1, 1024)
    auth.write_text(line + "nova-elsewhere\n")
    with pytest.raises(BadInput, match=r"no compute service named 'nova-elsewhere' in region WAW4-1 "
                                       r"\(named: nova-waw\)"):
        OpenStackDriver(credentials_from_auth_file(auth, "openstack"), None, QUICK).sizes_that_fit(1, 1024)


# -- TLS: sites whose CA is not in the system's store ---------------------------------------------------
def test_a_site_ca_is_honoured_and_a_tls_failure_is_said_once(tmp_path: Path) -> None:
    import dataclasses

    from provisioner.credentials import CredentialSource, OpenStackCredentials
    from tests.harness.openstack import OpenStackServer
    from tests.harness.openstack.tls import site_certificate

    ca, cert, key = site_certificate(tmp_path)
    with OpenStackServer(tls=(str(cert), str(key))) as server:
        url, source = server.endpoint + "/v3", CredentialSource("environment")
        plain = OpenStackCredentials(url, "password", "secret", source, username="demo", project_name="demo")
        with pytest.raises(CloudError, match=r"TLS: the cloud's certificate cannot be verified.*cacert") as e:
            OpenStackDriver(plain, None, QUICK).sizes_that_fit(1, 1024)
        assert "cannot reach" not in str(e.value)
        trusted = dataclasses.replace(plain, cacert=str(ca))
        assert "m1.small" in OpenStackDriver(trusted, None, QUICK).sizes_that_fit(1, 1024)


# -- the operator's view through the CLI ------------------------------------------------------------
_TEMPLATE = "oscar-openstack"


def _oscar_deploy(server: Any, tmp_path: Path, command: str, *args: str,
                  auth_region: str | None = "RegionOne") -> subprocess.CompletedProcess[str]:
    """``oscar-deploy COMMAND ... --auth`` in a clean environment (no OS_*), against ``server``
    (``auth_region`` None: the auth file names no region)."""
    import os
    import sys

    from provisioner.resources import tosca_dir

    auth = tmp_path / "auth.dat"
    auth.write_text(f"id = ost; type = OpenStack; host = {server.endpoint}/v3; username = demo; "
                    "password = secret; tenant = demo" + (f"; region = {auth_region}" if auth_region else "")
                    + "\n")
    auth.chmod(0o600)
    (tmp_path / "home").mkdir(exist_ok=True)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OS_", "OSCAR_DEPLOY_"))},
           "HOME": str(tmp_path / "home"), "OSCAR_DEPLOY_GENERAL_CACHE_DIR": str(tmp_path / "cache"),
           "OSCAR_DEPLOY_PROVISIONER_RETRY_BASE_S": "0.01", "OSCAR_DEPLOY_PROVISIONER_RETRY_MAX_S": "0.05"}
    argv = [a if a != _TEMPLATE else str(tosca_dir() / "templates" / "oscar-openstack.yaml") for a in args]
    return subprocess.run(
        [sys.executable, "-m", "provisioner.cli", "--state", str(tmp_path / "state.db"), command, *argv,
         "--auth", str(auth)] if command == "create" else
        [sys.executable, "-m", "provisioner.cli", "--state", str(tmp_path / "state.db"), command, *argv],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, stdin=subprocess.DEVNULL,
        check=False)


def test_create_and_destroy_leave_nothing_on_a_soft_delete_cloud(openstack_server: Any,
                                                                 tmp_path: Path) -> None:
    openstack_server.cloud.reclaim_instance_interval_s = 3600
    done = _oscar_deploy(openstack_server, tmp_path, "create", _TEMPLATE, "-i", "wn_num=1",
                         "-i", "admin_cidr=10.0.0.0/8", "--name", "soft", "--no-configure", "--yes")
    assert done.returncode == 0, done.stderr
    # --force: no cluster answers here, so nothing tells a busy worker from an idle one
    assert _oscar_deploy(openstack_server, tmp_path, "scale", "soft", "wn", "0", "--yes",
                         "--force").returncode == 0
    gone = _oscar_deploy(openstack_server, tmp_path, "destroy", "soft", "--yes")
    assert gone.returncode == 0, gone.stderr
    state = openstack_server.state()
    assert state["servers"] == [] and state["volumes"] == [] and state["floating_ips"] == []
    assert [g["name"] for g in state["security_groups"]] == ["default"] and state["keypairs"] == []


@pytest.mark.parametrize(("site", "expected"), [
    ("networks", r"several networks could take the servers: private \(.*\), second"),
    ("region", r"no region 'RegionOne' in the catalog \(regions with compute: WAW4-1\)"),
    ("flavor", r"no flavor can boot image .*m1\.tiny's 1 GB disk cannot hold the image \(3 GB\)"),
], ids=["networks", "region", "flavor"])
def test_create_with_an_ambiguous_network_unknown_region_or_small_flavor_exits_2_naming_why(
        openstack_server: Any, tmp_path: Path, site: str, expected: str) -> None:
    import re

    if site == "networks":
        openstack_server.cloud.add_network("second", "10.1.0.0/24")
    elif site == "region":
        openstack_server.cloud.region = "WAW4-1"
    flavor = ["-i", "fe_instance_type=m1.tiny"] if site == "flavor" else []
    region = ["-i", "region=RegionOne"] if site == "region" else []  # a region the site does not have
    done = _oscar_deploy(openstack_server, tmp_path, "create", _TEMPLATE, "-i", "wn_num=1",
                         "-i", "admin_cidr=10.0.0.0/8", *flavor, *region, "--no-configure", "--yes")
    assert done.returncode == 2, done.stderr
    assert re.search(expected, done.stderr) and "Traceback" not in done.stderr
    # refused before anything is created or recorded: no server, key pair or security group
    state = openstack_server.state()
    assert state["servers"] == [] and state["keypairs"] == [] and state["volumes"] == []
    assert [g["name"] for g in state["security_groups"]] == ["default"]
    listed = _oscar_deploy(openstack_server, tmp_path, "list", "-o", "json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == [], listed.stdout


# -- the pure choices, on the shapes the services answer with ----------------------------------------
def test_choices_on_what_the_services_list() -> None:
    from provisioner.clouds.openstack_choices import catalog_choice, choose_network, image_fit, project_scope
    from provisioner.errors import CredentialsError

    shared = {"id": "n1", "name": "egi-shared", "shared": True, "router:external": False}
    public = {"id": "n2", "name": "public", "shared": True, "router:external": True}
    assert choose_network([shared, public]) is shared  # no network of its own: the only shared internal one
    with pytest.raises(BadInput, match="no network of its own"):
        choose_network([public])
    entries = [("compute", "nova", "A"), ("compute", "nova", "B"), ("image", "glance", "A"),
               ("block-storage", "cinder", "A"), ("network", "neutron", "A")]
    with pytest.raises(BadInput, match="2 regions with compute \\(A, B\\)"):
        catalog_choice(entries, None, {"compute": None})
    wanted = {"compute": None, "image": "glance", "volumev3": "cinderv3", "volumev2": "cinderv2",
              "network": "neutron"}
    region, services = catalog_choice(entries, "A", wanted)
    assert region == "A" and services == {"compute": ("compute", "nova"), "image": ("image", "glance"),
                                          "volumev3": ("block-storage", "cinder"),
                                          "network": ("network", "neutron")}
    twins = [{"id": "p1", "name": "vo", "domain_id": "d1"}, {"id": "p2", "name": "vo", "domain_id": "d2"}]
    assert project_scope(twins, "vo", None, "d2") == ("vo", "d2")
    with pytest.raises(CredentialsError, match="several projects are named 'vo'"):
        project_scope(twins, "vo", None, "egi")
    flavor = {"name": "f", "ram": 2048, "disk": 10}
    assert image_fit(flavor, {"size": 3 * 1024**3, "min_disk": 0}, None) == (None, None)
    assert image_fit(flavor, {"size": 1, "min_disk": 0}, 40) == (40, None)  # more disk: a root volume
    assert image_fit({**flavor, "disk": 0}, {"size": 1, "min_disk": 30}, None) == (30, None)


def test_the_shipped_template_takes_the_sites_own_region_from_the_catalog(openstack_server: Any,
                                                                        tmp_path: Path) -> None:
    """Sites name their regions as they like (``WAW4-1``); the shipped template's empty default
    takes the catalog's only region instead of libcloud's ``RegionOne``, and destroy finds it again."""
    openstack_server.cloud.region = "WAW4-1"
    done = _oscar_deploy(openstack_server, tmp_path, "create", _TEMPLATE, "-i", "wn_num=1",
                         "-i", "admin_cidr=10.0.0.0/8", "--name", "waw", "--no-configure", "--yes",
                         auth_region=None)
    assert done.returncode == 0, done.stderr
    assert len(openstack_server.state()["servers"]) == 2
    gone = _oscar_deploy(openstack_server, tmp_path, "destroy", "waw", "--yes", auth_region=None)
    assert gone.returncode == 0, gone.stderr
    state = openstack_server.state()
    assert state["servers"] == [] and state["keypairs"] == [] and state["volumes"] == []
