"""What the roles install, checked against upstream's own files (tests/upstream/, provenance in its
PROVENANCE.md), not against our assumptions: every chart value key we set exists in that chart's
values.yaml; every namespace a chart's templates write into exists before the chart; every Knative
feature OSCAR's service pods need is on; every download URL has upstream's file name at a tag; the
checksums in versions.yml are those of upstream's files; the k3s binary, its sha256sum file and every
INSTALL_K3S_* variable the roles and the worker user data use are what k3s's install.sh downloads and reads.

The roles' variables are rendered by Ansible itself (one local play), as the roles would see them."""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
from typing import Any

import pytest
import yaml
from jinja2 import Template

from tests.test_configure_helpers import REPO, run_tool

UPSTREAM = REPO / "tests" / "upstream"
PLAYBOOKS = REPO / "playbooks"
VERSIONS = yaml.safe_load((PLAYBOOKS / "group_vars/all/versions.yml").read_text())
RENDERED = ("nfs_csi_chart_url", "nfs_csi_chart_file", "minio_chart_url", "oscar_chart_url",
            "k3s_server_helm_url", "k3s_server_release_url", "k3s_server_install_script_url",
            "knative_release_url", "knative_kourier_release_url", "cert_manager_manifest_url",
            "oscar_values", "oscar_secret_values", "minio_values", "knative_settings", "oscar_namespace",
            "oscar_services_namespace", "minio_namespace")
FACTS = {"oscar_deployment_name": "demo", "oscar_front_address": "198.51.100.7",
         "ansible_host": "198.51.100.7",
         "oscar_dns_name": "", "oscar_components": ["k3s", "minio", "knative", "oscar"],
         "oscar_username": "oscar", "oscar_password": "p" * 24, "minio_access_key": "minio",
         "minio_secret_key": "m" * 24, "minio_api_port": 30300, "minio_console_port": 30303,
         "k3s_server_arch": "amd64"}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The roles' variables as Ansible renders them, with every role's defaults and versions.yml."""
    tmp = tmp_path_factory.mktemp("contract")
    files = [str(p) for p in sorted(PLAYBOOKS.glob("roles/*/defaults/main.yml"))]
    files += [str(PLAYBOOKS / "group_vars/all/main.yml"), str(PLAYBOOKS / "group_vars/all/versions.yml")]
    out = tmp / "rendered.json"
    content = "{{ {" + ", ".join(f"'{name}': {name}" for name in RENDERED) + "} | to_json }}"
    play = [{"name": "Render", "hosts": "localhost", "connection": "local", "gather_facts": False,
             "vars_files": files, "vars": {**FACTS, "ansible_python_interpreter": sys.executable},
             "tasks": [{"name": "Write", "ansible.builtin.copy": {"dest": str(out), "content": content,
                                                                   "mode": "0600"}}]}]
    (tmp / "render.yml").write_text(yaml.safe_dump(play))
    result = run_tool("ansible-playbook", "-i", "localhost,", str(tmp / "render.yml"), cwd=tmp)
    assert result.returncode == 0, result.stdout + result.stderr
    return dict(json.loads(out.read_text()))


def _chart(name: str) -> dict[str, str]:
    """An upstream chart archive's files by their path in the chart (``values.yaml``, ``templates/...``)."""
    (archive,) = (UPSTREAM / "charts").glob(f"{name}-*.tgz")
    files = {}
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if member.isfile():
                handle = tar.extractfile(member)
                assert handle is not None
                files[member.name.split("/", 1)[1]] = handle.read().decode()
    return files


def unknown_keys(ours: Any, theirs: Any, path: str = "") -> list[str]:
    """Key paths set in ``ours`` that the chart's ``values.yaml`` (``theirs``) does not have. Below a
    chart value that is not a mapping (``nodeSelector: {}``, a list) anything goes: the chart takes it
    whole."""
    if not isinstance(ours, dict) or not isinstance(theirs, dict) or not theirs:
        return []
    missing = []
    for key, value in ours.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in theirs:
            missing.append(where)
        else:
            missing += unknown_keys(value, theirs[key], where)
    return missing


def test_the_contract_check_finds_a_key_the_chart_lacks() -> None:
    theirs = {"minIO": {"endpoint": "x"}, "nodeSelector": {}}
    assert unknown_keys({"minIO": {"endpont": "y"}, "nodeSelector": {"a": "b"}}, theirs) == ["minIO.endpont"]


