"""From the parsed template (tosca-parser's node graph + the raw merged YAML) to a ClusterSpec.

tosca-parser tells what each node *is* (type inheritance) and the defaults of properties the
template did not set; values the template did set are evaluated from the raw YAML with our
effective inputs, so tosca-parser's filled-in defaults (the IM Scalable's count/min/max of 1)
never pass for the author's intent.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from provisioner import sinks
from provisioner.errors import TemplateError
from provisioner.spec import (
    NODE_NAME,
    BoardSpec,
    ClusterSpec,
    ComponentSpec,
    ElasticSpec,
    GroupSpec,
    MachineSpec,
    OutputSpec,
    PowerSpec,
    SecretSpec,
    VolumeSpec,
)
from provisioner.template import im_compat
from provisioner.template.checks import check_scaling
from provisioner.template.inputs import ResolvedInputs, is_weak, placeholder
from provisioner.template.load import Loaded
from provisioner.template.values import Evaluator, host_of, is_function

COMPUTE = "tosca.nodes.Compute"
FRONT_END = "oscar_deploy.nodes.FrontEnd"
CLOUD = "oscar_deploy.nodes.CloudCompute"
EDGE = "oscar_deploy.nodes.EdgeBoard"
EDGE_FRONT_END = "oscar_deploy.nodes.EdgeFrontEnd"
OURS = {"oscar_deploy.nodes.MinIO": "minio", "oscar_deploy.nodes.Knative": "knative",
        "oscar_deploy.nodes.OSCAR": "oscar", "oscar_deploy.nodes.OSCARUI": "oscar-ui",
        "oscar_deploy.nodes.Elastic": "elastic"}
SILENT = ("tosca.nodes.BlockStorage", im_compat.IM_WORKER_NODE, "tosca.nodes.indigo.LRMS.FrontEnd")
ARCH = {"x86_64": "amd64", "amd64": "amd64", "x86-64": "amd64", "arm64": "arm64", "aarch64": "arm64"}
ALWAYS_SECRETS = ("k3s_token",)
"""Secrets every deployment generates; the others are those its components refer to
(``{secret.minio_password}``, ``{secret.oscar_password}``, ...)."""
_SECRET_REF = re.compile(r"\{secret\.([A-Za-z0-9_.-]+)\}")
_BOARD_DEFAULTS = {f.name: f.default for f in dataclasses.fields(BoardSpec)}
BOARD_CPUS: int = _BOARD_DEFAULTS["cpus"]  # type: ignore[assignment]
BOARD_MEMORY_MIB: int = _BOARD_DEFAULTS["memory_mib"]  # type: ignore[assignment]
"""What an edge board that gives no num_cpus/mem_size is taken to have (a Raspberry Pi 4/5)."""


class Builder:
    """Reads one parsed template into a ClusterSpec; holds the lookups every step shares."""

    def __init__(self, tosca: Any, loaded: Loaded, raw_nodes: Mapping[str, Any], inputs: ResolvedInputs,
                 evaluator: Evaluator, warn: Callable[[str, str], None], warnings: list[str],
                 default_provider: str) -> None:
        self.parsed = {node.name: node for node in tosca.nodetemplates}
        self.loaded = loaded
        self.origins = loaded.origins
        self.raw = raw_nodes
        self.inputs = inputs
        self.ev = evaluator
        self.warn = warn
        self.warnings = warnings
        self.default_provider = default_provider
        self.admin_cidr_input: str | None = None
        self.elastic_node: str | None = None

    # -- reading values ------------------------------------------------------------------------

    def is_a(self, name: str, type_name: str) -> bool:
        node = self.parsed.get(name)
        return bool(node is not None and node.is_derived_from(type_name))

    def fail(self, name: str, message: str) -> TemplateError:
        return TemplateError(message, where=self.origins.of_node(name), culprit=f"node {name}")

    def checked(self, name: str, what: str, value: Any, check: Callable[[Any], str | None]) -> Any:
        """``value`` if ``check`` passes; else a TemplateError naming the node and the property (the
        value reaches a command line, a file name or a Kubernetes name: ``provisioner.sinks``)."""
        why = check(value)
        if why is not None:
            named = why.startswith(("key ", "value ", "taint "))  # the reason quotes the value itself
            raise self.fail(name, f"{what}: {why}" if named else f"{what} {value!r} {why}")
        return value

    def prop(self, name: str, key: str, default: Any = None) -> Any:
        """A node property: the template's value if set, else the type's default."""
        properties = self.raw[name].get("properties") or {}
        if key in properties:
            return self.ev.eval(properties[key], f"node {name}", name)
        parsed = self.parsed.get(name)
        if parsed is not None:
            value = parsed.get_property_value(key)
            if value is not None and not is_function(value) and not hasattr(value, "result"):
                return value
        return default

    def type_defaults(self, name: str) -> dict[str, Any]:
        parsed = self.parsed.get(name)
        if parsed is None:
            return {}
        return {prop.name: prop.default for prop in parsed.type_definition.get_properties_def_objects()}

    def cap(self, name: str, capability: str, key: str) -> Any:
        """A capability property exactly as the template set it (None if it did not)."""
        caps = self.raw[name].get("capabilities") or {}
        props = (caps.get(capability) or {}).get("properties") or {}
        if key not in props:
            return None
        return self.ev.eval(props[key], f"node {name}", name)

    def cap_input(self, name: str, capability: str, key: str) -> str | None:
        """The input a capability property takes its value from (``{get_input: wn_num}``), if any."""
        caps = self.raw[name].get("capabilities") or {}
        value = ((caps.get(capability) or {}).get("properties") or {}).get(key)
        if isinstance(value, dict) and isinstance(value.get("get_input"), str):
            return value["get_input"]
        return None

    def size(self, name: str, value: Any, unit: str, what: str) -> float:
        from toscaparser.common.exception import TOSCAException
        from toscaparser.elements.scalarunit import ScalarUnit_Size

        try:
            return float(ScalarUnit_Size(value).get_num_from_scalar_unit(unit))
        except (ValueError, TypeError, TOSCAException) as error:
            raise self.fail(name, f"{what} {value!r} is not a size such as '4 GiB' ({error})") from None

    def seconds(self, name: str, value: Any, what: str) -> float | None:
        from toscaparser.common.exception import TOSCAException
        from toscaparser.elements.scalarunit import ScalarUnit_Time

        if value in (None, ""):
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        try:
            return float(ScalarUnit_Time(value).get_num_from_scalar_unit("s"))
        except (ValueError, TypeError, TOSCAException) as error:
            raise self.fail(name, f"{what} {value!r} is not a duration such as '5 m' ({error})") from None

    # -- groups --------------------------------------------------------------------------------

    def machine(self, name: str, default_arch: str) -> MachineSpec:
        cpus = self.cap(name, "host", "num_cpus")
        memory = self.cap(name, "host", "mem_size")
        # An edge board that does not say is taken for a Raspberry Pi 4/5 (BoardSpec's defaults);
        # a cloud machine for the smallest size worth running k3s and OSCAR's pods on.
        default_cpus, default_mib = (BOARD_CPUS, BOARD_MEMORY_MIB) if self.is_a(name, EDGE) else (2, 4096)
        missing = {key: assumed for key, value, assumed in (
            ("num_cpus", cpus, f"{default_cpus} CPUs"), ("mem_size", memory, f"{default_mib // 1024} GiB"))
            if value is None}
        if missing:
            self.warn(f"host:{name}", f"node {name}: no {'/'.join(missing)} given; "
                      f"{' and '.join(missing.values())} assumed")
        disk = self.cap(name, "host", "disk_size")
        disk_gib = math.ceil(self.size(name, disk, "GiB", "disk_size")) if disk not in (None, "") else None
        arch_raw = self.cap(name, "os", "architecture")
        arch = default_arch if arch_raw in (None, "") else ARCH.get(str(arch_raw).lower())
        if arch is None:
            raise self.fail(name, f"os architecture {arch_raw!r} is not supported (use x86_64 or arm64)")
        image = self.cap(name, "os", "image") or (self.prop(name, "image") if self.is_a(name, CLOUD)
                                                  else None)
        distribution = self.cap(name, "os", "distribution")
        version = self.cap(name, "os", "version")
        instance_type = self.cap(name, "host", "instance_type")
        return MachineSpec(
            cpus=int(cpus) if cpus is not None else default_cpus,
            memory_mib=math.ceil(self.size(name, memory, "MiB", "mem_size")) if memory else default_mib,
            arch=arch,  # type: ignore[arg-type]
            gpus=int(self.cap(name, "host", "num_gpus") or 0),
            disk_gib=disk_gib or None,
            instance_type=str(instance_type) if instance_type else None,
            image=str(image) if image else None,
            os_distribution=str(distribution).lower() if distribution else "ubuntu",
            os_version=str(version) if version not in (None, "") else "24.04",
        )

    def placement(self, name: str) -> dict[str, Any]:
        """Provider, region, network, priority, labels, taints of a cloud group."""
        if not self.is_a(name, CLOUD):
            return {"provider": self.default_provider}
        raw_props = self.raw[name].get("properties") or {}
        provider = self.prop(name, "provider") if "provider" in raw_props else self.default_provider
        if provider not in ("aws", "openstack"):
            raise self.fail(name, f"provider {provider!r} is not supported (aws or openstack)")
        labels = self.prop(name, "labels") or {}
        taints = self.prop(name, "taints") or []
        if not isinstance(labels, dict) or not isinstance(taints, list):
            raise self.fail(name, "labels must be a map and taints a list")
        self.check_labels(name, labels, taints)
        return {
            "provider": provider,
            "region": self.prop(name, "region") or None,
            "network": self.prop(name, "network") or None,
            "priority": int(self.prop(name, "priority") or 0),
            "labels": {str(k): str(v) for k, v in labels.items()},
            "taints": tuple(str(t) for t in taints),
        }

    def check_labels(self, name: str, labels: Mapping[Any, Any], taints: list[Any]) -> None:
        """Labels and taints reach k3s's config file and the Kubernetes API: their grammar, whole."""
        for key, value in labels.items():
            self.checked(name, "property labels", key, sinks.label_key)
            self.checked(name, "property labels", "" if value is None else str(value), sinks.label_value)
        for item in taints:
            self.checked(name, "property taints", item, sinks.taint)

    def volume(self, name: str) -> VolumeSpec | None:
        for requirement in self.raw[name].get("requirements") or []:
            if not isinstance(requirement, dict) or "local_storage" not in requirement:
                continue
            target = requirement["local_storage"]
            location = "/pv"
            if isinstance(target, dict):
                relationship = target.get("relationship")
                if isinstance(relationship, dict):
                    location = (relationship.get("properties") or {}).get("location") or location
                target = target.get("node")
            if not isinstance(target, str) or target not in self.raw:
                continue
            size = self.prop(target, "size")
            if size in (None, ""):
                self.warn(f"volume:{target}", f"node {target}: no size given; no data volume")
                return None
            gib = math.ceil(self.size(target, size, "GiB", "size"))
            self.checked(name, "local_storage location", location, sinks.absolute_path)
            return VolumeSpec(size_gib=gib, mount=str(location)) if gib > 0 else None
        return None

    def front_end_name(self) -> str:
        found = [n for n in self.raw if self.is_a(n, FRONT_END) or self.is_a(n, EDGE_FRONT_END)]
        for name in self.raw:
            if self.is_a(name, im_compat.IM_FRONT_END):
                host = host_of(self.raw[name])
                if host and host not in found:
                    found.append(host)
        if not found:
            raise TemplateError("no front-end: one Compute node must be an oscar_deploy.nodes.FrontEnd "
                                "(or host the IM's LRMS.FrontEnd)", where=self.origins.all_files)
        if len(found) > 1:
            raise TemplateError(f"more than one front-end ({', '.join(found)}); a cluster has exactly one",
                                where=self.origins.of_node(found[1]), culprit=f"node {found[1]}")
        return found[0]

    def worker_bounds(self, name: str) -> tuple[int, int, int]:
        """count, min, max of a worker group: the Compute's scalable capability, or (the IM's way)
        the bounds on the hosted LRMS.WorkerNode's ``wn`` capability."""
        count = self.cap(name, "scalable", "count")
        low = self.cap(name, "scalable", "min_instances")
        high = self.cap(name, "scalable", "max_instances")
        inputs = {key: found for key in ("count", "min_instances", "max_instances")
                  if (found := self.cap_input(name, "scalable", key))}
        for other in self.raw:
            if host_of(self.raw[other]) == name and self.is_a(other, im_compat.IM_WORKER_NODE):
                if low is None and (found := self.cap_input(other, "wn", "min_instances")):
                    inputs["min_instances"] = found
                if high is None and (found := self.cap_input(other, "wn", "max_instances")):
                    inputs["max_instances"] = found
                low = self.cap(other, "wn", "min_instances") if low is None else low
                high = self.cap(other, "wn", "max_instances") if high is None else high
        count = 1 if count is None else count
        low = 0 if low is None else low
        if high is None:
            high = max(count, low) if isinstance(count, int) and isinstance(low, int) else count
        check_scaling(name, count, low, high, self.origins.of_node(name), inputs)
        return count, low, high

    def groups(self) -> tuple[GroupSpec, ...]:
        front = self.front_end_name()
        groups = []
        fleets: dict[str, list[str]] = {}
        for name in self.raw:
            if not self.is_a(name, COMPUTE):
                continue
            if name == front and self.is_a(name, EDGE):
                board = self.board(name)
                groups.append(GroupSpec(name=name, role="front-end", provider="fleet",
                                        machine=self.machine(name, "arm64"), count=1, min=1, max=1,
                                        boards=(board,), volume=self.volume(name), source_node=name))
            elif self.is_a(name, EDGE):
                fleets.setdefault(str(self.prop(name, "fleet", "edge")), []).append(name)
            elif name == front:
                place = self.placement(name)
                groups.append(GroupSpec(name=name, role="front-end", machine=self.machine(name, "amd64"),
                                        count=1, min=1, max=1, volume=self.volume(name),
                                        source_node=name, **place))
            else:
                count, low, high = self.worker_bounds(name)
                groups.append(GroupSpec(name=name, role="worker", machine=self.machine(name, "amd64"),
                                        count=count, min=low, max=high, source_node=name,
                                        **self.placement(name)))
        for fleet, names in fleets.items():
            groups.append(self.fleet(fleet, names))
        self.check_group_names(groups)
        fronts = [g for g in groups if g.role == "front-end"]
        others = sorted((g for g in groups if g.role != "front-end"), key=lambda g: -g.priority)
        return tuple(fronts + others)

    def check_group_names(self, groups: list[GroupSpec]) -> None:
        """Group names become parts of machine and node names: their grammar and length, and no two
        that would make the same names (``wn_a`` and ``wn-a``)."""
        seen: dict[str, str] = {}
        for group in groups:
            node = group.source_node or group.name
            if group.provider != "fleet" or group.role != "front-end":
                what = "property fleet" if group.provider == "fleet" else "node name"
                self.checked(node, what, group.name, sinks.group_name)
            label = sinks.group_label(group.name)
            if label in seen and seen[label] != group.name:
                raise self.fail(node, f"group {group.name!r} and group {seen[label]!r} would give their "
                                      "machines the same names; rename one")
            seen[label] = group.name

    def board(self, name: str) -> BoardSpec:
        machine = self.machine(name, "arm64")
        power_on, power_off = self.prop(name, "power_on") or None, self.prop(name, "power_off") or None
        mac = self.prop(name, "wol_mac") or None
        if mac:
            self.checked(name, "property wol_mac", mac, sinks.mac_address)
        if power_on:
            power = PowerSpec(type="command", power_on=power_on, power_off=power_off, mac=mac)
        elif mac:
            power = PowerSpec(type="wol", power_off=power_off, mac=mac)
        else:
            power = PowerSpec()
        address = self.prop(name, "address")
        if not address:
            raise self.fail(name, "an edge board needs an address")
        if not NODE_NAME.fullmatch(name):
            raise self.fail(name, "a board's name becomes its hostname and Kubernetes node name: use at "
                                  "most 63 lowercase letters, digits and '-', starting and ending with a "
                                  "letter or digit")
        self.checked(name, "property address", address, sinks.host_address)
        ssh_user = self.checked(name, "property ssh_user", self.prop(name, "ssh_user", "pi"),
                                sinks.posix_user)
        ssh_key = self.prop(name, "ssh_key") or None
        if ssh_key:
            self.checked(name, "property ssh_key", ssh_key, sinks.file_path)
        labels, taints = self.prop(name, "labels") or {}, self.prop(name, "taints") or []
        if isinstance(labels, dict) and isinstance(taints, list):
            self.check_labels(name, labels, taints)
        return BoardSpec(name=name, address=str(address), ssh_user=ssh_user,
                         ssh_key=ssh_key,
                         ssh_port=int(self.prop(name, "ssh_port", 22)), arch=machine.arch,
                         cpus=machine.cpus, memory_mib=machine.memory_mib, power=power,
                         proxy_jump=bool(self.prop(name, "proxy_jump", False)))

    def fleet(self, fleet: str, names: list[str]) -> GroupSpec:
        """One node group of the boards that share a ``fleet`` name.

        The elasticity daemon treats a group as alike nodes (one priority, labels, taints, arch and
        way of powering them), so boards that disagree on those are an error naming both; boards of
        different sizes are allowed, and the group counts each as the smallest (never promising
        the packer room a board lacks)."""
        boards = tuple(self.board(name) for name in names)
        first = names[0]
        shared = {name: {
            "priority": int(self.prop(name, "priority", 100)),
            "labels": {str(k): str(v) for k, v in (self.prop(name, "labels") or {}).items()},
            "taints": [str(t) for t in self.prop(name, "taints") or []],
            "arch": board.arch,
            "power": (board.power.type, board.power.power_on, board.power.power_off),
        } for name, board in zip(names, boards, strict=True)}
        for name in names[1:]:
            for key, value in shared[name].items():
                if value != shared[first][key]:
                    shown = key if key != "power" else "power_on/power_off/wol_mac"
                    raise self.fail(name, f"boards of fleet '{fleet}' disagree on {shown} ({first}: "
                                    f"{_shown(shared[first][key])}, {name}: {_shown(value)}); a fleet is "
                                    "one node group: give its boards the same, or another fleet name")
        machine = self.machine(first, "arm64")
        smallest = min(boards, key=lambda b: (b.cpus, b.memory_mib))
        cpus, memory = min(b.cpus for b in boards), min(b.memory_mib for b in boards)
        if any((b.cpus, b.memory_mib) != (cpus, memory) for b in boards):
            self.warn(f"fleet:{fleet}", f"boards of fleet '{fleet}' differ in size; the elasticity "
                      f"daemon counts each as {cpus} CPUs and {memory} MiB (the smallest, {smallest.name})")
        return GroupSpec(
            name=fleet, role="edge", provider="fleet",
            machine=dataclasses.replace(machine, cpus=cpus, memory_mib=memory),
            count=len(boards), min=0, max=len(boards), boards=boards,
            priority=shared[first]["priority"], labels=shared[first]["labels"],
            taints=tuple(shared[first]["taints"]), source_node=first,
        )

    # -- software ------------------------------------------------------------------------------

    def components(self) -> tuple[tuple[ComponentSpec, ...], ElasticSpec | None, str | None]:
        found: dict[str, ComponentSpec] = {}
        elastic: ElasticSpec | None = None
        dns_name: str | None = None
        versions = []
        front = self.front_end_name()
        found["k3s"] = ComponentSpec("k3s", {}, front)

        def add(component: str, props: Mapping[str, Any], node: str) -> None:
            if component in found:
                merged = {**found[component].properties, **props}
                found[component] = ComponentSpec(component, merged, found[component].source_node)
            else:
                found[component] = ComponentSpec(component, dict(props), node)

        for name, raw in self.raw.items():
            type_name = raw["type"]
            if self.is_a(name, COMPUTE):
                continue
            raw_props = raw.get("properties") or {}
            if im_compat.is_im_type(type_name):
                im_compat.warn_unimplemented(
                    name, type_name, raw_props, lambda v, n=name: self.ev.eval(v, f"node {n}", n),
                    self.type_defaults(name), self.warn)
                if "version" in raw_props:
                    versions.append(f"{name}: {self.prop(name, 'version')}")
            kind = next((c for t, c in OURS.items() if self.is_a(name, t)), None)
            if kind == "elastic":
                elastic = ElasticSpec(
                    idle_time_s=self.seconds(name, self.prop(name, "idle_time"), "idle_time"),
                    max_wait_poweron_s=self.seconds(name, self.prop(name, "max_wait_poweron"),
                                                    "max_wait_poweron"),
                    max_wait_poweroff_s=self.seconds(name, self.prop(name, "max_wait_poweroff"),
                                                     "max_wait_poweroff"),
                    extra_free=self.prop(name, "extra_free"), max_booting=self.prop(name, "max_booting"),
                    max_nodes=self.prop(name, "max_nodes"),
                    instance_profile=self.checked(name, "property instance_profile", profile, sinks.iam_name)
                    if (profile := self.prop(name, "instance_profile")) else None)
                self.elastic_node = name
                add("elastic", {}, name)
            elif kind == "minio":
                add("minio", {"access_key": self.prop(name, "access_key", "minio"),
                              "secret_key": self.secret_prop(name, "secret_key", "minio_password"),
                              "api_port": self.prop(name, "api_port"),
                              "console_port": self.prop(name, "console_port")}, name)
            elif kind == "oscar":
                add("oscar", {"username": self.prop(name, "username", "oscar"),
                              "password": self.secret_prop(name, "password", "oscar_password"),
                              "dns_host": self.prop(name, "dns_host") or None}, name)
            elif kind is not None:
                add(kind, {k: self.prop(name, k) for k in raw_props}, name)
            elif self.is_a(name, im_compat.IM_K8S_FRONT_END):
                dns_name = self.prop(name, "public_dns_name") or None
                add("k3s", {"admin_username": self.prop(name, "admin_username", "kubeuser"),
                            "admin_token": self.secret_prop(name, "admin_token", "k3s_token")}, name)
            elif self.is_a(name, im_compat.IM_OSCAR):
                add("minio", {"access_key": self.prop(name, "minio_accesskey", "minio"),
                              "secret_key": self.secret_prop(name, "minio_secretkey", "minio_password"),
                              "dns_host": self.prop(name, "minio_dns_host") or None,
                              "console_dns_host": self.prop(name, "minio_dns_host_console") or None}, name)
                add("knative", {}, name)
                add("oscar", {"username": "oscar",
                              "password": self.secret_prop(name, "password", "oscar_password"),
                              "dns_host": self.prop(name, "dns_host") or None}, name)
            elif self.is_a(name, im_compat.IM_ELASTIC):
                elastic = im_compat.elastic_from_clues(self.prop(name, "config_options"), self.warn, name)
                add("elastic", {}, name)
            elif self.is_a(name, "tosca.nodes.ec3.Application") and name == "minio":
                add("minio", self.im_minio_application(name), name)  # the IM's minio.yaml child
            elif not any(self.is_a(name, t) for t in SILENT):
                self.warn(f"node:{name}", f"node {name} ({type_name}) is not something oscar-deploy "
                          "installs; ignored")
        if versions:
            self.warn("versions", "component versions in the template are ignored ("
                      + ", ".join(versions) + "); playbooks/group_vars/all/versions.yml decides")
        return tuple(found.values()), elastic, dns_name

    def im_minio_application(self, name: str) -> dict[str, Any]:
        """The IM's MinIO child passes its credentials as inputs of its configure operation."""
        interfaces = self.raw[name].get("interfaces") or {}
        configure = ((interfaces.get("Standard") or {}).get("configure") or {})
        inputs = configure.get("inputs") if isinstance(configure, dict) else None
        values = self.ev.eval(inputs, f"node {name}", name) if isinstance(inputs, dict) else {}
        secret = values.get("minio_secretkey")
        if not (isinstance(secret, str) and secret.startswith("{secret.")):
            secret = placeholder("minio_password")
        return {"access_key": values.get("minio_accesskey") or "minio", "secret_key": secret}

    def secret_prop(self, name: str, key: str, secret: str) -> Any:
        """A password-like property: a placeholder, never a weak literal."""
        value = self.prop(name, key)
        if isinstance(value, str) and value.startswith("{secret."):
            return value
        if is_weak(value):
            if value:
                self.warn(f"weak:{name}.{key}", f"node {name}: property {key} is weak; a generated "
                          f"secret ({secret}) is used instead")
            return placeholder(secret)
        self.warn(f"literal:{name}.{key}", f"node {name}: property {key} is a literal secret in the "
                  "template; prefer an input given with -i")
        return value

    # -- the whole spec ------------------------------------------------------------------------

    def has_cluster_props(self, name: str) -> bool:
        """Our front-end types carry the cluster-wide admin_cidr and dns_name."""
        return self.is_a(name, FRONT_END) or self.is_a(name, EDGE_FRONT_END)

    def im_cidrs(self, front: str) -> dict[int, tuple[str, str | None]]:
        """The IM's per-port ``remote_cidr`` (e.g. ``kube_allowed_cidr``), each checked."""
        found = im_compat.endpoint_cidrs(self.raw, front,
                                         lambda value, node: self.ev.eval(value, f"node {node}", node))
        for port, (cidr, feeding) in found.items():
            self.check_cidr(front, cidr, f"remote_cidr of port {port}"
                            + (f" (input {feeding})" if feeding else ""))
        return found

    def check_cidr(self, name: str, value: str, what: str) -> None:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise self.fail(name, f"{what} {value!r} is not a CIDR such as 203.0.113.0/24") from None

    def admin_cidr(self, front: GroupSpec, im_cidrs: Mapping[int, tuple[str, str | None]],
                   cloud: bool = True) -> str:
        """Our front-end's ``admin_cidr``; for an IM template, the CIDR its endpoint ports are
        restricted to (``kube_allowed_cidr``): who may reach the web ports may administer it.
        Without a cloud group there is no security group, so an open CIDR is nothing to warn about."""
        name = front.name
        narrowing: str | None = None
        if self.has_cluster_props(name):
            value = str(self.prop(name, "admin_cidr") or "0.0.0.0/0")
            self.check_cidr(name, value, "admin_cidr")
            if "admin_cidr" in self.inputs.values:
                narrowing = "admin_cidr"
        else:
            chosen = sorted(set(im_cidrs.values()), key=lambda c: (c[0] in ("0.0.0.0/0", "::/0"), c))
            value, narrowing = chosen[0] if chosen else ("0.0.0.0/0", None)
            if len({cidr for cidr, _ in chosen}) > 1:
                self.warn("im:cidrs", f"the template restricts its ports to several CIDRs "
                          f"({', '.join(sorted({c for c, _ in chosen}))}); SSH and the Kubernetes API "
                          f"are allowed from {value} only")
        if value in ("0.0.0.0/0", "::/0") and cloud:
            how = (f"narrow it (e.g. -i {narrowing}=203.0.113.7/32)" if narrowing
                   else "this template cannot narrow it (oscar-deploy's templates have an admin_cidr input)")
            self.warnings.append(f"admin_cidr is {value}: SSH and the Kubernetes API are open to the "
                                 f"whole internet; {how}")
        self.admin_cidr_input = narrowing
        return value

    def outputs(self) -> tuple[OutputSpec, ...]:
        result = []
        outputs = self.loaded.doc["topology_template"]["outputs"]
        for name, raw in outputs.items():
            if not isinstance(raw, dict) or "value" not in raw:
                raise TemplateError("an output needs a 'value'", where=self.origins.of_output(name),
                                    culprit=f"output {name}")
            value = self.ev.eval(raw["value"], f"output {name}")
            text = value if isinstance(value, str) else str(value)
            description = str(raw.get("description") or "")
            result.append(OutputSpec(name=str(name), value=text, description=description,
                                     secret="{secret." in text))
        return tuple(result)

    def check_components(self, components: tuple[ComponentSpec, ...], dns: Any, front: str) -> None:
        """User names, access keys and host names the roles write into manifests, Helm values and
        certificates: a narrow grammar, so none can start a new YAML key or a shell word."""
        for component in components:
            node = component.source_node or front
            for key, value in component.properties.items():
                if value in (None, "") or (isinstance(value, str) and value.startswith("{secret.")):
                    continue
                if key in ("access_key", "username", "admin_username"):
                    self.checked(node, f"property {key}", value, sinks.safe_text)
                elif key in ("dns_host", "console_dns_host"):
                    self.checked(node, f"property {key}", value, sinks.host_address)
        if dns:
            self.checked(front, "dns_name", dns, sinks.host_address)

    def spec(self) -> ClusterSpec:
        groups = self.groups()
        components, elastic, im_dns = self.components()
        front = next(g for g in groups if g.role == "front-end")
        dns = self.prop(front.name, "dns_name") if self.has_cluster_props(front.name) else im_dns
        self.check_components(components, dns, front.source_node or front.name)
        secrets = list(self.inputs.secrets)
        referenced = _SECRET_REF.findall(repr([c.properties for c in components]))
        for secret in (*referenced, *ALWAYS_SECRETS):
            if secret not in {s.name for s in secrets}:
                secrets.append(SecretSpec(secret))
        if elastic is not None and elastic.instance_profile and front.provider != "aws":
            raise self.fail(self.elastic_node or front.name,
                            f"property instance_profile: only an AWS front-end runs with an IAM instance "
                            f"profile; front-end {front.name} is on {front.provider}")
        im_cidrs = {} if self.has_cluster_props(front.name) else self.im_cidrs(front.name)
        admin_cidr = self.admin_cidr(front, im_cidrs, cloud=any(g.provider != "fleet" for g in groups))
        return ClusterSpec(
            sources=self.origins.files, description=self.loaded.description, groups=groups,
            components=components, elastic=elastic, secrets=tuple(secrets), outputs=self.outputs(),
            admin_cidr=admin_cidr, admin_cidr_input=self.admin_cidr_input,
            web_cidrs={port: cidr for port, (cidr, _) in im_cidrs.items()},
            dns_name=str(dns) if dns else None, inputs=dict(self.inputs.values),
            warnings=tuple(self.warnings),
        )


def _shown(value: Any) -> str:
    if isinstance(value, tuple):  # (power type, power_on, power_off)
        kind, on, off = value
        return kind if kind != "command" else f"command {on!r}/{off!r}"
    return repr(value)
