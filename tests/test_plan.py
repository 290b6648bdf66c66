"""The planner on hand-built specs: sizes from libcloud's real offline data, images, rules, cost, JSON."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as settings_
from hypothesis import strategies as st

from provisioner import sizes
from provisioner.config import GeneralSettings, Settings
from provisioner.errors import BadInput
from provisioner.images import CANONICAL_OWNER
from provisioner.plan import (
    MASK,
    make_plan,
    plan_components,
    plan_to_json,
    read_versions,
    render_plan_table,
)
from provisioner.spec import (
    BoardSpec,
    ClusterSpec,
    ComponentSpec,
    GroupSpec,
    MachineSpec,
    OutputSpec,
    SecretSpec,
    VolumeSpec,
)


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return Settings(general=GeneralSettings(cache_dir=str(tmp_path / "cache")))


def aws_group(
    name: str = "wn", role: str = "worker", region: str = "us-east-1", **machine: object
) -> GroupSpec:
    count = int(machine.pop("count", 1))  # type: ignore[call-overload]
    maximum = int(machine.pop("max", 4))  # type: ignore[call-overload]
    spec = MachineSpec(**{"cpus": 2, "memory_mib": 4096, **machine})  # type: ignore[arg-type]
    return GroupSpec(name, role, "aws", spec, count=count, max=maximum, region=region,  # type: ignore[arg-type]
                     source_node=f"{name}_node")


def cluster(*groups: GroupSpec, **kwargs: object) -> ClusterSpec:
    return ClusterSpec(sources=("hand.yaml",), groups=groups, **kwargs)  # type: ignore[arg-type]


def libcloud_driver_sizes(region: str) -> dict[str, object]:
    """The EC2 driver's own list_sizes (offline: it reads the same bundled data): the oracle."""
    from libcloud.compute.drivers.ec2 import EC2NodeDriver

    return {s.id: s for s in EC2NodeDriver("key", "secret", region=region).list_sizes()}


# -- the catalogue -----------------------------------------------------------------------------------


def test_catalogue_matches_the_ec2_driver_and_treats_zero_price_as_unknown(tmp_path: Path) -> None:
    ours = {s.name: s for s in sizes.region_sizes("us-east-1", tmp_path)}
    driver = libcloud_driver_sizes("us-east-1")
    assert set(ours) == set(driver)
    for name, size in ours.items():
        theirs = driver[name]
        assert size.cpus == int(theirs.extra["vcpu"]), name  # type: ignore[attr-defined]
        assert size.memory_mib == theirs.ram, name  # type: ignore[attr-defined]
        assert size.price_per_hour == (theirs.price or None), name  # type: ignore[attr-defined]
    unpriced = [s.name for s in ours.values() if s.price_per_hour is None]
    assert len(ours) == 800 and len(unpriced) == 118
    assert "m5.xlarge" in unpriced


def test_arch_comes_from_the_physical_processor() -> None:
    catalogue = {s.name: s for s in sizes.region_sizes("us-east-1")}
    assert catalogue["t4g.medium"].arch == "arm64"
    assert catalogue["c7g.large"].arch == "arm64"
    assert catalogue["t3.medium"].arch == "amd64"
    assert catalogue["c7a.large"].arch == "amd64"


def test_disk_cache_is_reused_and_a_corrupt_one_is_rebuilt(tmp_path: Path) -> None:
    first = sizes.region_sizes("eu-west-1", tmp_path)
    files = list(tmp_path.glob("ec2-sizes-eu-west-1-*.json"))
    assert len(files) == 1 and first
    sizes.region_catalogue.cache_clear()
    assert sizes.region_sizes("eu-west-1", tmp_path) == first
    files[0].write_text("{not json")
    sizes.region_catalogue.cache_clear()
    assert sizes.region_sizes("eu-west-1", tmp_path) == first
    assert json.loads(files[0].read_text())["sizes"][0]["name"]  # rewritten whole


# -- choosing sizes ----------------------------------------------------------------------------------


