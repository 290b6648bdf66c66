"""The configuration step for real: ansible-runner runs playbooks/site.yml on three board hosts (front-end
board-1, edge boards pi1 as `pi` with sudo and pi2 through the front-end), with an air-gap dir of
stand-in artifacts that record how they were called. What each board ends up with is read back over
SSH; a second run changes nothing; a version change upgrades the server before the agents; a failing
task and an unreachable board are named."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from provisioner.config import ProvisionerSettings, Settings
from provisioner.configure import configure_deployment, kubeconfig_path
from provisioner.errors import RemoteError
from provisioner.state import StateStore
from tests.harness.boards import Board
from tests.test_configure_helpers import (
    CALLS,
    REPO,
    allow_sudo,
    board_template,
    board_vars,
    cli,
    fake_airgap_dir,
    record_board_deployment,
    run_tool,
)
from tests.test_mesh import check_exports, parse_exports

CMDLINE = "console=serial0,115200 root=PARTUUID=6c586e13-02 rootfstype=ext4 fsck.repair=yes rootwait"


@pytest.fixture(scope="module")
def site(board_hosts: list[Board], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("configure")
    allow_sudo(board_hosts)
    board_hosts[1].run(f"mkdir -p /opt/boot/firmware && echo '{CMDLINE}' > /opt/boot/firmware/cmdline.txt")
    template = board_template(board_hosts, tmp / "boards.yaml", users=("root", "pi", "root"))
    state = tmp / "state" / "state.db"
    store = StateStore.open(state)
    dep = record_board_deployment(store, template)
    airgap = fake_airgap_dir(tmp / "airgap")
    yield {"store": store, "dep": dep, "fleet": board_hosts, "airgap": airgap, "tmp": tmp, "state": state,
           "vars": board_vars(airgap)}
    store.close()


def _calls(board: Board) -> list[dict[str, Any]]:
    out = board.run(f"cat {CALLS} 2>/dev/null || true").stdout
    return [json.loads(line) for line in out.splitlines()]


def _config(board: Board) -> tuple[str, dict[str, Any]]:
    mode = board.run("stat -c %a /etc/rancher/k3s/config.yaml").stdout.strip()
    return mode, yaml.safe_load(board.run("cat /etc/rancher/k3s/config.yaml").stdout)


@pytest.mark.timeout(600)  # the whole playbook, every download checked, on three boards of a shared machine
def test_first_run_configures_every_board(site: dict[str, Any]) -> None:
    store, dep, fleet = site["store"], site["dep"], site["fleet"]
    result = configure_deployment(store, dep, progress=False, extra_vars=site["vars"])
    assert result.total_changed > 0 and result.attempts == 1
    front, pi1, pi2 = fleet
    token = store.secret(dep.id, "k3s_token")
    agent = store.secret(dep.id, "k3s_agent_token")  # K10<CA hash>::node:<secret>
    names = {front.address: "front", pi1.address: "pi1", pi2.address: "pi2"}
    for board, name in zip(fleet, ("front", "pi1", "pi2"), strict=True):
        # common: hostname, /etc/hosts naming every node, kernel settings files, the stand-in binary.
        assert board.run("hostname; cat /etc/hostname").stdout.split() == [name, name]
        hosts = board.run("cat /etc/hosts").stdout
        for address, other in names.items():
            assert f"{address} {other}" in hosts
        assert board.run("cat /etc/modules-load.d/k3s.conf").stdout.split() == ["overlay", "br_netfilter"]
        sysctls = board.run("cat /etc/sysctl.d/90-k3s.conf").stdout
        assert "net.ipv4.ip_forward = 1" in sysctls
        # what the kubelet checks under protect-kernel-defaults
        assert "vm.overcommit_memory = 1" in sysctls and "kernel.panic = 10" in sysctls
        # the rule keeping pods from the metadata service, written (not loaded: the host's network)
        assert "ip daddr 169.254.169.254" in board.run("cat /etc/oscar-deploy/imds.nft").stdout
        assert "TEST DOUBLE of the k3s binary" in board.run("cat /usr/local/bin/k3s").stdout
        assert board.run("test -f /var/lib/rancher/k3s/agent/images/k3s-airgap-images-amd64.tar.zst",
                         check=False).returncode == 0
    # k3s server: its config (0600) holds the stored token, labels and the API's names.
    mode, config = _config(front)
    assert mode == "600" and config["token"] == token and config["write-kubeconfig-mode"] == "0600"
    assert config["agent-token"] == agent.rpartition("::node:")[2] and agent.startswith("K10")
    # the deployment's CAs are in place for k3s's first start (keys 0600; root and intermediate keys not)
    ca = json.loads(store.secret(dep.id, "k3s_ca"))
    tls = "/var/lib/rancher/k3s/server/tls"
    assert front.run(f"cat {tls}/server-ca.crt").stdout == ca["server-ca.crt"]
    assert front.run(f"stat -c %a {tls}/etcd/peer-ca.key {tls}/service.key").stdout.split() == ["600", "600"]
    assert front.run(f"ls {tls}/root-ca.key {tls}/intermediate-ca.key", check=False).returncode != 0
    assert config["node-label"] == ["oscar-deploy/group=front", "oscar-deploy/role=front-end",
                                    "oscar-deploy/arch=amd64"]
    assert front.address in config["tls-san"] and "flannel-backend" not in config
    # hardened: kubelet refuses a kernel that differs, Secrets encrypted, PSA and audit files in place
    assert config["protect-kernel-defaults"] is True and config["secrets-encryption"] is True
    server = "/var/lib/rancher/k3s/server"
    modes = front.run(f"stat -c %a {server} {server}/logs {server}/psa.yaml {server}/audit.yaml").stdout
    assert modes.split() == ["700", "700", "600", "600"]
    assert [(c["INSTALL_K3S_EXEC"], c["INSTALL_K3S_VERSION"], c["INSTALL_K3S_SKIP_DOWNLOAD"])
            for c in _calls(front)] == [("server", "v1.36.1+k3s1", "true")]
    # k3s agents: server URL, token, group/arch/template labels and taints; installed as agents.
    for board in (pi1, pi2):
        mode, config = _config(board)
        assert mode == "600"
        assert config["server"] == f"https://{front.address}:6443" and config["token"] == agent
        assert config["node-label"] == ["oscar-deploy/group=pis", "oscar-deploy/role=edge",
                                        "oscar-deploy/arch=arm64", "oscar-deploy/site=edge"]
        assert config["node-taint"] == ["oscar-deploy/edge=true:PreferNoSchedule"]
        assert config["protect-kernel-defaults"] is True
        calls = _calls(board)
        assert [c["INSTALL_K3S_EXEC"] for c in calls] == ["agent"] and not calls[0]["token_in_env"]
    # Raspberry Pi OS: the memory cgroup flags added once to the command line, reboot flagged.
    assert pi1.run("cat /opt/boot/firmware/cmdline.txt").stdout.split() == \
        [*CMDLINE.split(), "cgroup_memory=1", "cgroup_enable=memory"]
    assert pi1.run("test -f /var/run/reboot-required", check=False).returncode == 0
    assert front.run("test -f /var/run/reboot-required", check=False).returncode == 1
    # The kubeconfig came back to the operator, 0600, pointing at the front-end.
    kubeconfig = kubeconfig_path(store, dep)
    assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600
    assert yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"] == \
        f"https://{front.address}:6443"
    # The log has the run and no secret; the extra-vars file went with the run's private dir.
    log = result.log_path.read_text()
    assert "Write the k3s agent's configuration" in log
    assert stat.S_IMODE(result.log_path.stat().st_mode) == 0o600
    for secret in store.secrets(dep.id).values():
        assert secret not in log
    assert not list(store.deployment_dir(dep.id).glob("ansible-*"))
    assert any(e.kind == "configure" and str(result.log_path) in e.message for e in store.events(dep.id))


MANIFESTS = "/var/lib/rancher/k3s/server/manifests"
VERSIONS = yaml.safe_load((REPO / "playbooks/group_vars/all/versions.yml").read_text())
CHARTS = "/var/lib/rancher/k3s/server/static/charts"


def _documents(board: Board, path: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(board.run(f"cat {path}").stdout) if d]


def test_the_front_end_gets_the_services_manifests_and_charts_valid_and_private(site: dict[str, Any]) -> None:
    """What k3s will apply on the front-end: every core resource valid for the k3s version's API
    (kubernetes-validate, strict, offline), files 0600, charts served locally, secrets as generated."""
    import kubernetes_validate

    store, dep, front = site["store"], site["dep"], site["fleet"][0]
    stats = front.run(f"cd {MANIFESTS} && stat -c '%n %a' *").stdout
    listing = dict(line.split() for line in stats.splitlines())
    assert listing == dict.fromkeys([
        "oscar-00-cert-manager.yaml", "oscar-cert-issuer.yaml", "oscar-nfs-csi.yaml",
        "oscar-nfs-storageclass.yaml",
        "oscar-minio-credentials.yaml", "oscar-minio.yaml", "oscar-10-knative-serving-crds.yaml",
        "oscar-11-knative-serving-core.yaml", "oscar-12-knative-kourier.yaml", "oscar-oscar.yaml",
        "oscar-oscar-ingress.yaml", "oscar-traefik-gateway.yaml", "oscar-elastic.yaml",
        # amd64 front-end, arm64 boards: a supervisor build for each in OSCAR's volume
        "oscar-supervisor-arches.yaml"], "600")
    # Knative: upstream's ConfigMaps with OSCAR's settings merged in (the PVC features every OSCAR service
    # pod needs), upstream's example text kept; Kourier's gateway in-cluster (Traefik holds 80/443).
    core = {d["metadata"]["name"]: d
            for d in _documents(front, f"{MANIFESTS}/oscar-11-knative-serving-core.yaml")}
    features = core["config-features"]["data"]
    assert features["kubernetes.podspec-persistent-volume-claim"] == "enabled"
    assert features["kubernetes.podspec-persistent-volume-write"] == "enabled"
    assert "EXAMPLE CONFIGURATION" in features["_example"]
    assert core["config-network"]["data"]["ingress-class"] == "kourier.ingress.networking.knative.dev"
    assert core["config-domain"]["data"][f"{front.address}.sslip.io"] == ""
    kourier = {(d["kind"], d["metadata"]["name"]): d
               for d in _documents(front, f"{MANIFESTS}/oscar-12-knative-kourier.yaml")}
    assert kourier[("Service", "kourier")]["spec"]["type"] == "ClusterIP"
    assert kourier[("Service", "kourier")]["spec"]["ports"][0]["port"] == 80
    gateway = kourier[("Deployment", "3scale-kourier-gateway")]["spec"]["template"]["spec"]
    assert gateway["nodeSelector"] == {"node-role.kubernetes.io/control-plane": "true"}
    charts = front.run(f"ls {CHARTS}").stdout.split()
    assert sorted(charts) == ["csi-driver-nfs-4.13.4.tgz", "minio-5.4.0.tgz", "oscar-4.1.2.tgz"]
    for chart in charts:  # upstream's own archives, as versions.yml pins them
        summed = front.run(f"sha256sum {CHARTS}/{chart}").stdout.split()[0]
        assert summed == VERSIONS["artifact_sha256"][chart]
    assert "helm (test double)" in front.run("helm version").stdout
    k8s = ".".join(VERSIONS["k3s_version"].lstrip("v").split(".")[:2])
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for name in listing:
        if "knative-serving" in name or "kourier" in name or "cert-manager" in name:
            continue  # upstream release manifests (stand-ins here)
        for doc in _documents(front, f"{MANIFESTS}/{name}"):
            by_kind.setdefault(doc["kind"], []).append(doc)
            if not doc["apiVersion"].startswith(("helm.cattle.io/", "cert-manager.io/")):  # CRDs: no schema
                kubernetes_validate.validate(doc, k8s, strict=True)
    secrets = store.secrets(dep.id)
    minio_secret = next(d for d in by_kind["Secret"] if d["metadata"]["name"] == "minio-root")
    assert minio_secret["stringData"] == {"rootUser": "minio", "rootPassword": secrets["minio_password"]}
    charts_by_name = {d["metadata"]["name"]: d["spec"] for d in by_kind["HelmChart"]}
    assert charts_by_name["minio"]["chart"] == "https://%{KUBERNETES_API}%/static/charts/minio-5.4.0.tgz"
    minio = yaml.safe_load(charts_by_name["minio"]["valuesContent"])
    assert (minio["existingSecret"], minio["service"]["nodePort"], minio["consoleService"]["nodePort"]) == \
        ("minio-root", 30300, 30303)
    # No default console/console123 admin; images from quay.io (Docker Hub dropped them); TLS on the
    # NodePort with a certificate for the front-end's address, on the control plane.
    assert minio["users"] == [] and minio["image"]["repository"] == "quay.io/minio/minio"
    assert minio["tls"] == {"enabled": True, "certSecret": "minio-tls", "publicCrt": "tls.crt",
                            "privateKey": "tls.key"}
    minio_cert = next(d for d in by_kind["Certificate"] if d["metadata"]["name"] == "minio-tls")
    assert minio_cert["spec"]["ipAddresses"] == [front.address]
    assert minio["nodeSelector"] == {"node-role.kubernetes.io/control-plane": "true"}
    oscar = yaml.safe_load(charts_by_name["oscar"]["valuesContent"])
    # the chart's secret values come from a Secret its valuesSecrets names, never the HelmChart itself
    assert secrets["oscar_password"] not in charts_by_name["oscar"]["valuesContent"]
    assert secrets["minio_password"] not in charts_by_name["oscar"]["valuesContent"]
    (reference,) = charts_by_name["oscar"]["valuesSecrets"]
    values_secret = next(d for d in by_kind["Secret"] if d["metadata"]["name"] == reference["name"])
    assert values_secret["metadata"]["namespace"] == "kube-system"
    hidden = yaml.safe_load(values_secret["stringData"][reference["keys"][0]])
    assert (hidden["authPass"], oscar["serverlessBackend"], oscar["volume"]["storageClassName"]) == \
        (secrets["oscar_password"], "knative", "nfs")
    assert hidden["minIO"]["secretKey"] == secrets["minio_password"]
    # OSCAR hands its clients MinIO's external HTTPS endpoint; its image pinned to the chart's release.
    assert oscar["minIO"]["endpoint"] == f"https://{front.address}:30300"
    assert oscar["image"]["tag"] == VERSIONS["oscar_image_tag"] and oscar["servicesNamespace"] == "oscar-svc"
    # The chart puts objects in its services namespace and creates none: both exist before it.
    namespaces = [d["metadata"]["name"] for d in _documents(front, f"{MANIFESTS}/oscar-oscar.yaml")
                  if d["kind"] == "Namespace"]
    assert namespaces == ["oscar", "oscar-svc"]
    storage = by_kind["StorageClass"][0]
    # NFS on the cluster's own network (the front-end's flannel address), never its public one
    assert storage["parameters"]["server"] == "10.42.0.0" and storage["provisioner"] == "nfs.csi.k8s.io"
    # No DNS name: a self-signed issuer and a certificate for the front-end's address.
    issuers = {d["metadata"]["name"] for d in by_kind["ClusterIssuer"]}
    assert issuers == {"oscar-selfsigned-root", "oscar-selfsigned"}
    oscar_cert = next(d for d in by_kind["Certificate"] if d["metadata"]["name"] == "oscar-tls")
    assert oscar_cert["spec"]["ipAddresses"] == [front.address]
    # The elastic daemon: least privilege, its groups, the join token in its Secret.
    role = by_kind["ClusterRole"][0]["rules"]
    assert {(tuple(r["resources"]), tuple(r["verbs"])) for r in role} == {
        (("nodes",), ("get", "list", "watch", "patch", "delete")), (("pods",), ("get", "list", "watch")),
        (("pods/eviction",), ("create",)), (("events",), ("create",)),  # what a daemon run calls (3dc2ba7)
        # ProvisioningRequests (Kueue's admission check): read them and their PodTemplates, answer them
        (("podtemplates",), ("get", "list", "watch")), (("provisioningrequests",), ("get", "list", "watch")),
        (("provisioningrequests/status",), ("patch",))}
    groups = yaml.safe_load(next(d for d in by_kind["ConfigMap"])["data"]["groups.yaml"])
    assert [(g["name"], [n["name"] for n in g["nodes"]]) for g in groups] == [("pis", ["pi1", "pi2"])]
    assert groups[0]["taints"] == ["oscar-deploy/edge=true:PreferNoSchedule"]  # as the boards' k3s has them
    assert groups[0]["power"] == {"type": "command", "power_on": "plug on {node}",
                                  "power_off": "plug off {node}"}  # pi2 is behind the front-end: no SSH halt
    daemon_secret = next(d for d in by_kind["Secret"] if d["metadata"]["name"] == "oscar-deploy-elastic")
    assert daemon_secret["stringData"]["K3S_TOKEN"] == secrets["k3s_agent_token"] != secrets["k3s_token"]
    assert by_kind["Service"][0]["spec"]["ports"][0]["port"] == 9153
    exports = front.run("cat /etc/exports.d/oscar.exports").stdout
    check_exports(parse_exports(exports), EXPORT)  # the nodes' flannel addresses, root squashed
    assert site["fleet"][1].address not in exports


EXPORT = "/var/lib/oscar-deploy/data/nfs"


@pytest.mark.timeout(600)
def test_the_export_belongs_to_a_dedicated_owner_root_on_a_node_writes_as(site: dict[str, Any]) -> None:
    """What nfsd does with root_squash,anonuid,anongid, played on the board host the role ran on: a
    node's root (the CSI driver making a volume's directory, kubelet applying MinIO's fsGroup) arrives
    as the export's owner, and so does MinIO (it runs as that owner); anyone else is refused."""
    front = site["fleet"][0]
    owner = front.run(f"stat -c '%u:%g %a %U:%G' {EXPORT}").stdout.split()
    assert owner == ["2049:2049", "770", "oscar-nfs:oscar-nfs"]
    assert front.run("getent passwd oscar-nfs").stdout.split(":")[6].strip() == "/usr/sbin/nologin"
    squashed = "setpriv --reuid 2049 --regid 2049 --clear-groups"
    volume = f"{EXPORT}/pvc-test"
    # the CSI controller's mkdir, kubelet's fsGroup change (chgrp 2049, g+rws), MinIO's first object
    front.run(f"{squashed} mkdir {volume} && {squashed} chgrp 2049 {volume} && {squashed} chmod 2770 {volume}"
              f" && {squashed} sh -c 'echo object > {volume}/xl.meta'")
    assert front.run(f"stat -c '%u:%g %a' {volume}/xl.meta").stdout.split()[0] == "2049:2049"
    # uid 1000 (MinIO chart's default, the board's first user) and the pi user cannot write there
    other = "setpriv --reuid 1000 --regid 1000 --clear-groups"
    refused = front.run(f"{other} touch {EXPORT}/x", check=False)
    assert refused.returncode != 0 and "Permission denied" in refused.stderr
    assert front.run(f"{other} ls {volume}", check=False).returncode != 0
    front.run(f"rm -r {volume}")


