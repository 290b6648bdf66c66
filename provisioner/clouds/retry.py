"""Cloud call failures: what kind they are, and retrying the ones that pass.

Every libcloud call of a driver goes through ``CloudCalls``: an error from libcloud (or the HTTP
layer under it) becomes one of the typed errors of ``provisioner.errors`` the engine branches on,
and a ``Throttled`` one (rate limits, 5xx, a dropped connection) is tried again with exponential
backoff and full jitter (tenacity's ``wait_random_exponential``), ``api_retries`` attempts in all.
So a cloud that refuses one call in five still gets the work done: eight attempts all failing has
a chance of 0.2⁸.

Messages carry the cloud's own text (``EC2 RunInstances: InsufficientInstanceCapacity: ...``) with
every credential value scrubbed out, and the libcloud exception is not chained (``from None``), so
not even a ``-v`` traceback shows a request that could hold a secret.
"""

from __future__ import annotations

import logging
import re
import socket
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

import tenacity

from provisioner.config import ProvisionerSettings
from provisioner.errors import AuthError, CapacityError, CloudError, NotFound, OscarDeployError, Throttled

log = logging.getLogger(__name__)
T = TypeVar("T")

_CAPACITY = re.compile(
    r"Insufficient(Instance|Host|ReservedInstance)?Capacity|No valid host", re.IGNORECASE)
_THROTTLE = re.compile(
    r"RequestLimitExceeded|Throttling|ThrottlingException|Rate exceeded|TooManyRequests|"
    r"\bUnavailable\b|ServiceUnavailable|InternalError|InternalFailure|over ?limit", re.IGNORECASE)
_AUTH = re.compile(
    r"AuthFailure|InvalidClientTokenId|SignatureDoesNotMatch|UnauthorizedOperation|OptInRequired|"
    r"Unauthorized|The request you have made requires authentication", re.IGNORECASE)
_NOT_FOUND = re.compile(r"\b[A-Za-z.]*NotFound\b|does not exist|could not be found|not found", re.IGNORECASE)


def _status_of(exc: BaseException) -> int | None:
    for attr in ("code", "http_code", "status"):
        value = getattr(exc, attr, None)
        if isinstance(value, int):
            return value
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _text_of(exc: BaseException) -> str:
    for attr in ("message", "value"):
        value = getattr(exc, attr, None)
        if isinstance(value, str) and value:
            return value
    return str(exc) or type(exc).__name__


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every (non-trivial) secret value replaced by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def _is_tls_error(exc: BaseException) -> bool:
    """A certificate or handshake failure: trying again gives the same answer, so it is not a
    network hiccup (requests' ``SSLError`` is a ``ConnectionError``, which would be retried)."""
    import ssl

    try:
        import requests

        if isinstance(exc, requests.exceptions.SSLError):
            return True
    except ImportError:  # pragma: no cover - libcloud depends on requests
        pass
    return isinstance(exc, ssl.SSLError)


def _is_network_error(exc: BaseException) -> bool:
    try:
        import requests

        if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
            return True
    except ImportError:  # pragma: no cover - libcloud depends on requests
        pass
    return isinstance(exc, (ConnectionError, socket.timeout, TimeoutError))


