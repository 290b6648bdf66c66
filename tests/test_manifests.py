"""`oscar-deploy manifests ID`: every object the configuration installs, as the roles write it.

The proof is against the roles themselves: the configuration runs for real on board hosts (front-end
board-1, edge boards pi1 and pi2), and every file it left in k3s's manifests directory on the front-end
is byte-for-byte the file `manifests --dir D --show-secrets` writes. The faster tests render a
deployment of documentation addresses (192.0.2.0/24: no host is reached) and read what a user reads:
one YAML stream on stdout with the secrets masked, the daemon's objects among the documents, private
files in `--dir`, an unknown ID refused with exit 2.
"""

from __future__ import annotations

import difflib
import hashlib
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from provisioner.configure import configure_deployment
from provisioner.manifests import MASK, UnmaskableSecret, masked
from provisioner.state import StateStore
from tests.harness.boards import Board
from tests.harness.processes import stop
from tests.test_configure_helpers import (
    allow_sudo,
    board_template,
    board_vars,
    cli,
    fake_airgap_dir,
    record_board_deployment,
)

MANIFESTS = "/var/lib/rancher/k3s/server/manifests"
DAEMON = {("Namespace", "oscar-deploy"), ("ServiceAccount", "oscar-deploy-elastic"),
          ("ClusterRole", "oscar-deploy-elastic"), ("ClusterRoleBinding", "oscar-deploy-elastic"),
          ("Role", "oscar-deploy-elastic"), ("RoleBinding", "oscar-deploy-elastic"),
          ("ConfigMap", "oscar-deploy-elastic-groups"), ("Secret", "oscar-deploy-elastic"),
          ("Secret", "oscar-deploy-elastic-ssh"), ("Deployment", "oscar-deploy-elastic"),
          ("Service", "oscar-deploy-elastic-metrics")}


def _vars_file(path: Path, airgap: Path) -> Path:
    path.write_text(yaml.safe_dump(board_vars(airgap)))
    return path


# --- rendered without any host (documentation addresses) -----------------------------------------------

