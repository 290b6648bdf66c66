"""k3s hardened as its CIS hardening guide says (tests/upstream/k3s/hardening-guide-excerpts.md is the
oracle), the OSCAR chart's secrets kept out of its HelmChart, the elastic daemon unable to rewrite its
own groups, and pods kept from the cloud's instance metadata service on every node: the rule as the
roles and cloud-init render it, checked by nft and shown dropping a pod's packets in network
namespaces while the node's own and other traffic pass."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from provisioner.cloudinit import WorkerJoin, agent_config, common_file, common_settings, render_user_data
from tests.test_playbooks import BASE, K8S, PLAYBOOKS, render_templates

GUIDE = Path(__file__).parent / "upstream" / "k3s" / "hardening-guide-excerpts.md"
TEMPLATES = {
    "server-config.yaml": "roles/k3s_server/templates/server-config.yaml.j2",
    "agent-config.yaml": "roles/k3s_agent/templates/agent-config.yaml.j2",
    "psa.yaml": "roles/k3s_server/templates/psa.yaml.j2",
    "audit.yaml": "roles/k3s_server/templates/audit.yaml.j2",
    "sysctl.conf": "roles/common/templates/sysctl.conf.j2",
    "imds.nft": "roles/common/templates/imds.nft.j2",
    "imds.service": "roles/common/templates/imds.service.j2",
    "oscar.yaml": "roles/oscar/templates/oscar-oscar.yaml.j2",
    "elastic.yaml": "roles/elastic/templates/oscar-elastic.yaml.j2",
}


def guide_block(heading: str) -> str:
    """The fenced block under ``## heading`` in the guide's excerpts."""
    text = GUIDE.read_text()
    found = re.search(rf"^## {re.escape(heading)}\n\n```\w*\n(.*?)^```", text, re.S | re.M)
    assert found, heading
    return found.group(1)


def render(tmp: Path, variables: dict[str, Any]) -> dict[str, str]:
    """The templates above as Ansible's template module renders them, with every role's defaults."""
    return render_templates(tmp, TEMPLATES, variables)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return render(tmp_path_factory.mktemp("hardening"), dict(BASE))


def _docs(text: str) -> dict[str, dict[str, Any]]:
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in yaml.safe_load_all(text) if d}


# ---- the k3s server and agents -------------------------------------------------------------------------

def test_the_server_takes_the_guides_settings_where_it_puts_its_files(rendered: dict[str, str]) -> None:
    guide = yaml.safe_load(guide_block("Configuration for Kubernetes Components (v1.29 and Newer)"))
    ours = yaml.safe_load(rendered["server-config.yaml"])
    assert ours["protect-kernel-defaults"] is True and ours["secrets-encryption"] is True
    assert sorted(ours["kube-apiserver-arg"]) == sorted(guide["kube-apiserver-arg"])
    assert ours["kubelet-arg"] == guide["kubelet-arg"]
    # left out on purpose: the elastic daemon learns run times from the finished pods it lists
    assert guide["kube-controller-manager-arg"] == ["terminated-pod-gc-threshold=100"]
    assert "kube-controller-manager-arg" not in ours
    # the files the flags name are the ones the role writes (k3s_server's defaults)
    defaults = yaml.safe_load((PLAYBOOKS / "roles/k3s_server/defaults/main.yml").read_text())
    flags = dict(a.split("=", 1) for a in ours["kube-apiserver-arg"])
    assert flags["admission-control-config-file"] == defaults["k3s_server_admission_config"]
    assert flags["audit-policy-file"] == defaults["k3s_server_audit_policy"]
    assert flags["audit-log-path"] == defaults["k3s_server_audit_log"]
    assert "EventRateLimit" in flags["enable-admission-plugins"].split(",")