@pytest.mark.timeout(600)
def test_second_run_through_reconfigure_changes_nothing(site: dict[str, Any]) -> None:
    """`oscar-deploy reconfigure ID --vars FILE` runs the same step again: nothing left to change."""
    variables = site["tmp"] / "board-vars.yml"
    variables.write_text(yaml.safe_dump(site["vars"]))
    result = run_tool("oscar-deploy", "--state", str(site["state"]), "reconfigure", "edge-test", "--vars",
                      str(variables), cwd=site["tmp"], timeout=420)  # the whole playbook once more
    assert result.returncode == 0, result.stderr
    assert "configuring (Ansible):" in result.stderr
    assert "Write the k3s agent's configuration" in result.stderr
    assert "edge-test" in result.stderr and "0 change(s)" in result.stderr
    assert [len(_calls(b)) for b in site["fleet"]] == [1, 1, 1]
    bad = site["tmp"] / "bad-vars.yml"
    bad.write_text("- a list\n")
    refused = cli(site["state"], "reconfigure", "edge-test", "--vars", str(bad), cwd=site["tmp"])
    assert refused.returncode == 2 and "bad-vars.yml" in refused.stderr


@pytest.mark.timeout(600)  # the whole playbook on a shared machine
def test_a_failing_task_is_named_with_its_host_and_message(site: dict[str, Any]) -> None:
    pi2 = site["fleet"][2]
    pi2.run("mv /etc/rancher /etc/rancher.saved && touch /etc/rancher")
    try:
        with pytest.raises(RemoteError) as caught:
            configure_deployment(site["store"], site["dep"], progress=False, extra_vars=site["vars"])
    finally:
        pi2.run("rm -f /etc/rancher && mv /etc/rancher.saved /etc/rancher")
    message = str(caught.value)
    assert message.startswith("configuration failed: pi2: task 'Make k3s's config directory': ")
    assert "front:" not in message and "pi1:" not in message
    assert any(e.kind == "configure-failed" for e in site["store"].events(site["dep"].id))


