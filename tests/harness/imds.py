"""EC2's instance metadata service (IMDSv2) on 127.0.0.1, as far as the project reads it.

IMDSv2 answers a ``PUT /latest/api/token`` (with ``X-aws-ec2-metadata-token-ttl-seconds``) with a
session token, and any ``GET`` only when that token comes back in ``X-aws-ec2-metadata-token``
(401 otherwise). What it serves, in the shapes AWS documents ("Instance metadata categories" and
"Retrieve security credentials from instance metadata" in the EC2 user guide), which botocore's
``InstanceMetadataFetcher`` (``botocore/utils.py``) reads:

- ``/latest/meta-data/public-ipv4``: the instance's public address (a hybrid worker's user data);
- ``/latest/meta-data/iam/security-credentials/``: the instance profile's role name;
- ``/latest/meta-data/iam/security-credentials/ROLE``: that role's temporary credentials, JSON with
  ``Code``, ``LastUpdated``, ``Type``, ``AccessKeyId``, ``SecretAccessKey``, ``Token`` and
  ``Expiration``. Each ``rotate()`` issues a new set, as EC2 does ahead of the old one's expiry.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

TOKEN = "imds-session-token"
CREDENTIALS_PATH = "/latest/meta-data/iam/security-credentials/"


@dataclass
class RoleCredentials:
    access_key_id: str
    secret_access_key: str
    token: str
    expiration: dt.datetime

    def document(self) -> dict[str, str]:
        stamp = "%Y-%m-%dT%H:%M:%SZ"
        return {"Code": "Success", "LastUpdated": dt.datetime.now(dt.UTC).strftime(stamp), "Type": "AWS-HMAC",
                "AccessKeyId": self.access_key_id, "SecretAccessKey": self.secret_access_key,
                "Token": self.token, "Expiration": self.expiration.strftime(stamp)}


@dataclass
class InstanceMetadata:
    """What the stand-in serves, and what it was asked (``requests``: method and path)."""

    public_ipv4: str = "198.51.100.40"
    role: str | None = None
    lifetime: dt.timedelta = dt.timedelta(hours=6)
    issued: list[RoleCredentials] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""
    """``http://127.0.0.1:PORT`` once served (botocore's ``AWS_EC2_METADATA_SERVICE_ENDPOINT``)."""

    def rotate(self) -> RoleCredentials:
        """A new set of the role's credentials, valid for ``lifetime`` from now."""
        n = len(self.issued) + 1
        issued = RoleCredentials(f"ASIAROLEKEY{n:09d}", f"role-secret-{n}-never-logged", f"role-session-{n}",
                                 dt.datetime.now(dt.UTC) + self.lifetime)
        self.issued.append(issued)
        return issued

    def answer(self, path: str) -> tuple[int, str]:
        if path == "/latest/meta-data/public-ipv4":
            return (200, self.public_ipv4) if self.public_ipv4 else (404, "")
        if self.role and path == CREDENTIALS_PATH:
            return 200, self.role
        if self.role and path == CREDENTIALS_PATH + self.role:
            current = self.issued[-1] if self.issued else self.rotate()
            return 200, json.dumps(current.document())
        return 404, ""


def _handler(state: InstanceMetadata) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            state.requests.append(("PUT", self.path))
            ok = self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
            self._reply(200 if ok else 400, TOKEN if ok else "")

        def do_GET(self) -> None:
            state.requests.append(("GET", self.path))
            if self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
                self._reply(401, "")
            else:
                self._reply(*state.answer(self.path))

        def _reply(self, status: int, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serve(state: InstanceMetadata | None = None) -> Iterator[InstanceMetadata]:
    """The stand-in on a free port of 127.0.0.1 for the block's duration."""
    state = state or InstanceMetadata()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
