"""The elasticity settings are declared once (``provisioner.elastic_settings``): the ``[elastic]``
configuration, the policy's, the actuator's and the daemon's settings, and the simulator's derive
their keys and defaults from that declaration, and the shipped configuration documents each."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from elastic.actuator import ActuatorSettings
from elastic.daemon import DaemonSettings, settings_from_config
from elastic.model import PolicySettings
from elastic.sim.engine import EngineSettings
from elastic.simulate import OscarSettings
from provisioner.config import ElasticSettings, load_settings
from provisioner.elastic_settings import ELASTIC, namespaces, of_part

REPO = Path(__file__).resolve().parent.parent


def _defaults(cls: type) -> dict[str, object]:
    return {f.name: f.default for f in dataclasses.fields(cls)}


def test_every_part_takes_exactly_its_declared_settings_with_their_defaults() -> None:
    parts = {"policy": PolicySettings, "actuator": ActuatorSettings, "daemon": DaemonSettings}
    for part, cls in parts.items():
        fields = _defaults(cls)
        for knob in of_part(part):
            expected = namespaces(str(knob.default)) if knob.name == "system_namespaces" else knob.default
            assert fields.get(knob.name) == expected, (part, knob.name)
    policy_fields = {f.name for f in dataclasses.fields(PolicySettings)}
    assert policy_fields == {k.name for k in of_part("policy")}  # no policy knob declared elsewhere
    assert [f.name for f in dataclasses.fields(ElasticSettings)] == [k.name for k in ELASTIC]
    simulated = _defaults(OscarSettings)
    assert simulated["tick_s"] == _defaults(DaemonSettings)["tick_s"]
    engine = _defaults(EngineSettings)
    assert (engine["batch_idle_s"], engine["batch_max_s"]) == \
        (_defaults(DaemonSettings)["batch_idle_s"], _defaults(DaemonSettings)["batch_max_s"])


def test_every_configured_value_reaches_the_part_that_reads_it() -> None:
    changed = {}
    for index, knob in enumerate(ELASTIC, start=1):
        if isinstance(knob.default, str):
            changed[knob.name] = "ns-a,ns-b" if knob.name == "system_namespaces" else f"value-{index}"
        else:
            changed[knob.name] = type(knob.default)(knob.default + index)
    daemon = settings_from_config(ElasticSettings(**changed))
    where = {"policy": daemon.policy, "actuator": daemon.actuator, "daemon": daemon}
    for knob in ELASTIC:
        if knob.part == "service":
            continue  # the metrics port: read by the CLI that serves /metrics
        value = getattr(where[knob.part], knob.name)
        expected = namespaces(changed[knob.name]) if knob.name == "system_namespaces" else changed[knob.name]
        assert value == expected, knob.name


def test_the_shipped_configuration_documents_every_setting_with_its_default() -> None:
    text = (REPO / "oscar-deploy.cfg").read_text()
    section = text[text.index("[elastic]"):]
    shipped = load_settings(str(REPO / "oscar-deploy.cfg"), env={}).elastic
    assert shipped == ElasticSettings()
    for knob in ELASTIC:
        assert re.search(rf"^{knob.name} = ", section, re.MULTILINE), knob.name
        if knob.doc:
            assert f"# {knob.doc}\n{knob.name} = " in section, knob.name