@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A recorded deployment of boards at 192.0.2.10-12, its secrets, and the `manifests` command run
    twice: the default (stdout) and `--dir --show-secrets`."""
    tmp = tmp_path_factory.mktemp("manifests")
    key = tmp / "id_ed25519"
    key.write_text("not a key: no host is reached\n")
    key.chmod(0o600)
    fleet = [Board(name=f"doc{i}", address=f"192.0.2.{10 + i}", port=22, user="root", key_path=key,
                   hostname=f"doc{i}", root_dir=tmp, known_hosts=tmp / "known_hosts") for i in range(3)]
    state = tmp / "state.db"
    with StateStore.open(state) as store:
        dep = record_board_deployment(store, board_template(fleet, tmp / "boards.yaml"))
        secrets = store.secrets(dep.id)
    variables = _vars_file(tmp / "vars.yml", fake_airgap_dir(tmp / "airgap"))
    stream = cli(state, "manifests", "edge-test", "--vars", str(variables), cwd=tmp)
    out = tmp / "out" / "manifests"
    shown = cli(state, "manifests", dep.id, "--vars", str(variables), "--dir", str(out), "--show-secrets",
                cwd=tmp)
    return {"state": state, "tmp": tmp, "dep": dep, "secrets": secrets, "stream": stream, "shown": shown,
            "out": out, "vars": variables}


def test_stdout_is_one_yaml_stream_of_named_objects_with_the_daemon_among_them(offline: dict[str, Any]
                                                                              ) -> None:
    done = offline["stream"]
    assert done.returncode == 0, done.stderr
    documents = [d for d in yaml.safe_load_all(done.stdout) if d is not None]
    for doc in documents:
        assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"], doc
    kinds = {(d["kind"], d["metadata"]["name"]) for d in documents}
    assert kinds >= DAEMON, sorted(DAEMON - kinds)
    assert {("HelmChart", "minio"), ("HelmChart", "oscar"), ("HelmChart", "csi-driver-nfs"),
            ("StorageClass", "nfs"), ("Secret", "minio-root"), ("ConfigMap", "config-features")} <= kinds
    # the daemon that starts: its image, its groups file and its service account, the token it joins with
    deployment = next(d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"] ==
                      "oscar-deploy-elastic")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "oscar-deploy-elastic"
    assert pod["containers"][0]["args"][:3] == ["daemon", "--groups", "/etc/oscar-deploy/config/groups.yaml"]
    groups = yaml.safe_load(next(d for d in documents if d["kind"] == "ConfigMap" and d["metadata"]["name"]
                                 == "oscar-deploy-elastic-groups")["data"]["groups.yaml"])
    assert [(g["name"], [n["name"] for n in g["nodes"]]) for g in groups] == [("pis", ["pi1", "pi2"])]
    # one comment naming each file, in the order kubectl applies a directory
    named = [line[2:] for line in done.stdout.splitlines() if line.startswith("# oscar-") and
             line.endswith(".yaml")]
    assert named == sorted(named) and "oscar-elastic.yaml" in named and "oscar-minio.yaml" in named


def test_secrets_are_masked_by_default_and_shown_when_asked(offline: dict[str, Any]) -> None:
    secrets: dict[str, str] = offline["secrets"]
    text = offline["stream"].stdout
    for name in ("k3s_token", "k3s_agent_token", "minio_password", "oscar_password"):
        assert secrets[name] not in text, name
        assert secrets[name][:12] not in text, name
    documents = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(text) if d}
    assert documents[("Secret", "minio-root")]["stringData"]["rootPassword"] == MASK
    assert documents[("Secret", "oscar-deploy-elastic")]["stringData"]["K3S_TOKEN"] == MASK
    oscar = yaml.safe_load(documents[("HelmChart", "oscar")]["spec"]["valuesContent"])
    assert "authPass" not in oscar and "secretKey" not in oscar["minIO"]  # they come from a Secret
    assert oscar["authUser"] == "oscar"  # a user name is not a secret
    chart_secrets = yaml.safe_load(
        documents[("Secret", "oscar-chart-secret-values")]["stringData"]["values.yaml"])
    assert chart_secrets["authPass"] == chart_secrets["minIO"]["secretKey"] == MASK
    # --show-secrets --dir: the values themselves, in private files named as on the front-end
    done, out = offline["shown"], offline["out"]
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and "wrote 14 manifest(s)" in done.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {0o600}
    minio = yaml.safe_load_all((out / "oscar-minio-credentials.yaml").read_text())
    root = next(d for d in minio if d and d["kind"] == "Secret")
    assert root["stringData"]["rootPassword"] == secrets["minio_password"]
    daemon = {(d["kind"], d["metadata"]["name"]): d
              for d in yaml.safe_load_all((out / "oscar-elastic.yaml").read_text()) if d}
    assert daemon[("Secret", "oscar-deploy-elastic")]["stringData"]["K3S_TOKEN"] == secrets["k3s_agent_token"]


def test_dir_rewrites_a_wide_file_private_and_masks_without_show_secrets(offline: dict[str, Any]) -> None:
    out = offline["tmp"] / "masked"
    out.mkdir(mode=0o755)
    (out / "oscar-elastic.yaml").write_text("old\n")
    (out / "oscar-elastic.yaml").chmod(0o644)
    done = cli(offline["state"], "manifests", "edge-test", "--vars", str(offline["vars"]), "--dir", str(out),
               cwd=offline["tmp"])
    assert done.returncode == 0, done.stderr
    assert "(secrets masked)" in done.stderr
    assert stat.S_IMODE((out / "oscar-elastic.yaml").stat().st_mode) == 0o600
    text = "".join(p.read_text() for p in out.iterdir())
    assert all(value[:12] not in text for value in offline["secrets"].values())
    assert f'K3S_TOKEN: "{MASK}"' in (out / "oscar-elastic.yaml").read_text()


def test_an_unknown_deployment_exits_2_and_writes_nothing(offline: dict[str, Any]) -> None:
    out = offline["tmp"] / "never"
    done = cli(offline["state"], "manifests", "ghost", "--dir", str(out), cwd=offline["tmp"])
    assert done.returncode == 2 and done.stdout == ""
    assert "ghost" in done.stderr and done.stderr.count("\n") == 1
    assert not out.exists()


def test_a_secret_masking_cannot_reach_is_refused_not_printed() -> None:
    """The safety net: a secret split over a YAML line break (an escaped newline in a quoted string)
    is not in the text as such, but it is in what Kubernetes would read: nothing is returned."""
    secret = "Zq8sEcretValueWithoutSpaces"
    folded = ("apiVersion: v1\nkind: Secret\nmetadata: {name: x}\nstringData:\n"
              f'  k: "{secret[:10]}\\\n    {secret[10:]}"\n')
    assert yaml.safe_load(folded)["stringData"]["k"] == secret
    with pytest.raises(UnmaskableSecret, match=r"x\.yaml"):
        masked({"x.yaml": folded}, [secret])
    assert masked({"y.yaml": f"k: {secret}\n"}, [secret]) == {"y.yaml": f"k: {MASK}\n"}


# --- against the roles on the board hosts ----------------------------------------------------------


@pytest.fixture(scope="module")
def configured(board_hosts: list[Board], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The board deployment of test_configure.py, configured once for real, its edge boards reached
    directly (the daemon halts them over SSH), without create's wait (no host key known yet)."""
    tmp = tmp_path_factory.mktemp("configured")
    allow_sudo(board_hosts)
    template = board_template(board_hosts, tmp / "boards.yaml", users=("root", "pi", "root"), jump_last=False)
    state = tmp / "state.db"
    airgap = fake_airgap_dir(tmp / "airgap")
    with StateStore.open(state) as store:
        dep = record_board_deployment(store, template)
        configure_deployment(store, dep, progress=False, extra_vars=board_vars(airgap))
    return {"state": state, "tmp": tmp, "front": board_hosts[0], "vars": _vars_file(tmp / "vars.yml", airgap),
            "boards": board_hosts[1:]}


