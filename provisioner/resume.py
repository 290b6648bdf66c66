"""A re-run of ``create`` on an existing deployment: the recorded inputs are the truth.

A resume that forgets ``-i admin_cidr=...`` must not open SSH to the world on a live cluster, and
one that gives another ``wn_num`` must not half-apply it (the machines stay as they were while the
record says otherwise). So the recorded inputs fill in what the command line leaves out, and an
input the command line gives with another value is refused by name, before anything changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from provisioner.errors import BadInput
from provisioner.spec import ClusterSpec
from provisioner.template.inputs import _as_text


def _is_placeholder(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("{secret.")


def recorded_as_given(recorded: Mapping[str, Any]) -> dict[str, str]:
    """The recorded inputs as ``-i`` values (secret inputs are kept as secrets, not here)."""
    return {name: _as_text(value) for name, value in recorded.items() if not _is_placeholder(value)}


def changed_inputs(recorded: Mapping[str, Any], recorded_secrets: Mapping[str, str], spec: ClusterSpec,
                   given: Mapping[str, str]) -> list[str]:
    """The inputs given on the command line whose value differs from the deployment's record
    (secret values compared, never shown)."""
    changed = []
    explicit = {s.name: s.value for s in spec.secrets if s.explicit}
    for name in given:
        if name not in recorded:
            continue
        if _is_placeholder(recorded[name]) or name in explicit:
            if explicit.get(name) != recorded_secrets.get(name):
                changed.append(f"{name} (a secret: its value differs)")
        elif spec.inputs.get(name) != recorded[name]:
            changed.append(f"{name} (recorded {recorded[name]!r}, given {spec.inputs.get(name)!r})")
    return changed


def refuse_changes(deployment: str, changed: list[str]) -> None:
    """``BadInput`` (exit 2) naming every changed input, or nothing."""
    if changed:
        raise BadInput(f"deployment {deployment} exists with other inputs: {'; '.join(changed)}. A re-run "
                       "resumes the recorded deployment and cannot change them in place: leave them out "
                       "(the recorded values are used), or destroy it and create it again")