def cheapest_by_brute_force(region: str, cpus: int, memory_mib: int, arch: str, gpus: int = 0) -> float:
    """The lowest price among every current, priced size that fits, straight from the driver's list."""
    prices = []
    for size in libcloud_driver_sizes(region).values():
        extra = size.extra  # type: ignore[attr-defined]
        size_arch = "arm64" if "Graviton" in extra["physicalProcessor"] else "amd64"
        accelerated = bool(extra.get("gpu")) or extra["instanceFamily"] in (
            "GPU instance", "Machine Learning ASIC Instances", "FPGA Instances",
            "Media Accelerator Instances")
        if (size.price and extra["currentGeneration"] == "Yes" and size_arch == arch  # type: ignore[attr-defined]
                and int(extra["vcpu"]) >= cpus and size.ram >= memory_mib  # type: ignore[attr-defined]
                and (int(extra.get("gpu") or 0) >= gpus if gpus else not accelerated)
                and extra["physicalProcessor"] != "Variable"):
            prices.append(size.price)  # type: ignore[attr-defined]
    return min(prices)


@pytest.mark.parametrize(
    ("cpus", "memory_mib", "arch", "region"),
    [(2, 4096, "amd64", "us-east-1"), (4, 16384, "amd64", "us-east-1"), (2, 4096, "arm64", "us-east-1"),
     (8, 32768, "arm64", "eu-west-1"), (4, 4096, "amd64", "eu-central-1")],
)
def test_the_cheapest_size_that_fits_is_chosen(settings: Settings, cpus: int, memory_mib: int, arch: str,
                                               region: str) -> None:
    plan = make_plan(cluster(aws_group(cpus=cpus, memory_mib=memory_mib, arch=arch, region=region)), settings)
    group = plan.groups[0]
    assert group.size.cpus is not None and group.size.cpus >= cpus
    assert group.size.memory_mib is not None and group.size.memory_mib >= memory_mib
    assert group.size.price_per_hour == cheapest_by_brute_force(region, cpus, memory_mib, arch)
    chosen = sizes.find_size(sizes.region_sizes(region), group.size.name or "")
    assert chosen is not None and chosen.arch == arch and chosen.current
    assert group.image is not None and group.image.arch == arch


def test_an_unpriced_size_is_never_chosen_even_when_it_would_fit_exactly(settings: Settings) -> None:
    plan = make_plan(cluster(aws_group(cpus=4, memory_mib=16384)), settings)
    assert plan.groups[0].size.name != "m5.xlarge"
    assert plan.groups[0].size.price_per_hour


def test_gpu_sizes_only_when_gpus_are_asked_for(settings: Settings) -> None:
    plain, gpu = make_plan(cluster(aws_group("cpu", cpus=4, memory_mib=16384),
                                   aws_group("gpu", cpus=4, memory_mib=16384, gpus=1)), settings).groups
    catalogue = sizes.region_sizes("us-east-1")
    plain_size = sizes.find_size(catalogue, plain.size.name or "")
    gpu_size = sizes.find_size(catalogue, gpu.size.name or "")
    assert plain_size is not None and not plain_size.accelerated and plain_size.gpus == 0
    assert gpu_size is not None and gpu_size.gpus >= 1
    assert gpu.size.price_per_hour == cheapest_by_brute_force("us-east-1", 4, 16384, "amd64", gpus=1)


def test_a_named_type_wins_and_an_unpriced_one_makes_the_cost_a_lower_bound(settings: Settings) -> None:
    plan = make_plan(cluster(aws_group(instance_type="m5.xlarge", count=2)), settings)
    group = plan.groups[0]
    assert (group.size.name, group.size.explicit, group.size.cpus, group.size.memory_mib) == (
        "m5.xlarge", True, 4, 16384)
    assert group.size.price_per_hour is None and not plan.cost_complete
    assert any("no price for m5.xlarge" in w for w in plan.warnings)


def test_a_named_graviton_type_decides_the_image_arch(settings: Settings) -> None:
    plan = make_plan(cluster(aws_group(instance_type="t4g.large")), settings)
    assert plan.groups[0].arch == "arm64"
    assert plan.groups[0].image is not None and "arm64" in (plan.groups[0].image.name_pattern or "")


@pytest.mark.parametrize("bad", ["t3.mediun", "m5.huge", "n1-standard-1"])
def test_an_unknown_instance_type_is_bad_input_naming_the_node(settings: Settings, bad: str) -> None:
    with pytest.raises(BadInput) as caught:
        make_plan(cluster(aws_group(instance_type=bad)), settings)
    message = str(caught.value)
    assert caught.value.exit_code == 2
    assert "wn_node" in message and bad in message and "instance_type" in message
    if bad == "t3.mediun":
        assert "t3.medium" in message  # a suggestion


