"""What ``show``, ``outputs`` and ``list`` say about a deployment: pure functions over the record.

Outputs are the template's, with their placeholders filled from the recorded nodes
(``{front.public_address}``, ``{wn.private_address.1}``) and secrets (``{secret.NAME}``). An output
built from a secret is masked unless the caller asks for secrets; so are secret values in ``show``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from provisioner.plan import MASK
from provisioner.record import Board, DeploymentRecord, read_record
from provisioner.state import Deployment, Event, Node

_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_.-]+)\}")


def _first(values: Any) -> str | None:
    return str(values[0]) if isinstance(values, list) and values else None


def node_attribute(nodes: Sequence[Node], node: str, attribute: str, index: int = 0) -> str | None:
    """The value of ``{node.attribute[.index]}`` from the recorded nodes, or None when unknown."""
    members = [n for n in nodes if n.group == node]
    if index >= len(members):
        return None
    member = members[index]
    public = _first(member.addresses.get("public"))
    private = _first(member.addresses.get("private"))
    if attribute == "public_address":
        return public or private
    if attribute in ("private_address", "ip_address"):
        return private or public
    if attribute == "tosca_name":
        return member.group
    if attribute == "tosca_id":
        return member.cloud_id or member.name
    if attribute == "state":
        return member.state
    return None


def fill(text: str, nodes: Sequence[Node], secrets: Mapping[str, str],
         local: Mapping[str, str] | None = None) -> str:
    """``text`` with every placeholder it can fill filled; unknown ones stay as they are. ``local``
    fills what lives on the operator's machine (``{deployment.kubeconfig}``: the fetched file)."""
    def replace(match: re.Match[str]) -> str:
        if local and match.group(1) in local:
            return local[match.group(1)]
        parts = match.group(1).split(".")
        if parts[0] == "secret" and len(parts) == 2:
            return secrets.get(parts[1], match.group(0))
        if len(parts) in (2, 3):
            index = int(parts[2]) if len(parts) == 3 and parts[2].isdigit() else 0
            value = node_attribute(nodes, parts[0], parts[1], index)
            if value is not None:
                return value
        return match.group(0)

    return _PLACEHOLDER.sub(replace, text)


CONFIGURED = "configured"


def configuration(events: Sequence[Event]) -> str:
    """Whether the services were installed, from the ``configure`` events (oldest first):
    ``not configured`` (``create --no-configure``, or an interrupted run), ``configured``,
    ``configuration failed`` (never finished), or ``configured; last run failed`` (a reconfigure
    failed after an earlier success). A dry run (``reconfigure --check``) changes nothing here."""
    done = False
    last: str | None = None
    for event in events:
        if event.kind == "configure" and event.message.startswith("done"):
            done, last = True, "done"
        elif event.kind == "configure-failed":
            last = "failed"
    if not done:
        return "configuration failed" if last == "failed" else "not configured"
    return CONFIGURED if last == "done" else "configured; last run failed"


def local_values(deployment_dir: Path) -> dict[str, str]:
    """The placeholders filled from the operator's machine: where the kubeconfig was fetched to."""
    from provisioner.configure import KUBECONFIG_FILE

    kubeconfig = deployment_dir / KUBECONFIG_FILE
    return {"deployment.kubeconfig": str(kubeconfig) if kubeconfig.is_file()
            else "(fetched here when the configuration runs)"}


MINIO_API_PORT, MINIO_CONSOLE_PORT = 30300, 30303