def _remote_sums(board: Board) -> dict[str, str]:
    out = board.run(f"cd {MANIFESTS} && sha256sum *").stdout
    return {name: digest for digest, name in (line.split() for line in out.splitlines())}


@pytest.mark.timeout(900)  # the whole playbook on three boards of a shared machine, then the render
def test_manifests_are_byte_for_byte_what_the_roles_wrote_on_the_front_end(configured: dict[str, Any]
                                                                            ) -> None:
    out = configured["tmp"] / "rendered"
    done = cli(configured["state"], "manifests", "edge-test", "--vars", str(configured["vars"]), "--dir",
               str(out), "--show-secrets", cwd=configured["tmp"])
    assert done.returncode == 0, done.stderr
    front: Board = configured["front"]
    remote = _remote_sums(front)
    local = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.iterdir()}
    assert sorted(local) == sorted(remote)
    assert len(remote) == 14  # every file the roles write there (test_configure.py lists them)
    for name in sorted(remote):
        if local[name] != remote[name]:
            theirs = subprocess.run(front.ssh_argv(f"cat {MANIFESTS}/{name}"), capture_output=True,
                                    check=True).stdout.decode()
            diff = difflib.unified_diff(theirs.splitlines(), (out / name).read_text().splitlines(),
                                        "front-end", "manifests", lineterm="")
            pytest.fail(f"{name} differs from the front-end's:\n" + "\n".join(list(diff)[:40]))
    # The comparison sees a difference: one variable changed, exactly its file differs.
    changed = configured["tmp"] / "changed.yml"
    changed.write_text(configured["vars"].read_text() + "minio_memory: 2Gi\n")
    other = configured["tmp"] / "other"
    done = cli(configured["state"], "manifests", "edge-test", "--vars", str(changed), "--dir", str(other),
               "--show-secrets", cwd=configured["tmp"])
    assert done.returncode == 0, done.stderr
    differs = [p.name for p in sorted(other.iterdir())
               if hashlib.sha256(p.read_bytes()).hexdigest() != remote[p.name]]
    assert differs == ["oscar-minio.yaml"]


def test_the_daemon_on_the_front_end_checks_exactly_the_edge_boards_host_keys(configured: dict[str, Any]
                                                                              ) -> None:
    """The ConfigMap the first run applied holds the keys the board hosts were made with, for the two
    boards the daemon halts (not the front-end's), and its groups point the halt at them."""
    front: Board = configured["front"]
    applied = front.run(f"cat {MANIFESTS}/oscar-elastic.yaml").stdout
    configmap = next(d for d in yaml.safe_load_all(applied) if d and d["kind"] == "ConfigMap"
                     and d["metadata"]["name"] == "oscar-deploy-elastic-groups")
    halted: list[Board] = configured["boards"]
    made = [line for line in front.known_hosts.read_text().splitlines()
            if any(line.startswith(f"[{b.address}]:{b.port} ") for b in halted)]
    assert len(made) == len(halted) == 2
    assert configmap["data"]["known_hosts"] == "".join(f"{line}\n" for line in sorted(made))
    (group,) = yaml.safe_load(configmap["data"]["groups.yaml"])
    assert group["power"]["shutdown"]["known_hosts"] == "/etc/oscar-deploy/config/known_hosts"