def _nfs_values() -> dict[str, Any]:
    text = (PLAYBOOKS / "roles/nfs/templates/oscar-nfs-csi.yaml.j2").read_text()
    manifest = yaml.safe_load(re.sub(r"\{\{.*?\}\}", "X", text))
    return dict(yaml.safe_load(manifest["spec"]["valuesContent"]))


@pytest.mark.parametrize("chart", ["oscar", "minio", "csi-driver-nfs"])
def test_every_value_we_set_is_a_key_of_the_charts_values(chart: str, rendered: dict[str, Any]) -> None:
    # the chart gets both: valuesContent, then the Secret valuesSecrets names (Helm merges them)
    ours = {"oscar": _merged(rendered["oscar_values"], rendered["oscar_secret_values"]),
            "minio": rendered["minio_values"],
            "csi-driver-nfs": _nfs_values()}
    theirs = yaml.safe_load(_chart(chart)["values.yaml"])
    assert ours[chart] and unknown_keys(ours[chart], theirs) == []


def test_minio_chart_makes_a_default_admin_unless_users_is_set(rendered: dict[str, Any]) -> None:
    """Chart 5.4.0's values.yaml creates console/console123 with consoleAdmin; we set no user."""
    theirs = yaml.safe_load(_chart("minio")["values.yaml"])
    assert {"accessKey": "console", "secretKey": "console123", "policy": "consoleAdmin"} in theirs["users"]
    assert rendered["minio_values"]["users"] == []
    # quay.io still serves the image tags the chart defaults to; we pin exactly those.
    assert rendered["minio_values"]["image"]["tag"] == theirs["image"]["tag"]
    assert rendered["minio_values"]["image"]["repository"] == theirs["image"]["repository"] == \
        "quay.io/minio/minio"


def _template_namespaces(chart: dict[str, str], values: dict[str, Any], release: str) -> set[str]:
    """Every namespace the chart's templates write objects into (``metadata.namespace``, and the
    subjects' of its bindings), resolved with our values over the chart's defaults."""
    values = _merged(yaml.safe_load(chart["values.yaml"]), values)
    found = set()
    for path, text in chart.items():
        if not path.startswith("templates/") or path.endswith((".txt", ".tpl")):
            continue
        text = _drop_disabled(text, values)
        for expression in re.findall(r"^  namespace:\s*(.+?)\s*$", text, flags=re.M):
            if ".Release.Namespace" in expression:
                found.add(release)
            elif match := re.search(r"\.Values\.([\w.]+)", expression):
                value: Any = values
                for part in match.group(1).split("."):
                    value = value[part]
                found.add(str(value))
            else:
                found.add(expression.strip("\"'"))
    return found


def _value(values: dict[str, Any], dotted: str) -> Any:
    value: Any = values
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _drop_disabled(text: str, values: dict[str, Any]) -> str:
    """The template without its ``{{ if .Values.X }} ... {{ end }}`` blocks whose X is false with our
    values (Helm renders none of their objects); nested blocks are counted to find each one's end."""
    tokens = re.split(r"({{-?\s*(?:if|with|range|end)\b[^}]*}})", text)
    out, skipping, depth = [], 0, 0
    for token in tokens:
        opening = re.match(r"{{-?\s*(if|with|range)\b\s*(.*?)\s*-?}}$", token)
        if opening:
            depth += 1
            simple = re.fullmatch(r"\.Values\.([\w.]+)", opening.group(2))
            if not skipping and opening.group(1) == "if" and simple and not _value(values, simple.group(1)):
                skipping = depth
        elif re.match(r"{{-?\s*end\b", token):
            if skipping == depth:
                skipping = 0
                depth -= 1
                continue
            depth -= 1
        if not skipping:
            out.append(token)
    return "".join(out)


def _merged(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{k: _merged(base.get(k), v) for k, v in over.items()}}
    return over


def _namespaces_written(template: str, variables: dict[str, Any]) -> set[str]:
    """The Namespace objects a role's manifest template writes (its loop over namespace names)."""
    text = (PLAYBOOKS / template).read_text()
    names = set()
    if loop := re.search(r"{% for namespace in \[(.+?)\]", text):
        names |= {str(variables[name.strip()]) for name in loop.group(1).split(",")}
    names |= {str(variables[m]) for m in re.findall(r"kind: Namespace\nmetadata:\n  name: {{ (\w+) }}", text)
              if m != "namespace"}
    return names