def test_an_unreachable_board_is_named_after_its_retries(site: dict[str, Any]) -> None:
    ping = site["tmp"] / "ping.yml"
    ping.write_text("- name: Ping\n  hosts: all\n  gather_facts: false\n  tasks:\n"
                    "    - name: Ping\n      ansible.builtin.ping:\n")
    pi1 = site["fleet"][1]
    settings = Settings(provisioner=ProvisionerSettings(ansible_unreachable_retries=2, retry_base_s=0.01))
    pauses: list[float] = []
    pi1.power_off()
    try:
        with pytest.raises(RemoteError) as caught:
            configure_deployment(site["store"], site["dep"], settings=settings, progress=False,
                                 playbook=str(ping), sleep=pauses.append)
    finally:
        pi1.power_on()
    assert len(pauses) == 2 and pauses[0] < pauses[1]
    message = str(caught.value)
    assert message.startswith(f"pi1 ({pi1.address}) is unreachable") and "after 3 attempts" in message
    assert "front" not in message and "pi2" not in message


@pytest.mark.timeout(600)  # the whole playbook on a shared machine
def test_a_board_back_between_attempts_is_configured_by_the_retry(site: dict[str, Any]) -> None:
    pi1 = site["fleet"][1]
    settings = Settings(provisioner=ProvisionerSettings(ansible_unreachable_retries=1, retry_base_s=0.01))
    pi1.power_off()
    try:
        result = configure_deployment(site["store"], site["dep"], settings=settings, progress=False,
                                      extra_vars=site["vars"], sleep=lambda _s: pi1.power_on())
    finally:
        if not pi1.is_on():
            pi1.power_on()
    # The second attempt ran on the board that was missing only (the others had finished).
    assert result.attempts == 2 and set(result.ok) == {"pi1"}
    assert "attempt 2 on pi1 ===" in result.log_path.read_text()