def test_an_unknown_region_and_an_impossible_size_are_bad_input(settings: Settings) -> None:
    with pytest.raises(BadInput, match=r"wn_node.*region.*'mars-north-1'"):
        make_plan(cluster(aws_group(region="mars-north-1")), settings)
    with pytest.raises(BadInput, match=r"wn_node.*100000 CPUs"):
        make_plan(cluster(aws_group(cpus=100000)), settings)


# -- OpenStack and fleets ----------------------------------------------------------------------------


def test_openstack_keeps_the_requirement_and_fleets_cost_nothing(settings: Settings) -> None:
    openstack = GroupSpec("os", "worker", "openstack", MachineSpec(2, 4096, disk_gib=20), count=1, max=3,
                          region="RegionOne")
    named = GroupSpec("os-gpu", "worker", "openstack", MachineSpec(8, 32768, instance_type="g1.xlarge"),
                      count=0, max=1)
    boards = (BoardSpec("pi-1", "192.0.2.11"), BoardSpec("pi-2", "192.0.2.12"))
    fleet = GroupSpec("edge", "edge", "fleet", MachineSpec(4, 8192, arch="arm64"), count=2, min=0, max=2,
                      boards=boards)
    plan = make_plan(cluster(openstack, named, fleet), settings)
    os_group, named_group, edge = plan.groups
    assert os_group.size.name == "flavor≥2cpu/4096MiB/20GiB" and os_group.region == "RegionOne"
    assert os_group.image is not None and os_group.image.name_pattern is None
    assert named_group.size.name == "g1.xlarge" and named_group.size.explicit
    assert edge.size.name is None and edge.boards == ("pi-1", "pi-2") and edge.image is None
    assert edge.size.price_per_hour == 0.0 and edge.region is None
    assert plan.cost_per_hour == 0.0 and not plan.cost_complete


# -- images ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "arch", "pattern"),
    [("24.04", "amd64", "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"),
     ("22.04", "arm64", "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-arm64-server-*")],
)
def test_ubuntu_images_are_found_by_canonicals_owner_and_name(settings: Settings, version: str, arch: str,
                                                             pattern: str) -> None:
    plan = make_plan(cluster(aws_group(os_version=version, arch=arch)), settings)
    image = plan.groups[0].image
    assert image is not None and (image.owner, image.name_pattern) == (CANONICAL_OWNER, pattern)
    assert (image.distribution, image.version, image.arch, image.id) == ("ubuntu", version, arch, None)


@pytest.mark.parametrize("given", ["ami-0123456789abcdef0", "aws://us-east-1/ami-0123456789abcdef0"])
def test_an_explicit_image_wins(settings: Settings, given: str) -> None:
    image = make_plan(cluster(aws_group(image=given)), settings).groups[0].image
    assert image is not None and image.id == "ami-0123456789abcdef0" and image.name_pattern is None


def test_images_that_cannot_be_found_are_bad_input(settings: Settings) -> None:
    with pytest.raises(BadInput, match=r"wn_node.*not an EC2 AMI"):
        make_plan(cluster(aws_group(image="ubuntu-24.04")), settings)
    with pytest.raises(BadInput, match=r"wn_node.*no EC2 image is known for centos 7"):
        make_plan(cluster(aws_group(os_distribution="centos", os_version="7")), settings)


# -- rules, warnings, components, secrets, cost ------------------------------------------------------


def test_admin_ports_open_only_to_the_admin_cidr_web_ports_to_all(settings: Settings) -> None:
    plan = make_plan(cluster(aws_group("front", "front-end", max=1), admin_cidr="203.0.113.0/24"), settings)
    by_port = {(r.protocol, r.port_from): r.source for r in plan.security_rules}
    assert by_port[("tcp", 22)] == by_port[("tcp", 6443)] == "203.0.113.0/24"
    assert by_port[("tcp", 80)] == by_port[("tcp", 443)] == "0.0.0.0/0"
    assert by_port[("all", None)] == "cluster"
    assert ("udp", 51820) not in by_port
    assert not any("admin CIDR" in w for w in plan.warnings)


def test_hybrid_clusters_open_wireguard_to_the_boards_only(settings: Settings) -> None:
    fleet = GroupSpec("edge", "edge", "fleet", MachineSpec(4, 8192, arch="arm64"),
                      boards=(BoardSpec("pi-1", "192.0.2.11"),))
    plan = make_plan(cluster(aws_group("front", "front-end", max=1), fleet), settings)
    udp = {(r.port_from, r.source) for r in plan.security_rules if r.protocol == "udp"}
    assert udp == {(51820, "192.0.2.11/32")}