def test_every_namespace_a_chart_writes_into_exists_before_it(rendered: dict[str, Any]) -> None:
    oscar = _template_namespaces(_chart("oscar"), rendered["oscar_values"], rendered["oscar_namespace"])
    # 4.1.2 hard-codes oscar-svc (oscar-additional-cm.yaml) and uses servicesNamespace elsewhere.
    assert oscar == {"oscar-svc", "oscar"}
    assert oscar <= _namespaces_written("roles/oscar/templates/oscar-oscar.yaml.j2", rendered)
    minio = _template_namespaces(_chart("minio"), rendered["minio_values"], rendered["minio_namespace"])
    assert minio <= {"minio"} | _namespaces_written("roles/minio/templates/oscar-minio-credentials.yaml.j2",
                                                    rendered)
    nfs = _template_namespaces(_chart("csi-driver-nfs"), _nfs_values(), "kube-system")
    assert nfs == {"kube-system"}  # exists in every cluster


def test_every_knative_feature_oscar_service_pods_need_is_on(rendered: dict[str, Any]) -> None:
    """OSCAR mounts its PVC into every service pod and a service's own volume read-write
    (pkg/types/service.go); Knative Serving's defaults (features.yaml) refuse both."""
    source = (UPSTREAM / "oscar-service.go").read_text()
    needs = set()
    if "PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource" in source:
        needs.add("kubernetes.podspec-persistent-volume-claim")
    if re.search(r"ServiceVolumeName,\n\s+MountPath", source):  # a PVC mount without ReadOnly
        needs.add("kubernetes.podspec-persistent-volume-write")
    assert needs == {"kubernetes.podspec-persistent-volume-claim",
                     "kubernetes.podspec-persistent-volume-write"}
    example = yaml.safe_load((UPSTREAM / "knative/features.yaml").read_text())["data"]["_example"]
    defaults = dict(re.findall(r'^\s*([\w.-]+): "(\w+)"\s*$', example, flags=re.M))
    features = rendered["knative_settings"]["config-features"]
    for flag in needs:
        assert defaults[flag] == "disabled" and features[flag] == "enabled"
    network = yaml.safe_load((UPSTREAM / "knative/network.yaml").read_text())
    assert "ingress-class" in network["data"]["_example"]


def test_kourier_gateway_is_a_load_balancer_upstream_and_in_cluster_here(rendered: dict[str, Any]) -> None:
    docs = list(yaml.safe_load_all((UPSTREAM / "knative/kourier-300-gateway.yaml").read_text()))
    (gateway,) = [d for d in docs if d and d["kind"] == "Service" and d["metadata"]["name"] == "kourier"]
    assert gateway["spec"]["type"] == "LoadBalancer"
    assert sorted(p["port"] for p in gateway["spec"]["ports"]) == [80, 443]  # what k3s's Traefik holds
    template = (PLAYBOOKS / "roles/knative/templates/knative-release.yaml.j2").read_text()
    assert "name == 'kourier'" in template
    defaults = yaml.safe_load((PLAYBOOKS / "roles/knative/defaults/main.yml").read_text())
    assert defaults["knative_kourier_service_type"] == "ClusterIP"


def test_every_url_names_upstreams_file_at_a_tag(rendered: dict[str, Any]) -> None:
    urls = {name: str(value) for name, value in rendered.items() if name.endswith("_url")}
    for name, url in urls.items():
        assert not re.search(r"/(master|main|HEAD)/", url), f"{name} reads a branch: {url}"
    nfs = VERSIONS["csi_driver_nfs_version"]
    (chart,) = (UPSTREAM / "charts").glob("csi-driver-nfs-*.tgz")
    assert urls["nfs_csi_chart_url"] == ("https://raw.githubusercontent.com/kubernetes-csi/csi-driver-nfs/"
                                         f"{nfs}/charts/{nfs}/{chart.name}")
    assert rendered["nfs_csi_chart_file"] == chart.name == f"csi-driver-nfs-{nfs.removeprefix('v')}.tgz"
    for name, key in (("oscar", "oscar_chart_url"), ("minio", "minio_chart_url")):
        meta = yaml.safe_load(_chart(name)["Chart.yaml"])
        assert urls[key].endswith(f"/{meta['name']}-{meta['version']}.tgz")  # helm package's own name
    assert urls["k3s_server_install_script_url"].endswith(f"/{VERSIONS['k3s_version'].replace('+', '%2B')}"
                                                          "/install.sh")


