"""The engine's launch against EC2 as it behaves: a machine EC2 terminates during launch (for want
of capacity) is replaced at once by the next attempt, not waited for until the create timeout."""

from __future__ import annotations

from typing import Any

from provisioner.config import Settings
from provisioner.engine import create, destroy
from tests.test_engine_clouds import REGION, aws_request, factory, live, settings, store  # noqa: F401


def test_a_machine_terminated_during_launch_is_replaced_at_once(
        ec2_emulator: Any, store: Any, settings: Settings, factory: Any) -> None:  # noqa: F811
    ec2_emulator.set_strict({"launch_terminations": [{"code": "Server.InsufficientInstanceCapacity",
                                                      "message": "Insufficient capacity.", "remaining": 1}]})
    # the launch waits at most create_timeout_s for a machine to run: finishing at all means it did
    # not wait for the one EC2 had terminated (which no listing shows again)
    dep = create(store, aws_request(settings, "lost", wn_num=1), factory, settings)
    inventory = ec2_emulator.inventory(REGION)
    ended = [i for i in inventory["instances"] if i["state_reason"] == "Server.InsufficientInstanceCapacity"]
    assert len(ended) == 1 and ended[0]["state"] == "terminated"
    running = live(inventory, dep.id)["instances"]
    assert len(running) == 2 and {n.state for n in store.nodes(dep.id)} == {"running"}
    assert any(e.kind == "node-lost" and ended[0]["id"] in e.message for e in store.events(dep.id))
    destroy(store, dep.id, factory)
    assert all(not items for items in live(ec2_emulator.inventory(REGION), dep.id).values())
