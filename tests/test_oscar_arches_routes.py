"""OSCAR on a cluster of mixed architectures, and OSCAR's exposed services behind k3s's Traefik, checked
against upstream's files (tests/upstream/, provenance in its PROVENANCE.md).

Mixed architectures: OSCAR runs the FaaS supervisor and watchdog from its shared volume, which its
chart's populate job fills with one ``uname -m`` build. The oscar role adds a build per architecture and
dispatchers at the paths OSCAR runs; here the role's manifest is rendered by Ansible, and its dispatch
job and dispatchers run for real (``sh``) on a directory standing in for the volume, with ``uname``
answering as each architecture would.

Exposed services: OSCAR 4.x creates nginx Ingresses (``ingressClassName: nginx``) unless told to make
Gateway API HTTPRoutes; k3s runs Traefik, so the role asks for HTTPRoutes and turns on the Gateway of
k3s's Traefik chart, whose template is read here to see that the Gateway it makes admits them."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.test_configure_helpers import REPO, run_tool

UPSTREAM = REPO / "tests" / "upstream"
PLAYBOOKS = REPO / "playbooks"
ROLE = PLAYBOOKS / "roles" / "oscar"
FACTS = {"oscar_deployment_name": "demo", "oscar_front_address": "198.51.100.7",
         "ansible_host": "198.51.100.7",
         "oscar_dns_name": "", "oscar_components": ["k3s", "minio", "knative", "oscar"],
         "oscar_username": "oscar", "oscar_password": "p" * 24, "minio_access_key": "minio",
         "minio_secret_key": "m" * 24, "minio_api_port": 30300, "minio_console_port": 30303,
         "k3s_server_arch": "amd64", "k3s_manifests_dir": "/unused"}
MARK = "oscar-deploy: supervisor dispatch"


def render(tmp: Path, template: str, **variables: Any) -> tuple[str, dict[str, Any]]:
    """A role template as Ansible renders it (every role's defaults and group_vars), and the oscar
    role's variables it saw."""
    files = [str(p) for p in sorted(PLAYBOOKS.glob("roles/*/defaults/main.yml"))]
    files += [str(PLAYBOOKS / "group_vars/all/main.yml"), str(PLAYBOOKS / "group_vars/all/versions.yml")]
    out, seen = tmp / "out.yaml", tmp / "vars.yaml"
    names = ("oscar_values", "oscar_supervisor_arches", "oscar_gateway_name", "oscar_gateway_namespace",
             "oscar_services_namespace")
    play = [{"name": "Render", "hosts": "localhost", "connection": "local", "gather_facts": False,
             "vars_files": files,
             "tasks": [{"name": "Render", "ansible.builtin.template": {
                           "src": str(ROLE / "templates" / template), "dest": str(out), "mode": "0600"}},
                       {"name": "Variables", "ansible.builtin.copy": {
                           "dest": str(seen), "mode": "0600",
                           "content": "{{ {" + ", ".join(f"'{n}': {n}" for n in names) + "} | to_json }}"}}]}]
    (tmp / "play.yml").write_text(yaml.safe_dump(play))
    # `lookup('file', ...)` in a role template searches the role's files/: give the play that path
    (tmp / "files").symlink_to(ROLE / "files")
    # the deployment's variables as configure passes them: extra vars, above every file
    extra = {**FACTS, **variables, "ansible_python_interpreter": sys.executable}
    (tmp / "extra.json").write_text(json.dumps(extra))
    result = run_tool("ansible-playbook", "-i", "localhost,", "-e", f"@{tmp / 'extra.json'}",
                      str(tmp / "play.yml"), cwd=tmp)
    assert result.returncode == 0, result.stdout + result.stderr
    return out.read_text(), dict(yaml.safe_load(seen.read_text()))


def _chart_file(name: str, path: str) -> str:
    (archive,) = (UPSTREAM / "charts").glob(f"{name}-*.tgz")
    with tarfile.open(archive) as tar:
        handle = tar.extractfile(f"{name}/{path}")
        assert handle is not None
        return handle.read().decode()


# --- mixed architectures ------------------------------------------------------------------------------


def test_only_amd64_and_arm64_get_a_build_and_one_architecture_gets_none(tmp_path: Path) -> None:
    _, seen = render(tmp_path, "oscar-oscar.yaml.j2", oscar_node_arches=["amd64", "arm", "arm64"])
    assert seen["oscar_supervisor_arches"] == ["amd64", "arm64"]  # OSCAR publishes no 32-bit ARM build
    tasks = yaml.safe_load((ROLE / "tasks/manifests.yml").read_text())
    (task,) = [t for t in tasks
               if t.get("ansible.builtin.template", {}).get("src") == "oscar-supervisor-arches.yaml.j2"]
    assert task["when"] == "oscar_supervisor_arches | length > 1"


@pytest.fixture(scope="module")
def arches_manifest(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    text, seen = render(tmp_path_factory.mktemp("arches"), "oscar-supervisor-arches.yaml.j2",
                        oscar_node_arches=["amd64", "arm64"])
    return [d for d in yaml.safe_load_all(text) if d], seen


def test_each_architecture_gets_upstreams_downloader_pinned_to_it(arches_manifest: Any) -> None:
    docs, seen = arches_manifest
    chart_job = yaml.safe_load(_chart_file("oscar", "templates/populate-oscar-volume-job.yaml")
                               .replace("{{ .Values.servicesNamespace | quote }}", "x")
                               .replace("{{ .Values.image.tag }}", "TAG")
                               .replace("{{ .Values.volume.supervisorVersion | quote }}", "SV")
                               .replace("{{ .Values.volume.watchdogVersion | quote }}", "WV"))
    (chart_container,) = chart_job["spec"]["template"]["spec"]["containers"]
    assert "nodeSelector" not in chart_job["spec"]["template"]["spec"]  # upstream's job lands anywhere
    jobs = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Job"}
    per_arch = {name: job for name, job in jobs.items() if not name.startswith("oscar-supervisor-dispatch")}
    assert len(per_arch) == 2
    values = seen["oscar_values"]
    chart_values = yaml.safe_load(_chart_file("oscar", "values.yaml"))
    for arch in ("amd64", "arm64"):
        (job,) = [j for n, j in per_arch.items() if n.startswith(f"oscar-supervisor-{arch}-")]
        assert job["metadata"]["namespace"] == seen["oscar_services_namespace"] == "oscar-svc"
        pod = job["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"kubernetes.io/arch": arch}
        assert pod["tolerations"] == [{"operator": "Exists"}]  # boards and the control plane may be tainted
        (container,) = pod["containers"]
        # the chart's own image and variables, the same versions as the chart's job
        assert container["image"] == chart_container["image"].replace("TAG", values["image"]["tag"])
        env = {e["name"]: e["value"] for e in container["env"]}
        assert set(env) == {e["name"] for e in chart_container["env"]}
        assert env == {"FAAS_SUPERVISOR_VERSION": values["volume"]["supervisorVersion"],
                       "WATCHDOG_VERSION": values["volume"]["watchdogVersion"]}
        assert env["FAAS_SUPERVISOR_VERSION"] == chart_values["volume"]["supervisorVersion"]
        (mount,) = container["volumeMounts"]
        assert (mount["mountPath"], mount["subPath"]) == ("/data", arch)  # the downloader writes /data
        (volume,) = pod["volumes"]
        assert volume["persistentVolumeClaim"]["claimName"] == "oscar-pvc"


def test_job_names_follow_the_chart_values_but_never_its_secrets(tmp_path: Path) -> None:
    def names(**variables: Any) -> set[str]:
        sub = tmp_path / str(len(list(tmp_path.iterdir())))
        sub.mkdir()
        text, _ = render(sub, "oscar-supervisor-arches.yaml.j2", oscar_node_arches=["amd64", "arm64"],
                         **variables)
        return {d["metadata"]["name"] for d in yaml.safe_load_all(text) if d and d["kind"] == "Job"}

    base = names()
    assert names(oscar_password="q" * 24, minio_secret_key="n" * 24) == base
    assert names(oscar_image_tag="9.9.9") != base  # Helm re-runs the chart's job; these run again


def _volume(tmp: Path, dispatch: dict[str, str]) -> tuple[Path, Path]:
    """A directory standing in for oscar-pvc after the per-architecture jobs (each build prints what it
    is), with the chart's job's single-architecture build at the top, and the ConfigMap's files."""
    data, configmap = tmp / "pvc", tmp / "configmap"
    for arch in ("amd64", "arm64"):
        for build in ("supervisor", "alpine/supervisor", "fwatchdog"):
            path = data / arch / build
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f'#!/bin/sh\necho "{arch} {build} $*"\n')
            path.chmod(0o755)
    (data / "alpine").mkdir()
    for build in ("supervisor", "alpine/supervisor", "fwatchdog"):
        (data / build).write_bytes(b"\x7fELF" + b"\0" * 300)  # what the chart's job leaves
        (data / build).chmod(0o755)
    configmap.mkdir()
    for key, value in dispatch.items():
        (configmap / key).write_text(value)
    return data, configmap


def _uname(tmp: Path, machine: str) -> dict[str, str]:
    bin_dir = tmp / f"uname-{machine}"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "uname"
    fake.write_text(f"#!/bin/sh\necho {machine}\n")
    fake.chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin"}


def _dispatch_job(configmap: Path, data: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(["sh", str(configmap / "run.sh")], text=True, stdout=subprocess.PIPE,
                            env={"PATH": "/usr/bin:/bin", "DATA": str(data), "DISPATCH": str(configmap),
                                 **env})


def test_every_service_pod_runs_the_build_of_its_own_node(arches_manifest: Any, tmp_path: Path) -> None:
    docs, _ = arches_manifest
    (configmap_doc,) = [d for d in docs if d["kind"] == "ConfigMap"]
    data, configmap = _volume(tmp_path, configmap_doc["data"])
    job = _dispatch_job(configmap, data, WATCH="0")
    out, _ = job.communicate(timeout=30)
    assert job.returncode == 0
    assert sorted(out.split("\n")) == ["", "dispatcher at alpine/supervisor", "dispatcher at fwatchdog",
                                       "dispatcher at supervisor"]
    for machine, arch in (("x86_64", "amd64"), ("aarch64", "arm64")):
        for build in ("supervisor", "alpine/supervisor", "fwatchdog"):
            ran = subprocess.run([str(data / build), "--x", "a b"], env=_uname(tmp_path, machine),
                                 capture_output=True, text=True, timeout=10)
            assert (ran.returncode, ran.stdout) == (0, f"{arch} {build} --x a b\n")
    refused = subprocess.run([str(data / "supervisor")], env=_uname(tmp_path, "armv7l"), capture_output=True,
                             text=True, timeout=10)
    assert refused.returncode == 126 and "no supervisor build for armv7l" in refused.stderr
    assert stat.S_IMODE(os.stat(data / "supervisor").st_mode) == 0o755


def test_the_dispatchers_come_back_when_the_charts_job_writes_over_them(arches_manifest: Any,
                                                                        tmp_path: Path) -> None:
    docs, _ = arches_manifest
    (configmap_doc,) = [d for d in docs if d["kind"] == "ConfigMap"]
    data, configmap = _volume(tmp_path, configmap_doc["data"])
    job = _dispatch_job(configmap, data, WATCH="3", INTERVAL="1")
    deadline = time.monotonic() + 10
    while MARK not in (data / "supervisor").read_bytes()[:200].decode(errors="replace"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    (data / "supervisor").write_bytes(b"\x7fELF" + b"\0" * 300)  # Helm upgraded the chart meanwhile
    job.communicate(timeout=30)
    assert job.returncode == 0
    assert MARK in (data / "supervisor").read_text()
    assert not list(data.glob("*.oscar-deploy"))  # no temporary file left behind


def test_the_dispatched_paths_are_the_ones_oscar_runs_and_upstreams_downloader_writes() -> None:
    service = (UPSTREAM / "oscar-service.go").read_text()
    assert re.search(r'VolumePath = "/oscar/bin"', service)
    assert re.search(r'SupervisorName = "supervisor"', service)
    alpine = re.search(r'AlpineDirectory = "(\w+)"', service)
    watchdog = re.search(r'WatchdogName = "(\w+)"', service)
    assert alpine and watchdog
    oscar_runs = {"supervisor", f"{alpine.group(1)}/supervisor", watchdog.group(1)}
    downloader = (UPSTREAM / "oscar-bin-downloader.sh").read_text()
    writes = {"supervisor"} if "cp -r /tmp/supervisor/* /data" in downloader else set()
    if "cp -r /tmp/alpine/supervisor/* /data/alpine" in downloader:
        writes.add("alpine/supervisor")
    writes |= set(re.findall(r"-O /data/(\w+)", downloader))
    job = (ROLE / "files/oscar-supervisor-dispatch-job.sh").read_text()
    dispatched = {pair.split(":")[0] for pair in re.search(r"for pair in (.+); do", job).group(1).split()}  # type: ignore[union-attr]
    assert oscar_runs == writes == dispatched == {"supervisor", "alpine/supervisor", "fwatchdog"}
    assert 'ARCH=$(uname -m)' in downloader  # one build, by the node the job lands on


# --- exposed services through Traefik ------------------------------------------------------------------


def test_oscar_in_ingress_mode_would_make_nginx_ingresses_so_it_makes_httproutes() -> None:
    expose = (UPSTREAM / "oscar-expose.go").read_text()
    assert 'ingressClassName := "nginx"' in expose
    assert '"nginx.ingress.kubernetes.io/rewrite-target"' in expose
    assert 'routeKindHTTPRoute = "httproute"' in expose
    deployment = _chart_file("oscar", "templates/oscar-deployment.yaml")
    for env, value in (("EXPOSED_SERVICES_ROUTE_KIND", ".Values.exposedServices.routeKind"),
                       ("HTTPROUTE_GATEWAY_NAME", ".Values.httproute.gateway.name"),
                       ("HTTPROUTE_GATEWAY_NAMESPACE", ".Values.httproute.gateway.namespace")):
        assert re.search(rf"- name: {env}\n\s+value: {{{{ {re.escape(value)} \| quote }}}}", deployment), env


def test_the_gateway_oscar_names_exists_and_admits_routes_from_its_services_namespace(tmp_path: Path) -> None:
    text, seen = render(tmp_path, "oscar-traefik-gateway.yaml.j2")
    values = seen["oscar_values"]
    assert values["exposedServices"]["routeKind"] == "httproute"
    assert values["httproute"]["create"] is False  # OSCAR's own API stays on its Ingress
    config, certificate = [d for d in yaml.safe_load_all(text) if d]
    assert (config["kind"], config["metadata"]["name"], config["metadata"]["namespace"]) == (
        "HelmChartConfig", "traefik", "kube-system")  # k3s's packaged Traefik HelmChart
    ours = yaml.safe_load(config["spec"]["valuesContent"])
    chart = yaml.safe_load((UPSTREAM / "traefik/values.yaml").read_text())
    template = (UPSTREAM / "traefik/gateway.yaml").read_text()
    assert chart["providers"]["kubernetesGateway"]["enabled"] is False  # off unless turned on
    assert ours["providers"]["kubernetesGateway"]["enabled"] is True
    assert "if and (.Values.gateway).enabled (.Values.providers.kubernetesGateway).enabled" in template
    # the Gateway's name and namespace as the chart's template makes them, and as OSCAR is told
    assert 'default "traefik-gateway" .Values.gateway.name' in template
    assert 'default ( include "traefik.namespace" . ) .Values.gateway.namespace' in template
    assert ours["gateway"]["name"] == values["httproute"]["gateway"]["name"] == "traefik-gateway"
    assert "namespace" not in ours["gateway"]
    assert values["httproute"]["gateway"]["namespace"] == config["metadata"]["namespace"]
    ports = {p["port"] for p in chart["ports"].values() if isinstance(p, dict) and "port" in p}
    for name, listener in ours["gateway"]["listeners"].items():
        assert listener["port"] in ports, name  # the template fails on a port the chart does not declare
        # Gateway API admits routes from the Gateway's own namespace only unless allowedRoutes says so
        assert listener["namespacePolicy"] == {"from": "All"}, name
        if listener["protocol"] == "HTTPS":
            (ref,) = listener["certificateRefs"]  # the template fails without one
            assert ref["name"] == certificate["spec"]["secretName"]
    assert {listener["protocol"] for listener in ours["gateway"]["listeners"].values()} == {"HTTP", "HTTPS"}
    assert certificate["kind"] == "Certificate"
    assert certificate["metadata"]["namespace"] == "kube-system"  # a Gateway reads Secrets of its namespace
    assert certificate["spec"]["ipAddresses"] == ["198.51.100.7"]


def test_with_a_dns_name_the_gateways_certificate_is_for_it(tmp_path: Path) -> None:
    text, _ = render(tmp_path, "oscar-traefik-gateway.yaml.j2", oscar_dns_name="oscar.example.org")
    _, certificate = [d for d in yaml.safe_load_all(text) if d]
    assert certificate["spec"]["dnsNames"] == ["oscar.example.org"]
    assert "ipAddresses" not in certificate["spec"]