def test_versions_checksums_are_upstreams_files() -> None:
    sums = VERSIONS["artifact_sha256"]
    charts = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (UPSTREAM / "charts").glob("*.tgz")}
    assert sums == charts
    pinned = {f"csi-driver-nfs-{VERSIONS['csi_driver_nfs_version'].removeprefix('v')}.tgz",
              f"minio-{VERSIONS['minio_chart_version']}.tgz", f"oscar-{VERSIONS['oscar_chart_version']}.tgz"}
    assert set(sums) == pinned  # a version bump without its checksum (and upstream file) fails here
    for name, archive in ((n, UPSTREAM / "charts" / n) for n in pinned):
        with tarfile.open(fileobj=io.BytesIO(archive.read_bytes())) as tar:
            (chart_yaml,) = [m for m in tar.getmembers()
                             if m.name.endswith("/Chart.yaml") and m.name.count("/") == 1]
            handle = tar.extractfile(chart_yaml)
            assert handle is not None
            meta = yaml.safe_load(handle.read())
        assert name == f"{meta['name']}-{meta['version']}.tgz"
    assert set(VERSIONS["artifact_unverified"]) == {f"cert-manager-{VERSIONS['cert_manager_version']}.yaml"}


# k3s's install.sh and the sum k3s commits beside it (install.sh.sha256sum), both read at k3s-io/k3s
# commit 019b0afdd830e36f5e4b7a5b237e6a4339e6a6be (tests/upstream/PROVENANCE.md).
INSTALL_SH = UPSTREAM / "k3s" / "install.sh"
INSTALL_SH_SHA256 = "68ae766b4c4fd2c8032f712cdd346c8f9d1ae60eaeb4736a1155effda44ea23d"
K3S_INSTALL = PLAYBOOKS / "roles/k3s_server/tasks/install.yml"


def test_install_sh_copy_is_upstreams_file() -> None:
    """The copy the checks below read is byte for byte the script k3s published a sum for."""
    assert hashlib.sha256(INSTALL_SH.read_bytes()).hexdigest() == INSTALL_SH_SHA256