def test_the_daemon_manifests_shows_starts_as_its_deployment_says(offline: dict[str, Any], kube_api: Any,
                                                                  tmp_path: Path) -> None:
    """What `manifests` writes for the daemon is a daemon that starts: its Deployment's command, args
    and env, its ConfigMap and Secret as files at their mount paths, run as a process against the
    Kubernetes API test server, takes its Lease and writes its status. Substituted, and only these:
    the mount paths (into this test's directory, through `--vars`, as a site's ansible_vars would) and
    the API server (``KUBECONFIG``, which the daemon prefers to its service account; the image test
    runs it with the service account's token and CA)."""
    import os
    import sys

    config, credentials, ssh = tmp_path / "config", tmp_path / "credentials", tmp_path / "ssh"
    variables = yaml.safe_load(offline["vars"].read_text())
    moved = tmp_path / "vars.yml"
    moved.write_text(yaml.safe_dump({**variables, "elastic_config_dir": str(config),
                                     "elastic_credentials_dir": str(credentials),
                                     "elastic_ssh_dir": str(ssh)}))
    out = tmp_path / "manifests"
    done = cli(offline["state"], "manifests", offline["dep"].id, "--vars", str(moved), "--dir", str(out),
               "--show-secrets", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    docs = {f"{d['kind']}/{d['metadata']['name']}": d
            for d in yaml.safe_load_all((out / "oscar-elastic.yaml").read_text()) if d}
    (container,) = docs["Deployment/oscar-deploy-elastic"]["spec"]["template"]["spec"]["containers"]
    volumes = {v["name"]: v for v in docs["Deployment/oscar-deploy-elastic"]["spec"]["template"]["spec"]
               ["volumes"]}
    for mount in container["volumeMounts"]:
        source = volumes[mount["name"]]
        if "configMap" in source:
            data = docs[f"ConfigMap/{source['configMap']['name']}"]["data"]
        elif "secret" in source:
            data = docs[f"Secret/{source['secret']['secretName']}"]["stringData"]
        else:
            continue  # an emptyDir (its scratch space)
        target = Path(mount["mountPath"])
        assert target in (config, credentials, ssh), target  # only what the --vars moved
        target.mkdir(parents=True, exist_ok=True)
        for key, value in data.items():
            (target / key).write_text(value)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OS_", "OSCAR_DEPLOY_"))}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "status.podIP":
            env[item["name"]] = "127.0.0.1"  # what the kubelet would fill in: the pod's address
    kube_api.create_namespace("oscar-deploy")  # the manifests' Namespace, as applying them would
    env.update(HOME=str(tmp_path), KUBECONFIG=str(kube_api.write_kubeconfig(tmp_path / "kubeconfig")),
               OSCAR_DEPLOY_GENERAL_CACHE_DIR=str(tmp_path / "cache"))
    command = [str(Path(sys.executable).parent / "oscar-deploy"), *container["args"], "--metrics-port", "0"]
    daemon = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              stdin=subprocess.DEVNULL)
    try:
        def started() -> bool:
            if daemon.poll() is not None:
                raise AssertionError(f"the daemon exited {daemon.returncode}: {daemon.communicate()[0]}")
            try:
                lease = kube_api.get("leases", "oscar-deploy-elastic", "oscar-deploy")
                status = kube_api.get("configmaps", "oscar-deploy-elastic-status", "oscar-deploy")
            except Exception:
                return False
            return bool(lease["spec"].get("holderIdentity")) and "pis" in str(status.get("data"))

        kube_api.wait_until(started, timeout=60, what="the daemon holding its Lease and writing its status")
    finally:
        output, _ = stop(daemon)
        print(output)
    assert all(value not in output for value in offline["secrets"].values())
