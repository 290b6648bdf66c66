"""The daemon's container image, run as its Deployment says, against the Kubernetes API over TLS.

The image is built from the repository's Containerfile by ``scripts/build-image.sh`` (buildah on a
local Debian 12 base), and run with ``buildah run --isolation chroot`` (``podman run`` cannot start
containers on these machines). The elastic role's manifests are rendered as the role renders them;
the run is derived from the Deployment: the image's entrypoint with the container's args, its env,
its user, each volume's ConfigMap or Secret data as files at its mount path (owned and moded as the
kubelet writes them with the pod's ``fsGroup``), an empty ``/tmp``. The code runs from the image's
site-packages: no checkout is mounted. ``SUBSTITUTIONS`` lists everything that differs from what a
kubelet would run, and the test checks nothing else does.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.kube.tls import ServingCert
from tests.harness.power_switch import Switch
from tests.test_playbooks import BASE, _render

REPO = Path(__file__).resolve().parents[1]
IMAGE = "localhost/oscar-deploy:test"
SWITCH = "/usr/local/sbin/poe-switch"
"""The board group's power command, as an operator's template names it (a PoE switch's CLI)."""
SA_DIR = "/etc/kubernetes-test/serviceaccount"
"""Where the test mounts the service account's token and CA: a ``-v`` mount under ``/var/run``
(Kubernetes' ``/var/run/secrets/kubernetes.io/serviceaccount``) does not show inside
``buildah run``, so the daemon is told this path through its ``[elastic] service_account_dir``."""
SUBSTITUTIONS = {
    "env KUBERNETES_SERVICE_HOST/PORT": "the API address: the kubelet injects the Service's; here the test "
                                        "server's 127.0.0.1:PORT",
    "env OSCAR_DEPLOY_ELASTIC_SERVICE_ACCOUNT_DIR": f"the service account at {SA_DIR} (see SA_DIR)",
    "env OSCAR_DEPLOY_ELASTIC_IDLE_TIME_S, _COOLDOWN_S, _TICK_S": "seconds instead of minutes",
    "arg --metrics-port": "a free port (the container shares this machine's network)",
    f"mount {SWITCH}": "the power-command path: a script standing in for the PoE switch",
    "Secret key AWS_ENDPOINT_URL": "the EC2 endpoint: the emulator's http://127.0.0.1:PORT, given as the "
                                   "role's elastic_cloud_env gives the keys (the hybrid test); with an "
                                   "instance profile, where the Secret has no AWS_* key, added to it",
    "env AWS_EC2_METADATA_SERVICE_ENDPOINT": "the instance metadata service: a stand-in serving the "
                                             "profile's role (tests/harness/imds.py) on "
                                             "http://127.0.0.1:PORT, not the node's 169.254.169.254 "
                                             "(the hybrid test with an instance profile)",
    "ConfigMap groups.yaml power.shutdown wait_s/settle_s": "1 s and 0 s instead of 60 s and 5 s: no "
                                                           "board answers SSH at its TEST-NET address "
                                                           "(the hybrid test)",
}
FAST = {"OSCAR_DEPLOY_ELASTIC_IDLE_TIME_S": "2", "OSCAR_DEPLOY_ELASTIC_COOLDOWN_S": "1",
        "OSCAR_DEPLOY_ELASTIC_TICK_S": "0.5"}
BOARD_GROUP = {
    "name": "pis", "cpus": 4, "memory_mib": 8192, "min": 0, "max": 1, "priority": 0, "cost_per_hour": 0.0,
    "labels": {"oscar-deploy/group": "pis"}, "nodes": [{"name": "pi1", "address": "127.0.0.1"}],
    "power": {"type": "command", "power_on": f"{SWITCH} on {{node}}", "power_off": f"{SWITCH} off {{node}}"},
}
SECRETS = {"k3s_token": "k3s-token-" + "x" * 40, "elastic_cloud_env": {
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEEXAMPLE00", "AWS_SECRET_ACCESS_KEY": "cloud-secret-" + "y" * 27}}
SWITCH_SCRIPT = """#!/bin/sh
# TEST DOUBLE (tests/test_image.py): a PoE switch's CLI. It records the request and the environment the
# daemon gave it in the pod's /tmp; the test plays the board (its node registers, or its kubelet stops).
env > "/tmp/switch-env-$1-$2"
echo "$1 $2 $(id -u)" >> /tmp/switch.log
"""


def _unavailable() -> str | None:
    if os.geteuid() != 0:
        return "buildah --isolation chroot and debootstrap need root (CI runs as root)"
    missing = [t for t in ("buildah", "debootstrap") if shutil.which(t) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (scripts/test.sh installs them as root)"
    return None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(_unavailable() is not None, reason=_unavailable() or ""),
              # the first test's setup builds the image: a cold base (debootstrap) and a loaded machine
              pytest.mark.timeout(1200)]


def buildah(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    driver = ["--storage-driver", "vfs"] if _overlay_root() else []
    # stdin: its own /dev/null, since buildah makes its stdin non-blocking (Ansible then refuses to run)
    return subprocess.run(["buildah", *driver, *args], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, check=check, timeout=300)


def _overlay_root() -> bool:
    """In an overlay root (fresh.sh), buildah's overlay driver cannot stack: the build script uses vfs."""
    result = subprocess.run(["stat", "-f", "-c", "%T", "/"], capture_output=True, text=True, check=True)
    return result.stdout.strip() == "overlayfs"


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the build also writes the image as a docker-archive (for k3s on sites without a registry)."""
    return tmp_path_factory.mktemp("archive") / "oscar-deploy.tar"


@pytest.fixture(scope="module")
def image(archive: Path) -> dict[str, Any]:
    """Build the image (the base is made once and cached under .cache/image); its config."""
    build = subprocess.run(["bash", "scripts/build-image.sh", IMAGE], cwd=REPO, stdin=subprocess.DEVNULL,
                           env={**os.environ, "IMAGE_ARCHIVE": str(archive)}, capture_output=True, text=True,
                           timeout=1200)
    assert build.returncode == 0, build.stderr[-3000:]
    print("build:", build.stdout.strip().splitlines()[-1])
    return json.loads(buildah("inspect", "--type", "image", IMAGE).stdout)["OCIv1"]["config"]


@pytest.fixture(scope="module")
def manifests(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The elastic role's manifests for a deployment with a board group, by kind/name."""
    docs = _render(tmp_path_factory.mktemp("render"), {**BASE, **SECRETS, "oscar_dns_name": "",
                                                        "elastic_groups": [BOARD_GROUP]})["elastic.yaml"]
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in docs}


@pytest.fixture
def container(image: dict[str, Any]) -> Iterator[str]:
    name = buildah("from", "--pull-never", IMAGE).stdout.strip()
    yield name
    buildah("rm", name, check=False)


def _files(directory: Path, data: dict[str, str], mode: int, group: int) -> Path:
    """A volume as the kubelet writes it: one file per key, root-owned, group ``fsGroup``."""
    directory.mkdir(parents=True)
    for key, value in data.items():
        path = directory / key
        path.write_text(value)
        os.chown(path, 0, group)
        path.chmod(mode)
    os.chown(directory, 0, group)
    directory.chmod(0o755)
    return directory


POD_IP = "127.0.0.1"
"""The pod's address (``status.podIP``, where its metrics listen) is the loopback here: buildah runs
the container in the host's network."""


def pod_run(manifests: dict[str, dict[str, Any]], image: dict[str, Any], work: Path,
            substituted_env: dict[str, str], metrics_port: int, extra_mounts: dict[str, Path]
            ) -> tuple[list[str], list[str], dict[str, str], dict[str, Path]]:
    """The ``buildah run`` options and command the Deployment stands for: (options, command, env,
    mounts), with ``substituted_env``, the metrics port and ``extra_mounts`` as the only changes."""
    deployment = manifests["Deployment/oscar-deploy-elastic"]
    pod = deployment["spec"]["template"]["spec"]
    (spec,) = pod["containers"]
    security = pod["securityContext"]
    fs_group = security["fsGroup"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts: dict[str, Path] = {}
    options = ["--isolation", "chroot", "--user", f"{security['runAsUser']}:{security['runAsGroup']}"]
    for mount in spec["volumeMounts"]:
        volume = volumes[mount["name"]]
        source = work / mount["name"]
        if "configMap" in volume:
            data = manifests[f"ConfigMap/{volume['configMap']['name']}"]["data"]
            _files(source, data, volume["configMap"].get("defaultMode", 0o644), fs_group)
        elif "secret" in volume:
            data = manifests[f"Secret/{volume['secret']['secretName']}"]["stringData"]
            _files(source, data, volume["secret"].get("defaultMode", 0o644), fs_group)
        else:
            assert "emptyDir" in volume, volume
            source.mkdir()
            source.chmod(0o777)  # emptyDir: world-writable, as the kubelet makes it
        mounts[mount["mountPath"]] = source
        options += ["-v", f"{source}:{mount['mountPath']}{':ro' if mount.get('readOnly') else ''}"]
    for target, source in extra_mounts.items():
        mounts[target] = source
        options += ["-v", f"{source}:{target}:ro"]
    env = {e["name"]: e.get("value", POD_IP) for e in spec.get("env") or []}
    env.update(substituted_env)
    for key, value in env.items():
        options += ["--env", f"{key}={value}"]
    args = list(spec["args"])
    args[args.index("--metrics-port") + 1] = str(metrics_port)
    command = list(spec.get("command") or image["Entrypoint"]) + args
    return options, command, env, mounts


def _switch_script(tmp_path: Path) -> Path:
    """The power-command path's stand-in for the PoE switch (mounted where the ConfigMap names it)."""
    script = tmp_path / "switch" / "poe-switch"
    script.parent.mkdir()
    script.write_text(SWITCH_SCRIPT)
    script.chmod(0o755)
    return script


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tree(root: Path, skip: set[str]) -> dict[str, tuple[Any, ...]]:
    """Every path of a root file system outside ``skip`` (the mount points) with its type, mode,
    owner, and for files their size and mtime, for links their target. Directories' mtimes are left
    out: an entry added or removed shows itself, and buildah touches ``/run`` on every run."""
    out: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = "/" + os.path.relpath(dirpath, root).lstrip(".")
        dirnames[:] = [d for d in dirnames if os.path.join(rel_dir, d) not in skip]
        for name in dirnames + filenames:
            rel = os.path.join(rel_dir, name)
            if rel in skip:
                continue
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            detail: Any = (os.readlink(path) if stat.S_ISLNK(info.st_mode) else
                           None if stat.S_ISDIR(info.st_mode) else (info.st_size, info.st_mtime_ns))
            kind, mode = stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode)
            out[rel] = (kind, mode, info.st_uid, info.st_gid, detail)
    return out


def _descendants(root: int, program: str) -> list[int]:
    """The processes under ``root`` (this test's ``buildah run``) running ``program daemon``, the
    deepest last."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier}
        for pid in frontier:
            try:
                argv = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if len(argv) > 2 and argv[1].endswith(b"/bin/" + program.encode()) and argv[2] == b"daemon":
                found.append(pid)  # python3 /opt/oscar-deploy/bin/oscar-deploy daemon ...
    return found


@contextlib.contextmanager
def running(options: list[str], container: str, command: list[str], log_path: Path) -> Iterator[list[str]]:
    """Run the pod's container until the block ends, then stop it as the kubelet does (SIGTERM to
    the container's process); yields the output lines, complete once the block has ended."""
    output: list[str] = []
    with log_path.open("w") as log:
        proc = subprocess.Popen(["buildah", *(["--storage-driver", "vfs"] if _overlay_root() else []), "run",
                                 *options, container, "--", *command], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield output
        finally:
            if proc.poll() is None:
                # the deepest: buildah's chroot runtime sits between; then a grace period
                os.kill(_descendants(proc.pid, "oscar-deploy")[-1], signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
    output += log_path.read_text().splitlines()
    assert proc.returncode == 0, "\n".join(output[-40:])
    assert output[-1] == "elastic daemon stopped", output[-5:]


def _ready(kube: Any, name: str) -> bool:
    for node in kube.nodes():
        if node["metadata"]["name"] == name:
            conditions = (node.get("status") or {}).get("conditions") or []
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
    return False


def test_the_image_is_non_root_without_compilers_and_runs_the_installed_package(
        image: dict[str, Any], container: str) -> None:
    assert image["User"] == "10001:10001" and image["Entrypoint"] == ["oscar-deploy"]
    probe = ("import elastic, provisioner, shutil, sys; "
             "print(elastic.__file__); print(provisioner.__file__); "
             "print([t for t in ('cc', 'gcc', 'g++', 'clang', 'make', 'pip') if shutil.which(t)]); "
             "print(shutil.which('ssh'), shutil.which('ssh-keygen')); print(sys.version_info >= (3, 11))")
    out = buildah("run", "--isolation", "chroot", container, "--", "python3", "-c", probe).stdout.splitlines()
    assert out[0].startswith("/opt/oscar-deploy/lib/python3") and "/site-packages/elastic/" in out[0]
    assert "/site-packages/provisioner/" in out[1]
    assert out[2] == "[]", "compilers, make or pip in the image"
    assert out[3] == "/usr/bin/ssh /usr/bin/ssh-keygen" and out[4] == "True"
    extras = buildah("run", "--isolation", "chroot", container, "--", "python3", "-c",
                     "import importlib.util as u; print([m for m in ('pytest', 'moto', 'hypothesis', "
                     "'ansible_lint') if u.find_spec(m)])").stdout.strip()
    assert extras == "[]", "the test extra is installed in the image"


def test_the_image_archive_is_one_k3s_can_import_under_the_images_tag(image: dict[str, Any],
                                                                      archive: Path) -> None:
    """k3s imports docker-archives from /var/lib/rancher/k3s/agent/images by their RepoTags."""
    import tarfile

    with tarfile.open(archive) as tar:
        (manifest,) = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        names = set(tar.getnames())
        config = json.load(tar.extractfile(manifest["Config"]))  # type: ignore[arg-type]
    assert manifest["RepoTags"] == [IMAGE] and set(manifest["Layers"]) <= names
    assert config["config"]["User"] == image["User"] and config["config"]["Entrypoint"] == image["Entrypoint"]
    assert config["architecture"] == "amd64" and config["os"] == "linux"


def test_the_daemon_runs_as_its_deployment_says_and_scales_a_board(
        image: dict[str, Any], manifests: dict[str, dict[str, Any]], container: str,
        kube_api_factory: Any, tmp_path: Path) -> None:
    serving = ServingCert.create(tmp_path / "pki")
    kube = kube_api_factory(serving=serving)
    kube.create_namespace("oscar-deploy")  # the manifests' Namespace, as applying them would
    deployment = manifests["Deployment/oscar-deploy-elastic"]
    service_account = _files(tmp_path / "serviceaccount", {
        "token": serving.token, "ca.crt": serving.ca_file.read_text(), "namespace": "oscar-deploy"},
        0o440, deployment["spec"]["template"]["spec"]["securityContext"]["fsGroup"])
    substituted = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(kube.port),
                   "OSCAR_DEPLOY_ELASTIC_SERVICE_ACCOUNT_DIR": SA_DIR, **FAST}
    metrics_port = _free_port()
    options, command, env, mounts = pod_run(manifests, image, tmp_path / "volumes", substituted, metrics_port,
                                            {SA_DIR: service_account, SWITCH: _switch_script(tmp_path)})

    # nothing differs from the Deployment but the listed substitutions
    spec = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "envFrom" not in spec and "command" not in spec
    # with the template's elasticity settings; the pod's address as the kubelet fills it in
    declared = {e["name"]: e.get("value", POD_IP) for e in spec["env"]}
    assert set(declared) <= set(env)
    assert {k: v for k, v in env.items() if k not in substituted} == {
        k: v for k, v in declared.items() if k not in substituted}
    assert set(substituted) == {"KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT",
                                "OSCAR_DEPLOY_ELASTIC_SERVICE_ACCOUNT_DIR", *FAST}
    assert command[:1] == image["Entrypoint"]
    assert [a for a, b in zip(command[1:], spec["args"], strict=True) if a != b] == [str(metrics_port)]
    assert set(mounts) == {m["mountPath"] for m in spec["volumeMounts"]} | {SA_DIR, SWITCH}
    assert not any(REPO in [Path(s), *Path(s).parents] for s in mounts.values()), "a checkout is mounted"
    assert spec["securityContext"]["readOnlyRootFilesystem"] is True

    rootfs = Path(buildah("mount", container).stdout.strip())
    buildah("run", *options, container, "--", "true")  # buildah makes the mount points: then compare
    before = _tree(rootfs, set(mounts))
    labels = BOARD_GROUP["labels"]
    switch = Switch(kube, mounts["/tmp"] / "switch.log", labels)
    try:
        with running(options, container, command, tmp_path / "daemon.log") as output:
            kube.create_pods(2, prefix="job", cpus=1, runtime_s=150)
            kube.wait_until(lambda: _ready(kube, "pi1"), timeout=60, what="pi1 powered on and Ready")
            kube.wait_until(lambda: len(kube.pods(phase="Succeeded")) == 2, timeout=30,
                            what="jobs done on pi1")
            assert {p["spec"]["nodeName"] for p in kube.pods()} == {"pi1"}
            kube.wait_until(lambda: "off pi1 10001" in switch.seen, timeout=60, what="idle pi1 powered off")
            assert switch.seen == ["on pi1 10001", "off pi1 10001"]

            lease = kube.get("leases", "oscar-deploy-elastic", "oscar-deploy")
            assert lease["spec"]["holderIdentity"]
            status = kube.get("configmaps", "oscar-deploy-elastic-status", "oscar-deploy")["data"]
            assert "pis: min=0 max=1" in status["status"]
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
                metrics = response.read().decode()
            assert 'oscar_deploy_elastic_scale_ups_total{group="pis",reason="pending_pods"} 1.0' in metrics
            assert 'oscar_deploy_elastic_scale_downs_total{group="pis",reason="idle"} 1.0' in metrics
            assert "oscar_deploy_elastic_leader 1.0" in metrics

            # the power commands ran as the pod's user, and inherited no secret
            for action in ("on", "off"):
                seen_env = (mounts["/tmp"] / f"switch-env-{action}-pi1").read_text()
                for secret in (SECRETS["k3s_token"], *SECRETS["elastic_cloud_env"].values(), serving.token):
                    assert secret not in seen_env
                assert "AWS_" not in seen_env and "K3S_" not in seen_env
    finally:
        switch.stop()
    text = "\n".join(output)
    for secret in (SECRETS["k3s_token"], *SECRETS["elastic_cloud_env"].values(), serving.token):
        assert secret not in text
    after = _tree(rootfs, set(mounts))
    changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    assert not changed, f"the root file system changed outside the mounts: {sorted(changed)[:20]}"
    # and the comparison sees a change: a file written as root where the daemon's code lives
    buildah("run", "--isolation", "chroot", "--user", "0:0", container, "--", "touch",
            "/opt/oscar-deploy/written")
    assert set(_tree(rootfs, set(mounts))) - set(after) == {"/opt/oscar-deploy/written"}


def test_in_its_pod_the_daemon_halts_an_idle_board_over_ssh_with_the_mounted_key_and_host_keys(
        image: dict[str, Any], container: str, kube_api_factory: Any, board_factory: Any,
        tmp_path: Path) -> None:
    """The board's key comes from the Secret (a file root:fsGroup 0440, which ssh accepts), its host
    key from the ConfigMap, as ``configure`` gives it (learned from the board on the first run),
    checked strictly; nothing but the role's own paths is configured."""
    from provisioner.config import Settings
    from provisioner.configure import learn_board_host_keys, run_inputs
    from provisioner.state import StateStore
    from tests.harness.boards import Board
    from tests.test_configure_helpers import board_template, record_board_deployment
    from tests.test_daemon_followups import double_calls, install_double

    (board,) = board_factory(1, users=("root",), prefix="pi")
    front = Board(name="front", address="192.0.2.10", port=22, user="root", key_path=board.key_path,
                  hostname="front", root_dir=tmp_path, known_hosts=tmp_path / "unused")  # never reached
    with StateStore.open(tmp_path / "state.db") as store:
        dep = record_board_deployment(store, board_template([front, board], tmp_path / "edge.yaml",
                                                            jump_last=False))
        learn_board_host_keys(store, dep, Settings())
        known_hosts = run_inputs(store, dep, Settings())[1]["elastic_known_hosts"]
    assert known_hosts == board.known_hosts.read_text()  # the key the board host was made with
    install_double(board)  # shutdown(8) on the board: records the call, then the board goes down
    group = {**BOARD_GROUP, "nodes": [{"name": board.name, "address": board.address, "ssh_port": board.port}],
             "power": {"type": "command", "power_on": f"{SWITCH} on {{node}}",
                       "shutdown": {"user": "root", "wait_s": 20, "settle_s": 0}}}
    (tmp_path / "render").mkdir()
    docs = _render(tmp_path / "render", {**BASE, **SECRETS, "oscar_dns_name": "", "elastic_groups": [group],
                                         "elastic_ssh_private_key": board.key_path.read_text(),
                                         "elastic_known_hosts": known_hosts})
    manifests = {f"{d['kind']}/{d['metadata']['name']}": d for d in docs["elastic.yaml"]}
    serving = ServingCert.create(tmp_path / "pki")
    kube = kube_api_factory(serving=serving)
    kube.create_namespace("oscar-deploy")
    kube.register_node(board.name, labels=BOARD_GROUP["labels"])  # a board that is on, and idle
    fs_group = manifests["Deployment/oscar-deploy-elastic"]["spec"]["template"]["spec"]["securityContext"][
        "fsGroup"]
    service_account = _files(tmp_path / "serviceaccount", {"token": serving.token, "ca.crt":
                             serving.ca_file.read_text(), "namespace": "oscar-deploy"}, 0o440, fs_group)
    substituted = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(kube.port),
                   "OSCAR_DEPLOY_ELASTIC_SERVICE_ACCOUNT_DIR": SA_DIR, **FAST}
    options, command, _, mounts = pod_run(manifests, image, tmp_path / "volumes", substituted, _free_port(),
                                          {SA_DIR: service_account})
    assert not any(board.key_path == p or board.known_hosts == p for p in mounts.values())
    with running(options, container, command, tmp_path / "daemon.log") as output:
        kube.wait_until(lambda: not board.is_on(), timeout=60, what="the idle board halted over SSH")
    assert double_calls(board) == ["root shutdown -h now"]
    text = "\n".join(output)
    assert f"power off {board.name}: halted over SSH (root@{board.address}:{board.port})" in text
    assert board.key_path.read_text() not in text


@pytest.mark.parametrize(("groups_yaml", "reason"), [
    ("- name: pis\n  memory_mib: 8192\n  nodes: [{name: pi1}]\n"
     "  power: {type: command, power_on: 'x {node}', power_off: 'y {node}'}\n",
     "group 'pis': missing 'cpus'"),
    ("- name: pis\n  cpus: 4\n  memory_mib: [\n", "not valid YAML"),
    ("- name: pis\n  cpus: 4\n  memory_mib: 8192\n  nodes: [{name: pi1, address: 127.0.0.1}]\n"
     "  power: {type: command, power_on: 'x {node}', shutdown: {user: pi}}\n",
     "group 'pis': power.shutdown.key /etc/oscar-deploy/ssh/id_ed25519 is empty"),
])
def test_a_configmap_or_secret_the_daemon_cannot_use_is_one_log_line_and_a_failed_start(
        image: dict[str, Any], manifests: dict[str, dict[str, Any]], container: str, tmp_path: Path,
        groups_yaml: str, reason: str) -> None:
    """The pod then shows CrashLoopBackOff with that line as the reason (the last one: the first
    line that the daemon cannot go on from)."""
    broken = json.loads(json.dumps(manifests))
    configmap = broken["ConfigMap/oscar-deploy-elastic-groups"]["data"]
    configmap["groups.yaml"] = groups_yaml
    if "shutdown" in groups_yaml:  # the template fills in the mounted key; the Secret has none
        configmap["groups.yaml"] = groups_yaml.replace(
            "shutdown: {user: pi}", "shutdown: {user: pi, key: /etc/oscar-deploy/ssh/id_ed25519, "
                                    "known_hosts: /etc/oscar-deploy/config/known_hosts}")
        configmap["known_hosts"] = "127.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample\n"
    options, command, _, _ = pod_run(broken, image, tmp_path / "volumes", {}, _free_port(), {})
    result = buildah("run", *options, container, "--", *command, check=False)
    buildahs = ("subprocess exited with status", "Error: exit status")  # buildah's own, not the pod's
    lines = [line for line in (result.stdout + result.stderr).splitlines()
             if line.strip() and not line.startswith(buildahs)]
    assert result.returncode == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: /etc/oscar-deploy/config/groups.yaml: ") and reason in lines[0]



@pytest.fixture
def metadata_service() -> Iterator[Any]:
    """EC2's instance metadata service (IMDSv2) on 127.0.0.1, serving the instance profile's role."""
    from tests.harness.imds import InstanceMetadata, serve
    from tests.test_instance_profile import ROLE

    with serve(InstanceMetadata(role=ROLE)) as served:
        yield served


@pytest.mark.parametrize("credential", ["keys", "instance-profile"])
def test_in_its_pod_the_daemon_scales_a_hybrid_deployment_onto_a_board_then_a_cloud_worker(
        image: dict[str, Any], container: str, kube_api_factory: Any, ec2_emulator: Any,
        metadata_service: Any, tmp_path: Path, credential: str) -> None:
    """A recorded hybrid deployment's manifests (``configure``'s variables): pending pods power the
    board on, more create a worker in the EC2 emulator from the ConfigMap's launch spec with the
    user data ``create`` gives, with the join token from the Secret's files; idle, the board's power
    is cut and the worker terminated. No state file reaches the pod. The cloud credential: static
    keys in the Secret (``keys``), or the front-end's instance profile (``instance-profile``): the
    pod shares the node's network (as ``buildah run --isolation chroot`` shares this machine's) and
    botocore's chain reads the role's temporary credentials from the metadata service."""
    from provisioner.cloudinit import node_user_data, worker_join
    from provisioner.clouds.base import TAG_DEPLOYMENT, TAG_GROUP
    from provisioner.state import StateStore
    from tests.harness.ec2 import create_instance_profile
    from tests.test_daemon_pod_cloud import REGION, follow_workers, hybrid_deployment, quick_halt
    from tests.test_daemon_pod_cloud import manifests as render_manifests
    from tests.test_instance_profile import PROFILE, ROLE

    profiled = credential == "instance-profile"
    endpoint = {"AWS_ENDPOINT_URL": ec2_emulator.endpoint}  # a substitution (see SUBSTITUTIONS)
    if profiled:
        create_instance_profile(PROFILE, ROLE)  # the operator's, made once; the front-end runs with it
        state, dep, variables = hybrid_deployment(tmp_path, SWITCH, elastic_instance_profile=PROFILE)
        manifests = render_manifests(tmp_path, variables)  # no elastic_cloud_env: no keys to give
    else:
        state, dep, variables = hybrid_deployment(tmp_path, SWITCH)
        manifests = render_manifests(tmp_path, variables,
                                     elastic_cloud_env={**SECRETS["elastic_cloud_env"], **endpoint})
    quick_halt(manifests)  # a substitution (see SUBSTITUTIONS)
    pod = manifests["Deployment/oscar-deploy-elastic"]["spec"]["template"]["spec"]
    secret = manifests["Secret/oscar-deploy-elastic"]["stringData"]
    if profiled:  # as rendered: the node's network, and not one AWS_* file in the Secret
        assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
        assert set(secret) == {"K3S_TOKEN", "K3S_URL"}
        assert manifests["Namespace/oscar-deploy"]["metadata"]["labels"] == {
            "pod-security.kubernetes.io/enforce": "privileged"}
        secret.update(endpoint)  # a substitution (see SUBSTITUTIONS)
    else:
        assert "hostNetwork" not in pod
        assert set(secret) == {"K3S_TOKEN", "K3S_URL", *SECRETS["elastic_cloud_env"], *endpoint}
    assert secret["K3S_TOKEN"] == variables["k3s_agent_token"]
    serving = ServingCert.create(tmp_path / "pki")
    kube = kube_api_factory(serving=serving)
    kube.create_namespace("oscar-deploy")
    service_account = _files(tmp_path / "serviceaccount", {"token": serving.token, "ca.crt":
                             serving.ca_file.read_text(), "namespace": "oscar-deploy"}, 0o440,
                             pod["securityContext"]["fsGroup"])
    substituted = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(kube.port),
                   "OSCAR_DEPLOY_ELASTIC_SERVICE_ACCOUNT_DIR": SA_DIR, **FAST}
    if profiled:  # a substitution (see SUBSTITUTIONS)
        substituted["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = metadata_service.url
    metrics_port = _free_port()
    options, command, env, mounts = pod_run(manifests, image, tmp_path / "volumes", substituted, metrics_port,
                                            {SA_DIR: service_account, SWITCH: _switch_script(tmp_path)})
    (spec,) = pod["containers"]
    declared = {e["name"]: e.get("value", POD_IP) for e in spec["env"]}  # with the template's settings
    assert set(declared) <= set(env)
    assert {k: v for k, v in env.items() if k not in substituted} == {
        k: v for k, v in declared.items() if k not in substituted}
    assert [a for a, b in zip(command[1:], spec["args"], strict=True) if a != b] == [str(metrics_port)]
    assert set(mounts) == {m["mountPath"] for m in spec["volumeMounts"]} | {SA_DIR, SWITCH}
    assert not any(state == p or REPO in [p, *p.parents] for p in map(Path, mounts.values()))

    rootfs = Path(buildah("mount", container).stdout.strip())
    buildah("run", *options, container, "--", "true")
    before = _tree(rootfs, set(mounts))
    groups = yaml_groups(mounts["/etc/oscar-deploy/config"] / "groups.yaml")
    follow_workers(kube, ec2_emulator, dep.id, REGION)
    switch = Switch(kube, mounts["/tmp"] / "switch.log", groups["pis"]["labels"])

    def workers() -> list[dict[str, Any]]:
        return [i for i in ec2_emulator.inventory(REGION)["instances"]
                if i["tags"].get(TAG_GROUP) == "wn" and i["tags"].get(TAG_DEPLOYMENT) == dep.id]

    try:
        with running(options, container, command, tmp_path / "daemon.log") as output:
            kube.create_pods(3, prefix="job", cpus=2, runtime_s=300)
            (worker,) = kube.wait_until(workers, timeout=120, what="a cloud worker created")
            name = worker["tags"]["Name"]
            kube.wait_until(lambda: _ready(kube, name), timeout=60, what=f"{name} Ready")
            (worker,) = workers()  # as launched (RunInstances has returned), before it is terminated
            kube.wait_until(lambda: len(kube.pods(phase="Succeeded")) == 3, timeout=60, what="jobs done")
            assert {p["spec"]["nodeName"] for p in kube.pods()} == {"pi1", name}
            kube.wait_until(lambda: "off pi1 10001" in switch.seen
                            and all(i["state"] == "terminated" for i in workers()),
                            timeout=90, what="the idle board powered off and the worker terminated")
            assert switch.seen == ["on pi1 10001", "off pi1 10001"]
            lease = kube.get("leases", "oscar-deploy-elastic", "oscar-deploy")
            assert lease["spec"]["holderIdentity"]
            status = kube.get("configmaps", "oscar-deploy-elastic-status", "oscar-deploy")["data"]["status"]
            assert "pis: min=0 max=1" in status and "wn: min=0" in status
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
                metrics = response.read().decode()
            for group in ("pis", "wn"):
                ups = f'oscar_deploy_elastic_scale_ups_total{{group="{group}",reason="pending_pods"}} 1.0'
                downs = f'oscar_deploy_elastic_scale_downs_total{{group="{group}",reason="idle"}} 1.0'
                assert ups in metrics and downs in metrics, metrics
            for action in ("on", "off"):  # the power command inherited no credential nor token
                seen_env = (mounts["/tmp"] / f"switch-env-{action}-pi1").read_text()
                assert "AWS_" not in seen_env and "K3S_" not in seen_env
    finally:
        switch.stop()
    with StateStore.open(state) as store:  # what `create` gives a worker of that name
        assert worker["user_data"] == node_user_data(worker_join(store, store.get(dep.id), "wn"), name)
    # it was created and terminated by requests signed with the pod's credential (below); it has no
    # role of its own, and its metadata answers one hop away only
    calls = [c for c in ec2_emulator.calls if c.fault is None]
    assert {"RunInstances", "TerminateInstances"} <= {c.action for c in calls}
    assert not [k for c in calls if c.action == "RunInstances" for k in c.params if k.startswith("IamInst")]
    assert (worker["instance_profile"], worker["http_tokens"], worker["http_hop_limit"]) == (
        None, "required", 1)
    signers = {(c.access_key, c.session_token) for c in calls}
    hidden = [*secret.values(), serving.token]
    if profiled:  # the role's one set (botocore renews it hours later: tests/test_instance_profile.py)
        assert signers == {(r.access_key_id, r.token) for r in metadata_service.issued}, signers
        (role,) = metadata_service.issued
        assert ("PUT", "/latest/api/token") in metadata_service.requests  # IMDSv2: a session token first
        hidden += [role.secret_access_key, role.token]
    else:
        assert signers == {(SECRETS["elastic_cloud_env"]["AWS_ACCESS_KEY_ID"], None)}
        assert metadata_service.requests == []
    text = "\n".join(output)
    for value in hidden:
        if value != secret["K3S_URL"] and value != ec2_emulator.endpoint:
            assert value not in text
    after = _tree(rootfs, set(mounts))
    changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    assert not changed, f"the root file system changed outside the mounts: {sorted(changed)[:20]}"


def yaml_groups(path: Path) -> dict[str, dict[str, Any]]:
    import yaml

    return {g["name"]: g for g in yaml.safe_load(path.read_text())}