def minio_endpoints(record: DeploymentRecord, nodes: Sequence[Node]) -> dict[str, str]:
    """``{deployment.minio_endpoint}`` and ``{deployment.minio_console_endpoint}``: the HTTPS
    endpoints MinIO really has. With a DNS name, Traefik's TLS ingress (``minio.NAME``,
    ``console.minio.NAME``) and no NodePort; without one, the NodePorts where MinIO serves TLS itself
    (reachable from the admin CIDR only), on the front-end's address."""
    if record.dns_name:
        return {"deployment.minio_endpoint": f"https://minio.{record.dns_name}/",
                "deployment.minio_console_endpoint": f"https://console.minio.{record.dns_name}/"}
    front = record.front_end
    address = node_attribute(nodes, front.name, "public_address") if front else None
    if address is None:
        return {}
    props = next((c for c in record.component_properties or () if str(c.get("name", "")).lower() == "minio"),
                 {}).get("properties") or {}
    api = int(props.get("api_port") or MINIO_API_PORT)
    console = int(props.get("console_port") or MINIO_CONSOLE_PORT)
    return {"deployment.minio_endpoint": f"https://{address}:{api}/",
            "deployment.minio_console_endpoint": f"https://{address}:{console}/"}


def outputs(deployment: Deployment, nodes: Sequence[Node], secrets: Mapping[str, str],
            show_secrets: bool = False, configured: bool = True,
            local: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The deployment's outputs, filled in; secret ones masked unless ``show_secrets``. Until the
    configuration ran, nothing behind them answers: ``live`` says so."""
    out = []
    record = read_record(deployment.plan)[0]
    local = {**minio_endpoints(record, nodes), **(local or {})}
    for item in record.outputs:
        value = fill(item.value, nodes, secrets, local) if show_secrets or not item.secret else MASK
        # an endpoint answers once the services are installed; a user name or a path is true already
        out.append({"name": item.name, "value": value, "description": item.description,
                    "secret": item.secret, "live": configured or "://" not in value})
    return out


def node_json(node: Node) -> dict[str, Any]:
    return {"name": node.name, "group": node.group, "provider": node.provider, "region": node.region,
            "cloud_id": node.cloud_id, "state": node.state, "size": node.size, "zone": node.zone,
            "addresses": dict(node.addresses), "created_at": node.created_at}


def summary_json(deployment: Deployment, nodes: Sequence[Node],
                 events: Sequence[Event] = ()) -> dict[str, Any]:
    """One ``list`` entry (``events``: all of the deployment's, for its configuration state)."""
    groups: dict[str, int] = {}
    for node in nodes:
        groups[node.group] = groups.get(node.group, 0) + 1
    return {"id": deployment.id, "name": deployment.name, "status": deployment.status,
            "configuration": configuration(events),
            "created_at": deployment.created_at, "updated_at": deployment.updated_at,
            "locations": [{"provider": p, "region": r} for p, r in deployment.locations],
            "node_count": len(nodes), "groups": groups}


def show_json(deployment: Deployment, nodes: Sequence[Node], events: Sequence[Event],
              secrets: Mapping[str, str], show_secrets: bool = False, recent: int = 30,
              local: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``show -o json`` document: record, nodes, outputs, secrets (masked), the ``recent`` last
    events (``events``: all of them, oldest first)."""
    summary = summary_json(deployment, nodes, events)
    return {
        **summary,
        "templates": list(deployment.templates),
        "credentials": dict(deployment.credentials),
        "record": read_record(deployment.plan)[0].to_dict(),
        "nodes": [node_json(n) for n in nodes],
        "outputs": outputs(deployment, nodes, secrets, show_secrets,
                           configured=summary["configuration"].startswith(CONFIGURED), local=local),
        "secrets": {name: (value if show_secrets else MASK) for name, value in sorted(secrets.items())},
        "events": [{"at": e.at, "kind": e.kind, "message": e.message} for e in events[-recent:]],
    }


def status_text(entry: Mapping[str, Any]) -> str:
    """``created, not configured``: the status a user reads (the configuration only once created)."""
    if entry["status"] == "created":
        return f"created, {entry['configuration']}"
    return str(entry["status"])


NOT_LIVE = "(not live: not configured yet)"


def _table_text(render: Any) -> str:
    import io

    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, width=120, no_color=True, highlight=False, emoji=False)
    render(console)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()).rstrip("\n")


def render_list(entries: Sequence[Mapping[str, Any]]) -> str:
    """The ``list`` table from ``summary_json`` entries."""
    from rich.table import Table

    if not entries:
        return "no deployments"
    table = Table(title="Deployments", title_justify="left")
    for column in ("id", "name", "status", "where", "nodes", "created"):
        table.add_column(column)
    for e in entries:
        where = ", ".join(f"{loc['provider']} {loc['region']}" if loc["region"] else loc["provider"]
                          for loc in e["locations"]) or "edge boards"
        groups = ", ".join(f"{g} {n}" for g, n in e["groups"].items()) or "0"
        table.add_row(e["id"], e["name"], status_text(e), where, groups,
                      e["created_at"][:19].replace("T", " "))
    return _table_text(lambda c: c.print(table))


def render_outputs(items: Sequence[Mapping[str, Any]]) -> str:
    return "\n".join(f"{o['name']}: {o['value']}" + ("" if o.get("live", True) else f" {NOT_LIVE}")
                     for o in items)


def render_show(doc: Mapping[str, Any]) -> str:
    """The ``show`` view of a ``show_json`` document."""
    from rich.table import Table

    def draw(console: Any) -> None:
        console.print(f"{doc['name']} ({doc['id']}): {status_text(doc)}; since {doc['created_at'][:19]}Z")
        console.print("templates: " + (", ".join(doc["templates"]) or "-"))
        nodes = Table(title="Nodes", title_justify="left")
        for column in ("name", "group", "where", "size", "id", "state", "public", "private"):
            nodes.add_column(column, overflow="fold")
        for n in doc["nodes"]:
            where = f"{n['provider']} {n['zone'] or n['region']}" if n["region"] else n["provider"]
            nodes.add_row(n["name"], n["group"], where, n["size"] or "-", n["cloud_id"] or "-", n["state"],
                          ", ".join(n["addresses"].get("public") or []) or "-",
                          ", ".join(n["addresses"].get("private") or []) or "-")
        console.print(nodes)
        if doc["outputs"]:
            outputs = Table(title="Outputs", title_justify="left")
            outputs.add_column("output")
            outputs.add_column("value", overflow="fold")
            for o in doc["outputs"]:
                outputs.add_row(o["name"], o["value"] + ("" if o.get("live", True) else f" {NOT_LIVE}"))
            console.print(outputs)
        if doc["secrets"]:
            secrets = Table(title="Secrets", title_justify="left")
            secrets.add_column("name")
            secrets.add_column("value", overflow="fold")
            for name, value in doc["secrets"].items():
                secrets.add_row(name, value)
            console.print(secrets)
        events = Table(title="Recent events", title_justify="left")
        for column in ("at", "kind", "message"):
            events.add_column(column, overflow="fold")
        for e in doc["events"]:
            events.add_row(e["at"][:19].replace("T", " "), e["kind"], e["message"])
        console.print(events)

    return _table_text(draw)


def boards_left_with_k3s(record: DeploymentRecord) -> list[str]:
    """What ``destroy`` says of adopted edge boards: they are the operator's, so they are never
    destroyed, and they keep k3s until its own uninstall scripts run on them. k3s's install.sh, which
    the k3s roles run with its default ``BIN_DIR``, writes ``${BIN_DIR}/${SYSTEM_NAME}-uninstall.sh``:
    ``k3s-uninstall.sh`` on a server, ``k3s-agent-uninstall.sh`` on an agent."""
    server = [b for g in record.groups if g.provider == "fleet" and g.role == "front-end" for b in g.boards]
    agents = [b for g in record.groups if g.provider == "fleet" and g.role != "front-end" for b in g.boards]
    if not server and not agents:
        return []

    def login(board: Board) -> str:
        port = f" -p {board.ssh_port}" if board.ssh_port != 22 else ""
        return f"ssh{port} {board.ssh_user}@{board.address}"

    lines = [f"the edge boards ({', '.join(b.name for b in (*server, *agents))}) are yours: they were "
             "adopted, not created, so they are left as they are, k3s and its data included. "
             "To remove k3s, run k3s's own uninstall script on each:"]
    lines += [f"  {login(b)} sudo /usr/local/bin/k3s-uninstall.sh" for b in server]
    lines += [f"  {login(b)} sudo /usr/local/bin/k3s-agent-uninstall.sh" for b in agents]
    return lines
