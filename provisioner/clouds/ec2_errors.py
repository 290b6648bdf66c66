"""EC2's error codes as the engine must read them, on top of ``clouds.retry``'s generic typing.

- **Capacity for that (type, zone)**, so the engine tries the next size or zone: Karpenter's
  ``unfulfillableCapacityErrorCodes`` (aws/karpenter-provider-aws ``pkg/errors/errors.go``:
  ``InsufficientInstanceCapacity``, ``Unsupported`` — the type is not offered in that zone —,
  ``UnfulfillableCapacity``, ``MaxSpotInstanceCountExceeded``) and ``InsufficientFreeAddressesInSubnet``
  (a full subnet: Juju's EC2 provider retries another zone's subnet on it, ``isSubnetConstrainedError``);
  and an instance EC2 terminates during launch with a ``Server.InsufficientInstanceCapacity`` state
  reason (``state_reason_is_capacity``).
- **Quotas fail fast** with AWS's own message (``VcpuLimitExceeded``, ``InstanceLimitExceeded``):
  another size or zone would hit the same account limit.
- **``UnauthorizedOperation``** carries an encoded message only the account can read: the error says
  how (``aws sts decode-authorization-message``).
"""

from __future__ import annotations

import re

from provisioner.errors import AuthError, CapacityError, CloudError, OscarDeployError

CAPACITY_CODES = ("InsufficientInstanceCapacity", "InsufficientHostCapacity", "Unsupported",
                  "UnfulfillableCapacity", "InsufficientFreeAddressesInSubnet",
                  "MaxSpotInstanceCountExceeded")
QUOTA_CODES = ("VcpuLimitExceeded", "InstanceLimitExceeded", "VolumeLimitExceeded", "AddressLimitExceeded")
LAUNCH_CAPACITY_REASONS = ("Server.InsufficientInstanceCapacity", "Server.InternalError",
                           "Client.VolumeLimitExceeded", "Client.InternalError")
"""State reasons of an instance terminated during launch that another size or zone may not meet
(EC2 user guide, "Instance terminates immediately"); ``Client.InternalError`` is mostly an EBS
encryption key the launch cannot use, which the next attempt reports again, not a crash."""
DECODE_HINT = ("decode the message with: aws sts decode-authorization-message --encoded-message <blob> "
               "(needs sts:DecodeAuthorizationMessage)")


def _code_in(text: str, codes: tuple[str, ...]) -> str | None:
    return next((c for c in codes if re.search(rf"(^|[\s:]){re.escape(c)}\b", text)), None)


def refine(error: OscarDeployError) -> OscarDeployError:
    """The typed error EC2 means by ``error`` (already typed generically by ``clouds.retry``)."""
    text = str(error)
    if not isinstance(error, CapacityError) and _code_in(text, CAPACITY_CODES):
        return CapacityError(text)
    if _code_in(text, QUOTA_CODES):
        return CloudError(f"{text} (an account quota: raise it in the Service Quotas console)")
    if "UnauthorizedOperation" in text and "Encoded authorization failure message" in text:
        return AuthError(f"{text}; {DECODE_HINT}")
    return error


def state_reason_is_capacity(code: str | None) -> bool:
    return bool(code) and code in LAUNCH_CAPACITY_REASONS
