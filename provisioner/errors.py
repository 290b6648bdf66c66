"""One root exception and the few kinds callers branch on.

The library raises these; only ``provisioner.cli`` turns them into messages and exit codes:
``BadInput`` (and subclasses) exit 2 before anything changed, every other ``OscarDeployError`` exits 1.
"""

from __future__ import annotations


class OscarDeployError(Exception):
    """Root of every error the tool raises on purpose."""

    exit_code = 1


class BadInput(OscarDeployError):
    """The user's input is wrong (arguments, template, inputs, config, credentials file).

    Raised before any cloud call or state change, so nothing needs undoing.
    """

    exit_code = 2


class TemplateError(BadInput):
    """A TOSCA template (or its inputs) is invalid. ``where`` names the file, ``culprit`` the node,
    input or property, so the message tells the operator exactly what to fix."""

    def __init__(self, message: str, *, where: str | None = None, culprit: str | None = None) -> None:
        self.where = where
        self.culprit = culprit
        parts = []
        if where:
            parts.append(where)
        if culprit:
            parts.append(culprit)
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class ConfigError(BadInput):
    """The configuration file or an ``OSCAR_DEPLOY_*`` override is invalid."""


class CredentialsError(BadInput):
    """Cloud credentials are missing or the auth file is malformed."""


class StateError(OscarDeployError):
    """The state store cannot be used (locked by another run, unknown deployment, newer schema)."""


class NotFound(OscarDeployError):
    """A deployment, node or cloud resource does not exist."""


class CloudError(OscarDeployError):
    """A cloud call failed for good (after retries)."""


class CapacityError(CloudError):
    """The cloud has no capacity for this size or zone; the engine falls back to the next one."""


class Throttled(CloudError):
    """The cloud asked us to slow down (or answered 5xx); retried with backoff."""


class AuthError(CloudError):
    """The cloud rejected the credentials."""


class RemoteError(OscarDeployError):
    """SSH or Ansible failed on a host; the message names the host and the task."""