def test_boards_and_cloud_workers_protect_kernel_defaults_with_the_guides_kubelet_args(
        rendered: dict[str, str]) -> None:
    guide = yaml.safe_load(guide_block("Configuration for Kubernetes Components (v1.29 and Newer)"))
    board = yaml.safe_load(rendered["agent-config.yaml"])
    cloud = agent_config(WorkerJoin("https://10.0.0.5:6443", "K10x::node:y", "wn"))
    for config in (board, cloud):
        assert config["protect-kernel-defaults"] is True
        assert config["kubelet-arg"] == guide["kubelet-arg"]


def _sysctls(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


KUBELET = {"vm.overcommit_memory": "1", "vm.panic_on_oom": "0", "kernel.panic": "10",
           "kernel.panic_on_oops": "1", "kernel.keys.root_maxkeys": "1000000",
           "kernel.keys.root_maxbytes": "25000000"}
"""What the kubelet checks under protect-kernel-defaults (setupKernelTunables in
pkg/kubelet/cm/container_manager_linux.go; the values in k8s.io/component-helpers/node/util/sysctl)."""


def test_every_node_gets_the_kernel_settings_before_k3s_starts(rendered: dict[str, str]) -> None:
    guide = _sysctls(guide_block("Set kernel parameters"))
    assert guide.items() <= KUBELET.items()
    board = _sysctls(rendered["sysctl.conf"])
    assert KUBELET.items() <= board.items()
    assert set(common_settings()["common_kubelet_sysctls"]) == set(KUBELET)
    # a cloud worker: the same file, loaded before k3s's install script runs
    doc = yaml.safe_load(render_user_data(WorkerJoin("https://10.0.0.5:6443", "K10x::node:y", "wn")))
    files = {f["path"]: f["content"] for f in doc["write_files"]}
    assert _sysctls(files["/etc/sysctl.d/90-k3s.conf"]) == board
    commands = [" ".join(c) for c in doc["runcmd"]]
    install = next(i for i, c in enumerate(commands) if "k3s-install.sh" in c)
    assert commands.index("sysctl --system") < install
    # a board: the common play (sysctls applied by its handler, flushed, then checked live) runs
    # before the plays that start k3s
    site = yaml.safe_load((PLAYBOOKS / "site.yml").read_text())
    assert [r["role"] for r in site[0]["roles"]] == ["common"]
    assert {"k3s_server", "k3s_agent"} == {r["role"] for play in site[1:3] for r in play["roles"]}
    tasks = yaml.safe_load((PLAYBOOKS / "roles/common/tasks/main.yml").read_text())
    names = [t["name"] for t in tasks]
    written = names.index("Set the sysctls k3s needs at boot")
    flushed = next(i for i, t in enumerate(tasks) if t.get("ansible.builtin.meta") == "flush_handlers")
    checked = next(i for i, t in enumerate(tasks) if "ansible.builtin.assert" in t)
    assert written < flushed < checked


def test_pod_security_admission_enforces_baseline_and_the_guides_audit_policy(
        rendered: dict[str, str]) -> None:
    guide = yaml.safe_load(guide_block("Pod Security (v1.25 and Newer)"))
    ours = yaml.safe_load(rendered["psa.yaml"])
    assert (ours["apiVersion"], ours["kind"]) == (guide["apiVersion"], guide["kind"])
    plugins = {p["name"]: p["configuration"] for p in ours["plugins"]}
    (theirs,) = (p["configuration"] for p in guide["plugins"] if p["name"] == "PodSecurity")
    psa = plugins["PodSecurity"]
    assert psa["kind"] == theirs["kind"]
    assert psa["apiVersion"].startswith("pod-security.admission.config.k8s.io/")
    assert set(psa["defaults"]) == set(theirs["defaults"])
    # baseline enforced (the guide's example enforces restricted); audit and warn as the guide's
    assert psa["defaults"]["enforce"] == "baseline"
    assert {k: v for k, v in psa["defaults"].items() if k != "enforce"} == \
        {k: v for k, v in theirs["defaults"].items() if k != "enforce"}
    assert psa["exemptions"]["namespaces"] == ["kube-system"]
    assert {"usernames": [], "runtimeClasses": []}.items() <= psa["exemptions"].items()
    # EventRateLimit, which the guide's enable-admission-plugins turns on, has its limits here
    limits = plugins["EventRateLimit"]
    assert limits["apiVersion"] == "eventratelimit.admission.k8s.io/v1alpha1" and limits["limits"]
    audit = guide_block("API Server audit configuration")
    assert yaml.safe_load(rendered["audit.yaml"]) == yaml.safe_load(audit)


def test_the_services_namespace_enforces_baseline_unless_mounts_need_privileged(
        rendered: dict[str, str], tmp_path: Path) -> None:
    labels = _docs(rendered["oscar.yaml"])["Namespace/oscar-svc"]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    # the release's own namespace takes the cluster's default (baseline)
    assert "labels" not in _docs(rendered["oscar.yaml"])["Namespace/oscar"]["metadata"]
    privileged = render(tmp_path, {**BASE, "oscar_services_pod_security": "privileged"})
    labels = _docs(privileged["oscar.yaml"])["Namespace/oscar-svc"]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
    for doc in _docs(privileged["oscar.yaml"]).values():
        if doc["kind"] in ("Namespace", "Secret"):
            kubernetes_validate.validate(doc, K8S, strict=True)


# ---- secrets -------------------------------------------------------------------------------------------

def _merged(base: Any, over: Any) -> Any:
    """Helm's merge of values files (later files win, maps merge key by key)."""
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{k: _merged(base.get(k), v) for k, v in over.items()}}
    return over