def _install_sh_arch(machine: str) -> tuple[str, str]:
    """(ARCH, SUFFIX) as install.sh's own ``setup_verify_arch`` sets them for ``uname -m`` = ``machine``:
    the shell function itself decides, not a re-reading of it."""
    match = re.search(r"^setup_verify_arch\(\) \{\n.*?^\}\n", INSTALL_SH.read_text(), re.M | re.S)
    assert match, "install.sh has no setup_verify_arch"
    program = ('fatal() { echo "$@" >&2; exit 1; }\n' + match.group(0)
               + 'setup_verify_arch\nprintf "%s %s" "$ARCH" "$SUFFIX"\n')
    done = subprocess.run(["sh", "-c", program], env={"ARCH": machine, "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    arch, _, suffix = done.stdout.partition(" ")
    return arch, suffix


def _install_tasks() -> dict[str, dict[str, Any]]:
    """The shared k3s install tasks (k3s_server's ``install.yml``, which k3s_agent includes) by name."""
    return {t["name"]: t for t in yaml.safe_load(K3S_INSTALL.read_text())}


def _set_fact(name: str, **variables: str) -> str:
    """The one fact a set_fact task of ``install.yml`` sets, rendered by Jinja as Ansible would."""
    ((_, expression),) = _install_tasks()[name]["ansible.builtin.set_fact"].items()
    return Template(expression).render(**variables)


def test_k3s_binary_and_checksum_file_are_what_install_sh_downloads() -> None:
    """For every machine the roles know, the binary they fetch and the sha256sum file they check it
    against are the ones install.sh itself downloads there (``download_binary``, ``download_hash``),
    and the binary's line in that file is the one install.sh greps for."""
    script = INSTALL_SH.read_text()
    assert "BIN_URL=${GITHUB_URL}/download/${VERSION_K3S}/k3s${SUFFIX}\n" in script
    assert "HASH_URL=${GITHUB_URL}/download/${VERSION_K3S}/sha256sum-${ARCH}.txt\n" in script
    assert 'HASH_EXPECTED=$(grep " k3s${SUFFIX}$" ${TMP_HASH})' in script
    assert "GITHUB_URL=https://github.com/k3s-io/k3s/releases\n" in script
    fetch = _install_tasks()["Install the k3s binary (checked against the release's sha256sum file)"]["vars"]
    arch_fact = "Name k3s's artifacts for this architecture"
    machines = re.findall(r"'([\w]+)': '\w+'", next(iter(
        _install_tasks()[arch_fact]["ansible.builtin.set_fact"].values())))
    assert {"x86_64", "aarch64", "armv7l"} <= set(machines)
    for machine in machines:
        arch, suffix = _install_sh_arch(machine)
        ours_arch = _set_fact(arch_fact, ansible_architecture=machine)
        assert ours_arch == arch, machine
        binary = _set_fact("Name the binary as the release does (k3s, k3s-arm64, k3s-armhf; "
                           "install.sh setup_verify_arch)", k3s_server_arch=ours_arch)
        assert binary == f"k3s{suffix}", machine
        names = {"k3s_server_binary": binary, "k3s_server_arch": ours_arch, "k3s_server_release_url": "R"}
        assert Template(fetch["common_fetch_file"]).render(**names) == f"k3s{suffix}"
        assert Template(fetch["common_fetch_url"]).render(**names) == f"R/k3s{suffix}"
        assert Template(fetch["common_fetch_checksum_file"]).render(**names) == f"sha256sum-{arch}.txt"
        assert Template(fetch["common_fetch_checksum_url"]).render(**names) == f"R/sha256sum-{arch}.txt"
    release = yaml.safe_load((PLAYBOOKS / "roles/k3s_server/defaults/main.yml").read_text())
    assert release["k3s_server_release_url"].startswith("https://github.com/k3s-io/k3s/releases/download/")


def _install_k3s_variables_set() -> dict[str, set[str]]:
    """Every INSTALL_K3S_* variable the roles' tasks and the worker user data set, by where."""
    found: dict[str, set[str]] = {}
    for tasks in sorted(PLAYBOOKS.glob("roles/*/tasks/*.yml")):
        for task in yaml.safe_load(tasks.read_text()) or []:
            for name in (task.get("environment") or {}) if isinstance(task, dict) else {}:
                if name.startswith("INSTALL_K3S_"):
                    found.setdefault(name, set()).add(str(tasks.relative_to(REPO)))
    cloudinit = REPO / "provisioner" / "cloudinit.py"
    for name in re.findall(r"\b(INSTALL_K3S_\w+)=", cloudinit.read_text()):
        found.setdefault(name, set()).add(str(cloudinit.relative_to(REPO)))
    return found


def test_every_install_k3s_variable_we_set_is_one_install_sh_reads() -> None:
    """A misspelt INSTALL_K3S_* would be ignored by install.sh without a word; also what the roles
    rely on when they set INSTALL_K3S_SKIP_DOWNLOAD: the script then only checks ``${BIN_DIR}/k3s``,
    and its default BIN_DIR is where the roles put the binary, and the unit file it writes is the
    one the roles look for to tell whether k3s is installed."""
    lines = INSTALL_SH.read_text().splitlines()
    code = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    read = set(re.findall(r"\$\{?(INSTALL_K3S_\w+)", code))
    ours = _install_k3s_variables_set()
    assert {"INSTALL_K3S_SKIP_DOWNLOAD", "INSTALL_K3S_VERSION", "INSTALL_K3S_EXEC"} <= set(ours)
    assert {name: where for name, where in ours.items() if name not in read} == {}
    assert "        BIN_DIR=/usr/local/bin\n" in code
    fetch = _install_tasks()["Install the k3s binary (checked against the release's sha256sum file)"]["vars"]
    assert fetch["common_fetch_dest"] == "/usr/local/bin/k3s"
    assert "        SYSTEMD_DIR=/etc/systemd/system\n" in code
    assert "FILE_K3S_SERVICE=${SYSTEMD_DIR}/${SERVICE_K3S}" in code  # ${SYSTEM_NAME}.service
    assert "            SYSTEM_NAME=k3s\n" in code and "            SYSTEM_NAME=k3s-${CMD_K3S}\n" in code
    for role, unit in (("k3s_server", "k3s.service"), ("k3s_agent", "k3s-agent.service")):
        defaults = yaml.safe_load((PLAYBOOKS / f"roles/{role}/defaults/main.yml").read_text())
        assert defaults[f"{role}_unit"] == f"/etc/systemd/system/{unit}"