def test_an_open_admin_cidr_warns_once(settings: Settings) -> None:
    plan = make_plan(cluster(aws_group()), settings)
    assert [w for w in plan.warnings if "0.0.0.0/0" in w]
    already = cluster(aws_group(), warnings=("input admin_cidr: 0.0.0.0/0 lets the whole internet in",))
    plan = make_plan(already, settings)
    assert not [w for w in plan.warnings if "0.0.0.0/0" in w]
    assert [w for w in plan_to_json(plan)["warnings"] if "0.0.0.0/0" in w] == list(already.warnings)


def test_components_come_from_the_versions_file(settings: Settings, tmp_path: Path) -> None:
    bare = make_plan(cluster(aws_group()), settings)
    names = {c.name: c.version for c in bare.components}
    assert re.fullmatch(r"v1\.\d+\.\d+\+k3s\d+", names["k3s"])
    assert "oscar" not in names and "minio" not in names  # not asked for
    full = make_plan(cluster(aws_group(), components=(ComponentSpec("minio"), ComponentSpec("knative"),
                                                      ComponentSpec("oscar"))), settings)
    assert {"k3s", "minio", "knative-serving", "oscar"} <= {c.name for c in full.components}
    versions = tmp_path / "versions.yml"
    versions.write_text("k3s_version: v1.33.1+k3s1\nminio_chart_version: 9.9.9\nk3s_channel: stable\n")
    picked = plan_components(cluster(components=(ComponentSpec("minio"),)), read_versions(versions))
    assert [(c.name, c.version) for c in picked] == [("k3s", "v1.33.1+k3s1"), ("minio", "9.9.9")]


def test_secrets_are_named_never_valued(settings: Settings) -> None:
    spec = cluster(
        aws_group(),
        secrets=(SecretSpec("oscar_password"), SecretSpec("minio_password", "s3cr3t-given-value-xyz", True)),
        outputs=(OutputSpec("ui", "https://x/?password={secret.oscar_password}", secret=True),
                 OutputSpec("endpoint", "https://{front.public_address}/")),
    )
    plan = make_plan(spec, settings)
    document = plan_to_json(plan)
    text = json.dumps(document) + render_plan_table(plan)
    assert "s3cr3t-given-value-xyz" not in text and "{secret.oscar_password}" not in text
    assert {s["name"]: s["generated"] for s in document["secrets"]} == {
        "oscar_password": True, "minio_password": False, "k3s_token": True, "ssh_private_key": True}
    outputs = {o["name"]: o for o in document["outputs"]}
    assert outputs["ui"]["value"] == MASK and outputs["ui"]["secret"]
    assert outputs["endpoint"]["value"] == "https://{front.public_address}/"


def test_cost_is_count_times_price_and_max_scale_uses_max(settings: Settings) -> None:
    front = aws_group("front", "front-end", count=1, max=1)
    workers = aws_group("wn", count=3, max=10, cpus=4, memory_mib=8192)
    plan = make_plan(cluster(dataclasses.replace(front, volume=VolumeSpec(50)), workers), settings)
    fe, wn = plan.groups
    assert fe.size.price_per_hour and wn.size.price_per_hour
    assert plan.cost_per_hour == pytest.approx(fe.size.price_per_hour + 3 * wn.size.price_per_hour, abs=1e-4)
    assert plan.max_cost_per_hour == pytest.approx(fe.size.price_per_hour + 10 * wn.size.price_per_hour,
                                                   abs=1e-4)
    assert plan.cost_complete


def test_json_carries_the_documented_fields_and_the_table_the_essentials(settings: Settings) -> None:
    plan = make_plan(cluster(aws_group("front", "front-end", max=1), aws_group(count=0, max=5)), settings)
    document = json.loads(json.dumps(plan_to_json(plan)))
    assert {"groups", "components", "security_rules", "outputs", "cost_per_hour"} <= set(document)
    for group in document["groups"]:
        assert {"name", "role", "provider", "count", "min", "max", "cpus", "memory_mib", "arch", "size",
                "image"} <= set(group)
    assert all(set(c) == {"name", "version"} for c in document["components"])
    table = render_plan_table(plan)
    for group in plan.groups:
        assert group.name in table and (group.size.name or "") in table
    assert f"${plan.cost_per_hour:.4f}/h now" in table