def test_oscars_password_and_minio_keys_reach_the_chart_from_a_secret(rendered: dict[str, str]) -> None:
    docs = _docs(rendered["oscar.yaml"])
    chart = docs["HelmChart/oscar"]
    for secret in (BASE["oscar_password"], BASE["minio_secret_key"]):
        assert secret not in yaml.safe_dump(chart)
    (reference,) = chart["spec"]["valuesSecrets"]
    # helm-controller (pkg/controllers/chart/chart.go) reads it from the HelmChart's namespace and
    # skips the name it keeps for itself
    assert reference["name"] != f"chart-values-{chart['metadata']['name']}" and reference["keys"]
    secret = docs[f"Secret/{reference['name']}"]
    assert secret["metadata"]["namespace"] == chart["metadata"]["namespace"] == "kube-system"
    kubernetes_validate.validate(secret, K8S, strict=True)
    values = yaml.safe_load(chart["spec"]["valuesContent"])
    for key in reference["keys"]:
        values = _merged(values, yaml.safe_load(secret["stringData"][key]))
    assert values["authPass"] == BASE["oscar_password"] and values["authUser"] == BASE["oscar_username"]
    assert values["minIO"]["secretKey"] == BASE["minio_secret_key"]
    assert values["minIO"]["accessKey"] == BASE["minio_access_key"] and values["minIO"]["endpoint"]


def test_the_daemon_may_not_rewrite_its_own_groups(rendered: dict[str, str]) -> None:
    """RBAC as kube-apiserver evaluates a rule (a rule with resourceNames matches only requests that
    name one of them; a create names none), over the Role and ClusterRole bound to the daemon."""
    from tests.test_daemon_followups import _allows

    docs = _docs(rendered["elastic.yaml"])
    role = docs["Role/oscar-deploy-elastic"]["rules"] + docs["ClusterRole/oscar-deploy-elastic"]["rules"]
    groups = docs["ConfigMap/oscar-deploy-elastic-groups"]["metadata"]["name"]
    for verb in ("update", "patch", "delete"):
        assert not _allows(role, ("", "configmaps", verb, groups)), verb
    # what it writes still is allowed: its status, the operator's requests, its Lease
    assert _allows(role, ("", "configmaps", "update", "oscar-deploy-elastic-status"))
    assert _allows(role, ("", "configmaps", "patch", "oscar-deploy-elastic-requests"))
    assert _allows(role, ("coordination.k8s.io", "leases", "update", "oscar-deploy-elastic"))
    assert not _allows(role, ("coordination.k8s.io", "leases", "update", "another"))
    # the check can fail: the rule as it was
    assert _allows([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["update"],
                     "resourceNames": [groups]}], ("", "configmaps", "update", groups))


