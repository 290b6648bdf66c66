"""Shared pytest fixtures; each harness piece adds its own."""

import os
from collections.abc import Iterator
from typing import Any

import pytest

# botocore's credential chain ends at the instance metadata service; no test runs on EC2, so it is
# not asked (each ask would wait for its timeout, and 169.254.169.254 is not ours to call)
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")


# --- cloud test harness: EC2 emulator and OpenStack test server ---------------------------
@pytest.fixture(scope="session")
def ec2_emulator_server() -> Iterator[Any]:
    """One EC2 emulator for the session; tests normally want `ec2_emulator` (reset per test)."""
    from tests.harness.ec2 import Ec2Emulator

    with Ec2Emulator() as emulator:
        yield emulator


@pytest.fixture
def ec2_emulator(ec2_emulator_server: Any) -> Any:
    """The EC2 emulator, emptied and without faults: `driver_kwargs(region)`, `set_faults`, `inventory`."""
    ec2_emulator_server.reset()
    return ec2_emulator_server


@pytest.fixture(scope="session")
def openstack_server_session() -> Iterator[Any]:
    """One OpenStack test server for the session; tests normally want `openstack_server`."""
    from tests.harness.openstack import OpenStackServer

    with OpenStackServer() as server:
        yield server


@pytest.fixture
def openstack_server(openstack_server_session: Any) -> Any:
    """The OpenStack test server, back to its seeded state: `driver_kwargs()`, `set_faults`, `state`."""
    openstack_server_session.reset()
    return openstack_server_session


# --- board hosts: sshd in namespaces on 127.0.0.N:2222, for Ansible ----------------------
@pytest.fixture(scope="module")
def board_hosts() -> Iterator[Any]:
    """Three running boards (`board-1`..`board-3`, logins `root` and `pi`) shared by a test module;
    a test that powers one off powers it on again. Skipped with the reason when the machine can't."""
    from tests.harness.boards import availability, boards

    if reason := availability():
        pytest.skip(reason)
    with boards(3, users=("root", "pi")) as fleet:
        yield fleet


@pytest.fixture
def board_factory() -> Iterator[Any]:
    """`board_factory(count, users=("root",), prefix="board")` starts boards for this test only."""
    from contextlib import ExitStack

    from tests.harness.boards import availability, boards

    if reason := availability():
        pytest.skip(reason)
    with ExitStack() as stack:
        yield lambda count=3, **kw: stack.enter_context(boards(count, **kw))


# --- Kubernetes API test server: the real kubernetes client over HTTP ---------------------
@pytest.fixture
def kube_api_factory() -> Iterator[Any]:
    """`kube_api_factory(**kwargs)` starts a `KubeApiServer(**kwargs)` (e.g. `history=10`) for this test."""
    from contextlib import ExitStack

    from tests.harness.kube_api import KubeApiServer, Timing

    def start(**kwargs: Any) -> Any:
        kwargs.setdefault("timing", Timing(time_scale=0.01, period_s=0.02))
        return stack.enter_context(KubeApiServer(**kwargs))

    with ExitStack() as stack:
        yield start


@pytest.fixture
def kube_api(kube_api_factory: Any) -> Any:
    """A fresh Kubernetes API test server with a fast clock (time_scale 0.01: a 30 s pod runs 0.3 s):
    `url`, `api_client()`, `write_kubeconfig(path)`, `register_node(...)`, `create_pods(...)`, `pods()`."""
    return kube_api_factory()


@pytest.fixture
def kube_client(kube_api: Any) -> Iterator[Any]:
    """A `kubernetes.client.ApiClient` for `kube_api`, closed after the test."""
    api = kube_api.api_client()
    yield api
    api.close()
