"""What ``daemon --deployment`` hands the elastic daemon, read from the state file on the operator's
side: the deployment's record with its launch specs complete, where its credentials come from, and
the join token. The daemon itself never opens the state file (an import-linter contract)."""

from __future__ import annotations

import contextlib

from provisioner.cloudinit import join_token
from provisioner.engine.keys import SSH_KEY_SECRET, public_key_of
from provisioner.errors import NotFound
from provisioner.record import DaemonDeployment, DeploymentRecord, server_url
from provisioner.state import StateStore


def front_end_address(store: StateStore, deployment_id: str, record: DeploymentRecord) -> str | None:
    """The address workers reach the k3s server at: the front-end's private one, else its public one."""
    front = record.front_end
    if front is None:
        return None
    for node in store.nodes(deployment_id, front.name):
        found = [*(node.addresses.get("private") or []), *(node.addresses.get("public") or [])]
        if found:
            return str(found[0])
    return None


def with_launch_inputs(store: StateStore, deployment_id: str, record: DeploymentRecord) -> DeploymentRecord:
    """``record`` with the key pair's public key and the k3s server's URL in its launch specs, as far
    as the state file knows them yet."""
    public_key = None
    with contextlib.suppress(NotFound):  # NotFound: no cloud machine was ever planned
        public_key = public_key_of(store.secret(deployment_id, SSH_KEY_SECRET),
                                   f"oscar-deploy-{deployment_id}")
    address = front_end_address(store, deployment_id, record)
    return record.with_launch(public_key=public_key, server_url=server_url(address) if address else None)


def daemon_deployment(store: StateStore, ref: str) -> DaemonDeployment:
    """Deployment ``ref``'s hand-off to the daemon (a record made before ``create`` wrote the launch
    inputs gets them from the state file here)."""
    dep = store.get(ref)
    record = with_launch_inputs(store, dep.id, store.record(dep.id))
    try:  # the agent token (k3s's secure form): workers the daemon makes never hold the server token
        token = join_token(store, dep.id)
    except NotFound:
        token = ""
    return DaemonDeployment(id=dep.id, name=dep.name, record=record, credentials=dict(dep.credentials),
                            token=token)