# ---- the instance metadata service ---------------------------------------------------------------------

def test_boards_and_cloud_workers_get_the_same_metadata_rule_and_unit(rendered: dict[str, str]) -> None:
    common = common_settings()
    doc = yaml.safe_load(render_user_data(WorkerJoin("https://10.0.0.5:6443", "K10x::node:y", "wn")))
    files = {f["path"]: f["content"] for f in doc["write_files"]}
    assert files[common["common_imds_rules"]] == rendered["imds.nft"] == common_file("imds.nft.j2", common)
    assert files[f"/etc/systemd/system/{common['common_imds_unit']}"] == rendered["imds.service"]
    assert f"ip saddr {common['common_pod_cidr']} ip daddr 169.254.169.254" in rendered["imds.nft"]
    unit = rendered["imds.service"]
    assert f"ExecStart=/usr/sbin/nft -f {common['common_imds_rules']}" in unit
    assert re.search(r"^Before=.*\bk3s\.service\b.*\bk3s-agent\.service\b", unit, re.M)
    # on a cloud worker, loaded (and enabled for every boot) before k3s's install script starts k3s
    commands = [" ".join(c) for c in doc["runcmd"]]
    install = next(i for i, c in enumerate(commands) if "k3s-install.sh" in c)
    assert commands.index(f"systemctl enable --now {common['common_imds_unit']}") < install
    assert "nftables" in doc["packages"]


NFT = shutil.which("nft") or "/usr/sbin/nft"
needs_root_nft = pytest.mark.skipif(
    os.geteuid() != 0 or not Path(NFT).exists() or not shutil.which("ip"),
    reason="needs root, nft (Debian: nftables) and ip (iproute2) for network namespaces")


@needs_root_nft
def test_nft_accepts_the_rule_and_rejects_a_broken_one(rendered: dict[str, str], tmp_path: Path) -> None:
    good, bad = tmp_path / "imds.nft", tmp_path / "broken.nft"
    good.write_text(rendered["imds.nft"])
    bad.write_text(rendered["imds.nft"].replace("ip daddr", "ip dadr", 1))
    ok = subprocess.run([NFT, "-c", "-f", str(good)], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert subprocess.run([NFT, "-c", "-f", str(bad)], capture_output=True, check=False).returncode != 0


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def _in(netns: str, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", netns, *command], capture_output=True, text=True,
                          check=check, timeout=30)


@contextlib.contextmanager
def _network(tag: str) -> Iterator[dict[str, str]]:
    """A pod, its node and the cloud, each a network namespace: pod 10.42.0.5 routes through the node
    (10.42.0.1, forwarding), which reaches the cloud's 169.254.169.254 (the metadata service) and
    198.51.100.1 (anything else) on another link."""
    names = {"pod": f"hp{tag}", "node": f"hn{tag}", "cloud": f"hc{tag}"}
    try:
        for name in names.values():
            _ip("netns", "add", name)
        _ip("link", "add", f"p{tag}", "netns", names["pod"], "type", "veth", "peer", "name", f"n{tag}",
            "netns", names["node"])
        _ip("link", "add", f"u{tag}", "netns", names["node"], "type", "veth", "peer", "name", f"c{tag}",
            "netns", names["cloud"])
        steps = [
            (names["pod"], ["ip", "addr", "add", "10.42.0.5/24", "dev", f"p{tag}"]),
            (names["node"], ["ip", "addr", "add", "10.42.0.1/24", "dev", f"n{tag}"]),
            (names["node"], ["ip", "addr", "add", "169.254.0.1/16", "dev", f"u{tag}"]),
            (names["node"], ["ip", "addr", "add", "198.51.100.2/24", "dev", f"u{tag}"]),
            (names["cloud"], ["ip", "addr", "add", "169.254.169.254/16", "dev", f"c{tag}"]),
            (names["cloud"], ["ip", "addr", "add", "198.51.100.1/24", "dev", f"c{tag}"]),
        ]
        for netns, command in steps:
            _in(netns, *command)
        for netns, links in ((names["pod"], [f"p{tag}", "lo"]), (names["node"], [f"n{tag}", f"u{tag}", "lo"]),
                             (names["cloud"], [f"c{tag}", "lo"])):
            for link in links:
                _in(netns, "ip", "link", "set", link, "up")
        _in(names["pod"], "ip", "route", "add", "default", "via", "10.42.0.1")
        _in(names["cloud"], "ip", "route", "add", "10.42.0.0/16", "via", "198.51.100.2")
        _in(names["node"], "sysctl", "-qw", "net.ipv4.ip_forward=1")
        yield names
    finally:
        for name in names.values():
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], 8080), timeout=2).recv(16)
    print("connected")
