"""The OpenStack APIs' wire shapes: requests, responses and each service's error document."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

ERROR_STATUS = {
    "overLimit": 429,
    "computeFault": 500,
    "ServiceUnavailable": 503,
    "NoValidHost": 500,
    "MaxRetriesExceeded": 500,
    "LostAnswer": 504,
}
ERROR_MESSAGES = {
    "overLimit": "Rate limit exceeded: try again later.",
    "computeFault": "Unexpected API Error. Please report this at http://bugs.launchpad.net/nova/",
    "ServiceUnavailable": "The server is currently unavailable. Please try again at a later time.",
    "NoValidHost": "No valid host was found. There are not enough hosts available.",
    # nova/exception.py MaxRetriesExceeded (a NoValidHost): what a GPU host that fails the build leaves
    "MaxRetriesExceeded": "Exceeded maximum number of retries. Exhausted all hosts available for retrying "
    "build failures for instance.",
    # the service acted, then the reply was lost on the way back (a proxy's gateway timeout)
    "LostAnswer": "Gateway Time-out",
}


class ApiError(Exception):
    """An error answer: HTTP status and the service's JSON error document."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status, body)
        self.status, self.body, self.headers = status, body, headers or {}


def nova_error(status: int, message: str) -> ApiError:
    kind = {
        400: "badRequest",
        401: "unauthorized",
        403: "forbidden",
        404: "itemNotFound",
        409: "conflict",
        413: "overLimit",
        429: "overLimit",
        503: "serviceUnavailable",
    }.get(status, "computeFault")
    return ApiError(status, {kind: {"code": status, "message": message}})


def neutron_error(status: int, kind: str, message: str) -> ApiError:
    return ApiError(status, {"NeutronError": {"type": kind, "message": message, "detail": ""}})


def keystone_error(status: int, message: str) -> ApiError:
    title = {401: "Unauthorized", 404: "Not Found", 400: "Bad Request"}.get(status, "Error")
    return ApiError(status, {"error": {"code": status, "message": message, "title": title}})


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any

    def q(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


Response = tuple[int, Any, dict[str, str]]
Handler = Callable[..., Response]
