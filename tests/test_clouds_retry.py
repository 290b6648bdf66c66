"""Cloud errors become the typed errors the engine branches on; throttling is retried with jittered
exponential backoff, the rest is not; secrets never reach a message."""

from __future__ import annotations

import socket
import ssl

import pytest
import requests
from libcloud.common.exceptions import BaseHTTPError, RateLimitReachedError
from libcloud.common.types import InvalidCredsError, LibcloudError, MalformedResponseError
from libcloud.compute.types import KeyPairDoesNotExistError

from provisioner.clouds.retry import CloudCalls, classify, scrub
from provisioner.config import ProvisionerSettings
from provisioner.errors import AuthError, CapacityError, CloudError, NotFound, Throttled


@pytest.mark.parametrize(("exc", "kind"), [
    (BaseHTTPError(503, "RequestLimitExceeded: Request limit exceeded."), Throttled),
    (BaseHTTPError(400, "Throttling: Rate exceeded"), Throttled),
    (RateLimitReachedError(429, "Rate limit exceeded"), Throttled),
    (BaseHTTPError(500, "InternalError: An internal error has occurred."), Throttled),
    (BaseHTTPError(502, "Bad gateway"), Throttled),
    (requests.exceptions.ConnectionError("Connection reset by peer"), Throttled),
    (BaseHTTPError(500, "InsufficientInstanceCapacity: We currently do not have sufficient capacity"),
     CapacityError),
    (BaseHTTPError(500, "No valid host was found. There are not enough hosts available."), CapacityError),
    (InvalidCredsError("AuthFailure: AWS could not validate the credentials"), AuthError),
    (BaseHTTPError(401, "The request you have made requires authentication."), AuthError),
    (BaseHTTPError(403, "UnauthorizedOperation: You are not authorized."), AuthError),
    (BaseHTTPError(400, "InvalidInstanceID.NotFound: The instance ID 'i-1' does not exist"), NotFound),
    (BaseHTTPError(404, "Instance could not be found"), NotFound),
    (KeyPairDoesNotExistError("k", None), NotFound),
    (BaseHTTPError(400, "InvalidParameterValue: bad CIDR"), CloudError),
    (MalformedResponseError("Failed to parse XML", body="<html>"), CloudError),
    (LibcloudError("Could not find specified endpoint"), CloudError),
    (ssl.SSLCertVerificationError("certificate verify failed"), CloudError),
    (socket.gaierror(-2, "Name or service not known"), CloudError),
])
def test_cloud_failures_map_to_typed_errors(exc: Exception, kind: type) -> None:
    typed = classify(exc, what="EC2 RunInstances")
    assert type(typed) is kind
    assert str(typed).startswith("EC2 RunInstances: ")


def test_a_programming_error_is_not_a_cloud_error() -> None:
    assert classify(KeyError("x"), what="EC2 X") is None


def test_secrets_are_scrubbed_from_messages() -> None:
    exc = BaseHTTPError(400, "InvalidParameter: key AKIAEXAMPLE1234 with secret wJalrXUtnFEMI is bad")
    typed = classify(exc, what="EC2 X", secrets=["AKIAEXAMPLE1234", "wJalrXUtnFEMI", None, ""])
    assert "AKIAEXAMPLE1234" not in str(typed) and "wJalrXUtnFEMI" not in str(typed)
    assert scrub("token abc", ["abc"]) == "token abc"  # too short to be a secret: left alone


def _flaky(failures: list[Exception]) -> object:
    def call() -> str:
        if failures:
            raise failures.pop(0)
        return "done"
    return call


def test_throttling_is_retried_with_growing_jittered_waits() -> None:
    slept: list[float] = []
    settings = ProvisionerSettings(api_retries=8, retry_base_s=1.0, retry_max_s=20.0)
    calls = CloudCalls("EC2", settings, sleep=slept.append)
    failures: list[Exception] = [BaseHTTPError(503, "RequestLimitExceeded: slow down") for _ in range(6)]
    assert calls("RunInstances", _flaky(failures)) == "done"
    assert len(slept) == 6 and all(0 <= s <= 20.0 for s in slept)
    assert max(slept[3:]) > 1.0  # the cap grows (2**n s) while each wait is random below it


def test_retries_stop_after_api_retries_attempts() -> None:
    slept: list[float] = []
    calls = CloudCalls("EC2", ProvisionerSettings(api_retries=3, retry_base_s=0.1), sleep=slept.append)
    failures: list[Exception] = [BaseHTTPError(503, "Unavailable") for _ in range(5)]
    with pytest.raises(Throttled, match="Unavailable"):
        calls("RunInstances", _flaky(failures))
    assert len(slept) == 2 and len(failures) == 2


@pytest.mark.parametrize("exc", [BaseHTTPError(500, "InsufficientInstanceCapacity: none"),
                                 InvalidCredsError("AuthFailure"), BaseHTTPError(400, "InvalidParameter")])
def test_other_errors_are_not_retried(exc: Exception) -> None:
    slept: list[float] = []
    failures = [exc]
    with pytest.raises(CloudError):
        CloudCalls("EC2", ProvisionerSettings(), sleep=slept.append)("X", _flaky(failures))
    assert slept == []