except OSError as error:
    print(type(error).__name__)
"""
LISTEN = """
import socket
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", 8080))
server.listen(8)
print("ready", flush=True)
while True:
    connection, _ = server.accept()
    connection.sendall(b"hello")
    connection.close()
"""


@needs_root_nft
def test_the_rule_drops_a_pods_packets_to_the_metadata_service_and_nothing_else(
        rendered: dict[str, str], tmp_path: Path) -> None:
    rules = tmp_path / "imds.nft"
    rules.write_text(rendered["imds.nft"])
    tag = uuid.uuid4().hex[:6]
    with _network(tag) as names:
        listener = subprocess.Popen(["ip", "netns", "exec", names["cloud"], sys.executable, "-c", LISTEN],
                                    stdout=subprocess.PIPE, text=True)
        try:
            assert listener.stdout is not None and listener.stdout.readline().strip() == "ready"

            def connect(netns: str, address: str) -> str:
                return _in(netns, sys.executable, "-c", CONNECT, address).stdout.strip()

            # without the rule a pod reaches the metadata service: the check can fail
            assert connect(names["pod"], "169.254.169.254") == "connected"
            _in(names["node"], NFT, "-f", str(rules))
            assert connect(names["pod"], "169.254.169.254") in ("TimeoutError", "timeout")
            assert connect(names["pod"], "198.51.100.1") == "connected"  # other traffic passes
            assert connect(names["node"], "169.254.169.254") == "connected"  # the node itself still does
            counters = _in(names["node"], NFT, "list", "table", "inet", "oscar_deploy_imds").stdout
            assert re.search(r"counter packets [1-9]", counters), counters
            # loading it again replaces the table (the unit's reload, a re-run): still one rule per hook
            _in(names["node"], NFT, "-f", str(rules))
            listed = _in(names["node"], NFT, "list", "table", "inet", "oscar_deploy_imds").stdout
            assert listed.count("drop") == 2
        finally:
            listener.kill()
            listener.wait()


def test_the_rules_source_range_is_the_clusters_pod_network(rendered: dict[str, str]) -> None:
    """The rule names k3s's default cluster-cidr, which the server keeps (it is given no other)."""
    import ipaddress

    cidr = ipaddress.ip_network(common_settings()["common_pod_cidr"])
    server = yaml.safe_load(rendered["server-config.yaml"])
    assert cidr == ipaddress.ip_network(server.get("cluster-cidr", "10.42.0.0/16"))
    assert ipaddress.ip_address("10.42.0.5") in cidr  # the pod of the namespaces test
