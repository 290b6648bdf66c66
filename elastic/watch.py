"""List+watch of pods and nodes into an in-memory cache (a client-go informer, in small).

Each ``Informer`` lists its resource once, then watches from the list's resourceVersion, keeping the
version of every event (bookmarks too) so a dropped connection resumes where it stopped. A ``410
Gone`` (the server compacted its history) means relist, whether it comes as an ERROR event in the
stream or as the status of the watch request itself (client-go's reflector relists on both); any
other failure reconnects with
exponential backoff (0.2 s doubling to 10 s, reset by a good event). Handlers run on the watch
thread with (event type, new object, old object) and must be quick: the daemon's handler only
notes what changed and wakes its decision loop.

The stream is read line by line with the stock client (``watch=True``, ``_preload_content=False``,
the client's own ``iter_resp_lines``) rather than ``kubernetes.watch.Watch``: that helper only
resumes once after a 410 and mis-reads an ERROR event when not deserialising.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from kubernetes.client.rest import ApiException
from kubernetes.watch.watch import iter_resp_lines

from elastic.kubeapi import KubeApi

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Handler = Callable[[str, Obj | None, Obj | None], None]
"""(``ADDED``/``MODIFIED``/``DELETED``/``SYNC``, new object or None, old object or None)."""


class Gone(Exception):
    """The watch's resourceVersion is too old: relist."""


def _key(obj: Obj) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace') or ''}/{meta['name']}"


class Informer:
    """A cache of one resource kept current by list+watch on a background thread."""

    def __init__(self, api: KubeApi, resource: str, handler: Handler | None = None,
                 watch_timeout_s: int = 300, backoff_max_s: float = 10.0, optional: bool = False) -> None:
        """``optional``: a resource the cluster may not serve (a CRD not installed): a ``404`` counts
        (or a ``403``) counts as an empty, synced cache, looked for again every minute."""
        self.api = api
        self.optional = optional
        self.missing = False
        self.resource = resource
        self.handler = handler
        self.watch_timeout_s = watch_timeout_s
        self.backoff_max_s = backoff_max_s
        self.lock = threading.Lock()
        self.objects: dict[str, Obj] = {}
        self.resource_version: str | None = None
        self.synced = threading.Event()
        self.relists = 0
        self.reconnects = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._response: Any = None

    # ---- reading ------------------------------------------------------------------------------------
    def items(self) -> list[Obj]:
        with self.lock:
            return list(self.objects.values())

    def get(self, key: str) -> Obj | None:
        with self.lock:
            return self.objects.get(key)

    # ---- running ------------------------------------------------------------------------------------
    def start(self) -> Informer:
        self._thread = threading.Thread(target=self._run, name=f"watch-{self.resource}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            try:
                response.shutdown()
            except Exception:  # closing a half-open connection may fail any way
                log.debug("closing the %s watch", self.resource, exc_info=True)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        delay = 0.2
        while not self._stop.is_set():
            try:
                if self.resource_version is None:
                    self._list()
                self._watch()
                delay = 0.2
            except Gone:
                log.info("watch %s: resourceVersion %s expired, relisting", self.resource,
                         self.resource_version)
                self.resource_version = None
                self.relists += 1
            except Exception as error:  # any failure of the API or the network: retry
                if self._stop.is_set():
                    return
                if self.optional and isinstance(error, ApiException) and error.status in (403, 404):
                    self._absent()
                    continue
                self.reconnects += 1
                log.warning("watch %s: %s; reconnecting in %.1fs", self.resource, error, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, self.backoff_max_s)

    def _absent(self) -> None:
        if not self.missing:
            log.info("%s: not served (no CRD) or not allowed; looking again every minute", self.resource)
        self.missing = True
        with self.lock:
            self.objects = {}
        self.resource_version = None
        self.synced.set()
        self._stop.wait(60.0)

    def _list(self) -> None:
        document = self.api.list_raw(self.resource)
        fresh = {_key(o): o for o in document.get("items") or []}
        with self.lock:
            old = self.objects
            self.objects = fresh
            self.resource_version = document["metadata"]["resourceVersion"]
        if self.handler:
            for key, obj in fresh.items():
                before = old.get(key)
                if before is None or before["metadata"].get("resourceVersion") != obj["metadata"].get(
                        "resourceVersion"):
                    self.handler("ADDED" if before is None else "MODIFIED", obj, before)
            for key in old.keys() - fresh.keys():
                self.handler("DELETED", None, old[key])
            self.handler("SYNC", None, None)
        self.synced.set()

    def _watch(self) -> None:
        try:
            response = self.api.list_call(
                self.resource, watch=True, resource_version=self.resource_version, allow_watch_bookmarks=True,
                timeout_seconds=self.watch_timeout_s, _request_timeout=(10, self.watch_timeout_s + 30))
        except ApiException as error:
            if error.status == 410:
                raise Gone() from error
            raise
        self._response = response
        try:
            for line in iter_resp_lines(response):
                if self._stop.is_set():
                    return
                if line.strip():
                    self._event(json.loads(line))
        finally:
            self._response = None
            response.release_conn()

    def _event(self, event: Obj) -> None:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone()
            raise RuntimeError(f"watch error {obj.get('code')}: {obj.get('message')}")
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if kind == "BOOKMARK":
            self.resource_version = version or self.resource_version
            return
        key = _key(obj)
        with self.lock:
            before = self.objects.get(key)
            if kind == "DELETED":
                self.objects.pop(key, None)
            else:
                self.objects[key] = obj
            self.resource_version = version or self.resource_version
        if self.handler:
            self.handler(str(kind), None if kind == "DELETED" else obj, before)