def test_kubeconfig_command_prints_the_fetched_files_path(site: dict[str, Any]) -> None:
    path = cli(site["state"], "kubeconfig", "edge-test", cwd=site["tmp"])
    assert path.returncode == 0 and Path(path.stdout.strip()) == kubeconfig_path(site["store"], site["dep"])
    missing = cli(site["state"], "kubeconfig", "nope", cwd=site["tmp"])
    assert missing.returncode == 2 and "nope" in missing.stderr  # an unknown ID is bad input


@pytest.mark.timeout(600)  # the whole playbook on a shared machine
def test_a_version_change_upgrades_the_server_before_the_agents(site: dict[str, Any]) -> None:
    """Last in the module: the boards stay on the new version."""
    airgap = fake_airgap_dir(site["tmp"] / "airgap-next", version="v1.37.0+k3s1")
    variables = {**site["vars"], "airgap_dir": str(airgap), "k3s_version": "v1.37.0+k3s1"}
    configure_deployment(site["store"], site["dep"], progress=False, extra_vars=variables)
    front, pi1, pi2 = (_calls(b) for b in site["fleet"])
    assert [c["INSTALL_K3S_VERSION"] for c in front] == ["v1.36.1+k3s1", "v1.37.0+k3s1"]
    assert [c["INSTALL_K3S_VERSION"] for c in pi1] == [c["INSTALL_K3S_VERSION"] for c in pi2] == \
        ["v1.36.1+k3s1", "v1.37.0+k3s1"]
    assert front[-1]["at"] < min(pi1[-1]["at"], pi2[-1]["at"])
    assert "v1.37.0+k3s1" in site["fleet"][1].run("/usr/local/bin/k3s --version").stdout


@pytest.mark.timeout(600)  # the whole playbook on a shared machine
def test_check_mode_on_fresh_boards_reports_changes_and_changes_nothing(board_factory: Any,
                                                                       tmp_path: Path) -> None:
    """A dry run (`reconfigure --check`) on boards never configured: the kernel settings applied for
    real (modules, sysctls) and everything a real k3s needs, in check mode; the boards stay untouched."""
    fleet = board_factory(2, prefix="dry")
    template = board_template(fleet, tmp_path / "boards.yaml", jump_last=False)
    with StateStore.open(tmp_path / "state.db") as store:
        dep = record_board_deployment(store, template, name="dry")
        variables = {**board_vars(fake_airgap_dir(tmp_path / "airgap")),
                     "common_apply_kernel_settings": True, "k3s_wait": True}
        probe = "hostname; ls /etc/rancher /usr/local/bin 2>&1; cat /etc/hosts"
        before = [b.run(probe).stdout for b in fleet]
        result = configure_deployment(store, dep, progress=False, extra_vars=variables, check=True)
        assert result.total_changed > 0 and set(result.changed) == {"front", "pi1"}
        after = [b.run(probe).stdout for b in fleet]
        assert after == before
        assert any("dry run" in e.message for e in store.events(dep.id))
