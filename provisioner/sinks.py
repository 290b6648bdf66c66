"""Checks for template values that end up in a command line, a file name or a Kubernetes name.

A value from a template (or ``-i``) is data, but some of it reaches places where text is code:
``ssh`` reads an argument starting with ``-`` as an option (``-oProxyCommand=...`` runs a
command on the operator's machine), a newline in an Ansible variable or a cloud-init document
starts a new key, ``../`` in a file name leaves its directory, and a name over 63 characters is
cut by the cloud and then collides with its neighbour. So each such value is held to the
narrowest grammar its sink accepts, checked once when the template is read, and every function
here returns why a value is refused (``None`` when it is fine) so callers can name the file, the
node and the property.

All patterns are matched whole (``fullmatch``): ``$`` in ``re.match`` also accepts a trailing
newline, which is exactly what must not pass.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re

DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
"""RFC 1123 label, lowercase: a hostname and a Kubernetes node name."""
POSIX_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
"""What ``useradd`` accepts by default (shadow's ``is_valid_user_name``, Debian's ``NAME_REGEX``
``^[a-z][-a-z0-9_]*$``), never starting with ``-``; at most 32 characters (``LOGIN_NAME_MAX``)."""
HOSTNAME = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                      r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?")
MAC = re.compile(r"[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}")
GROUP_NAME = re.compile(r"[a-z0-9]([a-z0-9_-]*[a-z0-9])?")
"""A node group (a cloud worker Compute node's name, a fleet): lowercase letters, digits, ``-`` and
``_`` (the IM's templates use ``_``); it becomes part of cloud resource and Kubernetes node names."""
LABEL_NAME = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
LABEL_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
SAFE_TEXT = re.compile(r"[A-Za-z0-9._@+=,:/-]{1,128}")
"""User names and access keys that the configuration writes into manifests and Helm values."""
IAM_NAME = re.compile(r"[A-Za-z0-9_+=,.@-]{1,128}")
"""An IAM instance profile's name (IAM's ``InstanceProfileName``: ``[\\w+=,.@-]+``, 1-128)."""
PATH_CHARS = re.compile(r"[A-Za-z0-9._@+=,:/~ -]{1,4096}")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")

RESOURCE_PREFIX_LEN = len("oscar-deploy-") + 8 + 1
"""``oscar-deploy-<8 hex>-``: what every cloud resource name of a deployment starts with."""
LONGEST_SUFFIX = len("address")
"""The longest last part of a derived name (``-address``, ``-data``, a node's index, the daemon's
six hex digits)."""
MAX_GROUP_NAME = 63 - RESOURCE_PREFIX_LEN - 1 - LONGEST_SUFFIX
"""The longest group name whose derived names all fit in 63 characters (a DNS label, an EC2 key
pair or security group name people can read) without being cut."""


def dns_label(value: object) -> str | None:
    if not isinstance(value, str) or not DNS_LABEL.fullmatch(value):
        return ("must be one DNS label: at most 63 lowercase letters, digits and '-', starting and "
                "ending with a letter or digit")
    return None


def posix_user(value: object) -> str | None:
    if not isinstance(value, str) or not POSIX_USER.fullmatch(value):
        return ("must be a POSIX user name: lowercase letters, digits, '_' and '-', starting with a "
                "letter or '_', at most 32 characters")
    return None


def host_address(value: object) -> str | None:
    """An IP address or a DNS host name; never something ssh could read as an option."""
    text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if text is not None:
        try:
            ipaddress.ip_address(text)
            return None
        except ValueError:
            if HOSTNAME.fullmatch(text):
                return None
    return "must be an IP address or a DNS host name"


def group_name(value: object) -> str | None:
    if not isinstance(value, str) or not GROUP_NAME.fullmatch(value):
        return ("must be lowercase letters, digits, '-' and '_', starting and ending with a letter or "
                "digit (it becomes part of machine and Kubernetes node names)")
    if len(value) > MAX_GROUP_NAME:
        return (f"is {len(value)} characters; at most {MAX_GROUP_NAME}, so that the names derived from "
                "it fit in 63 characters without being cut")
    return None


def group_label(name: str) -> str:
    """How a group name appears inside resource names (``_`` is not allowed in a DNS label)."""
    return name.replace("_", "-")


def mac_address(value: object) -> str | None:
    if not isinstance(value, str) or not MAC.fullmatch(value):
        return "must be a MAC address such as aa:bb:cc:dd:ee:ff"
    return None


def safe_text(value: object) -> str | None:
    if not isinstance(value, str) or not SAFE_TEXT.fullmatch(value):
        return "must be 1-128 letters, digits and . _ @ + = , : / - (no spaces, quotes or newlines)"
    return None


def iam_name(value: object) -> str | None:
    if not isinstance(value, str) or not IAM_NAME.fullmatch(value):
        return "must be an IAM instance profile name: 1-128 letters, digits and _ + = , . @ -"
    return None


def file_path(value: object) -> str | None:
    """A local file path given to ``ssh -i`` or Ansible: printable, no newline, not an option."""
    if not isinstance(value, str) or not PATH_CHARS.fullmatch(value) or value.startswith("-"):
        return "must be a file path (letters, digits, spaces and . _ @ + = , : / ~ -, not starting with '-')"
    return None


def absolute_path(value: object) -> str | None:
    """A directory on a machine (a mount point): absolute, no ``..``, no spaces or control characters."""
    if (not isinstance(value, str) or not value.startswith("/") or " " in value
            or file_path(value) is not None or ".." in value.split("/")):
        return "must be an absolute path without '..', spaces or quotes, such as /pv"
    return None


def label_key(key: object) -> str | None:
    """A Kubernetes label or taint key: an optional DNS-subdomain prefix and a name (apimachinery's
    ``IsQualifiedName``)."""
    if not isinstance(key, str) or not key:
        return "must be a non-empty Kubernetes label key"
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not LABEL_PREFIX.fullmatch(prefix)):
        return f"key {key!r}: its prefix must be a DNS subdomain"
    if not name or not LABEL_NAME.fullmatch(name):
        return (f"key {key!r} must be at most 63 letters, digits, '-', '_' and '.', starting and "
                "ending with a letter or digit")
    return None


def label_value(value: object) -> str | None:
    """A Kubernetes label value (apimachinery's ``IsValidLabelValue``): empty, or like a name."""
    if not isinstance(value, str) or not LABEL_NAME.fullmatch(value):
        return (f"value {value!r} must be at most 63 letters, digits, '-', '_' and '.', starting and "
                "ending with a letter or digit")
    return None


def taint(value: object) -> str | None:
    """``key=value:Effect`` or ``key:Effect``, as k3s ``--node-taint`` takes it."""
    match = re.fullmatch(r"([^=:]+)(?:=([^:]*))?:([A-Za-z]+)", value) if isinstance(value, str) else None
    if match is None:
        return f"taint {value!r} must be 'key=value:Effect'"
    why = label_key(match[1]) or (label_value(match[2]) if match[2] else None)
    if why:
        return f"taint {value!r}: {why}"
    if match[3] not in TAINT_EFFECTS:
        return f"taint {value!r}: the effect must be one of {', '.join(TAINT_EFFECTS)}"
    return None


def short_hash(text: str, length: int = 6) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]