def _causes(exc: BaseException) -> Iterable[BaseException]:
    """``exc`` and what it wraps: requests → urllib3's MaxRetryError.reason → the socket error."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend(e for e in (current.__cause__, current.__context__, getattr(current, "reason", None),
                                *current.args) if isinstance(e, BaseException))


def _endpoint_of(exc: BaseException) -> str:
    """``host:port`` the failed request went to, when the exception says."""
    from urllib.parse import urlsplit

    for cause in _causes(exc):
        url = getattr(getattr(cause, "request", None), "url", None) or getattr(cause, "url", None)
        pool = getattr(cause, "pool", None) or getattr(cause, "conn", None)
        if isinstance(url, str) and "://" in url:
            parts = urlsplit(url)
            return f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
        if pool is not None and getattr(pool, "host", None):
            return f"{pool.host}:{pool.port}"
    return "the endpoint"


def _unreachable(exc: BaseException, what: str) -> CloudError | None:
    """A connection that no retry will fix (refused, a name that does not resolve, TLS spoken to a
    plain-HTTP port), said in one line with what to check; None otherwise (timeouts and resets stay
    ``Throttled`` and are retried)."""
    import ssl

    causes = list(_causes(exc))
    where = _endpoint_of(exc)
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return CloudError(f"{what}: cannot connect to {where}: connection refused; check the endpoint "
                          f"(the auth file's host, the region) and that this machine's network reaches it")
    if any(isinstance(c, socket.gaierror) for c in causes):
        return CloudError(f"{what}: cannot resolve the host of {where}; check the endpoint's spelling "
                          f"(the auth file's host, the region) and DNS")
    tls = next((c for c in causes if isinstance(c, ssl.SSLError)), None)
    if tls is not None and getattr(tls, "reason", None) == "WRONG_VERSION_NUMBER":
        return CloudError(f"{what}: TLS with {where} failed (WRONG_VERSION_NUMBER); the endpoint does not "
                          f"speak TLS: if it is plain HTTP, write its URL with http://")
    return None  # certificate failures: classify's TLS message, with the CA settings to give


def classify(exc: BaseException, *, what: str, secrets: Iterable[str | None] = ()) -> OscarDeployError | None:
    """The typed error for a failed cloud call, or None when ``exc`` is not a cloud failure (a bug).

    ``what`` names the call (``EC2 RunInstances``) and starts the message; the cloud's text follows,
    scrubbed of ``secrets``. Order matters: EC2 answers a capacity shortage with HTTP 500, which
    must not be taken for a transient 5xx.
    """
    if isinstance(exc, OscarDeployError):
        return exc
    from libcloud.common.exceptions import BaseHTTPError
    from libcloud.common.types import InvalidCredsError, LibcloudError

    status = _status_of(exc)
    text = scrub(_text_of(exc), secrets)
    message = f"{what}: {text}"
    if (_is_network_error(exc) or isinstance(exc, OSError)) and (
            unreachable := _unreachable(exc, what)) is not None:
        return unreachable
    if _is_tls_error(exc):
        return CloudError(f"{what}: TLS: the cloud's certificate cannot be verified "
                          f"({scrub(str(exc), secrets)}); if the site's CA is not in the system's store, "
                          "give its CA bundle (cacert in the auth file or clouds.yaml, OS_CACERT)")
    if _is_network_error(exc):
        return Throttled(f"{what}: cannot reach the cloud: {scrub(str(exc), secrets)}")
    if isinstance(exc, OSError):  # TLS, DNS and other socket failures: no point in retrying
        return CloudError(f"{what}: {scrub(str(exc), secrets) or type(exc).__name__}")
    if not isinstance(exc, (BaseHTTPError, LibcloudError)):
        return None
    if _CAPACITY.search(text):
        return CapacityError(message)
    if isinstance(exc, InvalidCredsError) or status == 401 or _AUTH.search(text):
        return AuthError(message)
    if status == 429 or (status is not None and status >= 500) or _THROTTLE.search(text):
        return Throttled(message)
    if status == 404 or _NOT_FOUND.search(text) or type(exc).__name__.endswith(("DoesNotExistError",
                                                                               "NotFoundError")):
        return NotFound(message)
    return CloudError(message)


class CloudCalls:
    """Runs one driver's cloud calls: typed errors, and retries of ``Throttled`` ones.

    ``sleep`` is injectable so tests of the policy need not wait; drivers use the real one.
    """

    def __init__(self, provider: str, settings: ProvisionerSettings, secrets: Iterable[str | None] = (),
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.provider = provider
        self.settings = settings
        self._secrets = tuple(s for s in secrets if s)
        self._sleep = sleep

    def add_secrets(self, secrets: Iterable[str | None]) -> None:
        """Scrub these values too (credentials renewed since the driver was made)."""
        self._secrets = tuple(dict.fromkeys([*self._secrets, *(s for s in secrets if s)]))

    def error(self, exc: BaseException, what: str) -> OscarDeployError | None:
        return classify(exc, what=f"{self.provider} {what}", secrets=self._secrets)

    def once(self, what: str, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """One attempt; a cloud failure comes out typed."""
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            typed = self.error(exc, what)
            if typed is None or typed is exc:
                raise
            raise typed from None

    def __call__(self, what: str, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """``fn(*args, **kwargs)``, retried while the cloud throttles, up to ``api_retries`` attempts."""
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(Throttled),
            stop=tenacity.stop_after_attempt(max(1, self.settings.api_retries)),
            wait=tenacity.wait_random_exponential(multiplier=self.settings.retry_base_s,
                                                  max=self.settings.retry_max_s),
            sleep=self._sleep,
            reraise=True,
            before_sleep=self._log_retry,
        )
        return retrying(self.once, what, fn, *args, **kwargs)

    @staticmethod
    def _log_retry(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        log.info("%s; attempt %d failed, retrying in %.1f s", exc, state.attempt_number, delay)
