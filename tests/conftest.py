"""Shared pytest fixtures; each harness piece adds its own (DESIGN §4)."""

from collections.abc import Iterator
from typing import Any

import pytest


# --- cloud test harness (DESIGN §4): EC2 emulator and OpenStack test server ---------------------------
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