def test_minio_node_ports_exist_only_with_minio_and_no_dns_name_and_admit_the_admin_cidr(
        settings: Settings) -> None:
    bare = make_plan(cluster(aws_group("front", "front-end", max=1)), settings)
    assert not [r for r in bare.security_rules if r.port_from in (30300, 30303)]
    minio = ComponentSpec("minio", {"api_port": 31000})
    plan = make_plan(cluster(aws_group("front", "front-end", max=1), components=(minio,),
                             admin_cidr="198.51.100.7/32"), settings)
    public = {r.port_from for r in plan.security_rules if r.protocol == "tcp" and r.source == "0.0.0.0/0"}
    assert {80, 443} == public
    admin = {r.port_from for r in plan.security_rules if r.source == "198.51.100.7/32"}
    assert {22, 6443, 31000, 30303} == admin
    named = make_plan(cluster(aws_group("front", "front-end", max=1), components=(minio,),
                              admin_cidr="198.51.100.7/32", dns_name="oscar.example.org"), settings)
    assert not [r for r in named.security_rules if r.port_from in (31000, 30303)]


_DRIVER_SIZES: dict[str, dict[str, object]] = {}


@settings_(max_examples=40, deadline=None)
@given(cpus=st.integers(1, 96), memory_gib=st.integers(1, 768), arch=st.sampled_from(["amd64", "arm64"]),
       region=st.sampled_from(["us-east-1", "eu-west-1", "ap-southeast-2"]))
def test_cheapest_fit_never_misses_a_cheaper_fitting_size(cpus: int, memory_gib: int, arch: str,
                                                          region: str) -> None:
    if region not in _DRIVER_SIZES:
        _DRIVER_SIZES[region] = libcloud_driver_sizes(region)
    chosen = sizes.cheapest_fit(sizes.region_sizes(region), cpus, memory_gib * 1024, arch)  # type: ignore[arg-type]
    fitting = [
        s.price for s in _DRIVER_SIZES[region].values()  # type: ignore[attr-defined]
        if s.price and s.extra["currentGeneration"] == "Yes"  # type: ignore[attr-defined]
        and ("Graviton" in s.extra["physicalProcessor"]) == (arch == "arm64")  # type: ignore[attr-defined]
        and s.extra["physicalProcessor"] != "Variable" and not s.extra.get("gpu")  # type: ignore[attr-defined]
        and s.extra["instanceFamily"] not in ("Machine Learning ASIC Instances", "FPGA Instances",  # type: ignore[attr-defined]
                                              "Media Accelerator Instances", "GPU instance")
        and int(s.extra["vcpu"]) >= cpus and s.ram >= memory_gib * 1024  # type: ignore[attr-defined]
    ]
    if not fitting:
        assert chosen is None
    else:
        assert chosen is not None and chosen.price_per_hour == min(fitting)
        assert chosen.cpus >= cpus and chosen.memory_mib >= memory_gib * 1024 and chosen.arch == arch


def test_ports_a_template_restricts_keep_their_cidr_and_the_rest_their_default(settings: Settings) -> None:
    spec = cluster(aws_group("front", "front-end"), admin_cidr="198.51.100.0/24",
                   web_cidrs={443: "198.51.100.0/24", 30300: "192.0.2.0/24"},
                   components=(ComponentSpec("minio", {}),))
    rules = {r.port_from: r.source for r in make_plan(spec, settings).security_rules}
    assert rules == {22: "198.51.100.0/24", 6443: "198.51.100.0/24", 80: "0.0.0.0/0",
                     443: "198.51.100.0/24", 30300: "192.0.2.0/24", 30303: "198.51.100.0/24",  # MinIO: admin
                     None: "cluster"}


def test_elastic_settings_are_the_templates_else_the_configs(settings: Settings) -> None:
    from provisioner.spec import ElasticSpec

    assert plan_to_json(make_plan(cluster(aws_group("front", "front-end")), settings))["elastic"] is None
    spec = cluster(aws_group("front", "front-end"), elastic=ElasticSpec(idle_time_s=60.0, max_booting=3))
    elastic = plan_to_json(make_plan(spec, settings))["elastic"]
    defaults = settings.elastic
    assert elastic == {"idle_time_s": 60.0, "max_wait_poweron_s": defaults.max_wait_poweron_s,
                       "max_wait_poweroff_s": defaults.max_wait_poweroff_s,
                       "extra_free": defaults.extra_free, "max_booting": 3, "max_nodes": defaults.max_nodes}
