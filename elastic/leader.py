"""Leader election through a ``coordination.k8s.io/v1`` Lease, so two replicas never act at once.

The algorithm of client-go's ``leaderelection``: a replica takes the Lease when it is free or its
record has not changed for ``leaseDurationSeconds`` of this replica's own clock (client-go's
``observedTime``: the local time the record was last seen to change; the holder's ``renewTime`` is
written by another machine's clock and is never compared with ours, so clock skew between replicas
does not matter), renews it every ``renew_s``, and counts
itself leader only until ``renew_deadline_s`` after its last successful renewal. Every write carries
the resourceVersion it read (optimistic concurrency), so of two replicas racing for a free Lease
exactly one wins; the other gets ``409 Conflict`` and stays a follower. A leader that stops releases
the Lease (empty holder) so a standby can take over at once.

``lease_duration_s`` must exceed ``renew_deadline_s``: a deposed leader stops acting before anyone
else may take the Lease.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from kubernetes.client.rest import ApiException

from elastic.kubeapi import KubeApi, micro_time
from elastic.view import parse_time

log = logging.getLogger(__name__)

LEASE_NAME = "oscar-deploy-elastic"


class LeaderElector:
    def __init__(
        self,
        api: KubeApi,
        *,
        identity: str | None = None,
        name: str = LEASE_NAME,
        lease_duration_s: float = 15.0,
        renew_deadline_s: float = 10.0,
        retry_s: float = 2.0,
        on_started: Callable[[], None] | None = None,
        on_stopped: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if lease_duration_s <= renew_deadline_s:
            raise ValueError("lease_duration_s must be longer than renew_deadline_s")
        self.api = api
        self.identity = identity or f"{api.host}_{uuid.uuid4().hex[:8]}"
        self.name = name
        self.lease_duration_s = lease_duration_s
        self.renew_deadline_s = renew_deadline_s
        self.retry_s = retry_s
        self.on_started = on_started
        self.on_stopped = on_stopped
        self.clock = clock
        self._renewed_at: float | None = None
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        """The Lease record as last read or written, and our clock's time when it last changed."""
        self._leading = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def is_leader(self) -> bool:
        renewed = self._renewed_at
        return self._leading and renewed is not None and time.monotonic() - renewed < self.renew_deadline_s

    def start(self) -> LeaderElector:
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._thread.start()
        return self

    def stop(self, release: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._leading:
            self._set_leading(False)
            if release:
                try:
                    self._release()
                except (ApiException, OSError) as error:
                    log.warning("releasing the Lease: %s", error)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                acquired = self.try_acquire_or_renew()
            except (ApiException, OSError) as error:
                log.warning("leader election: %s", error)
                acquired = False
            if acquired:
                self._renewed_at = time.monotonic()
                if not self._leading:
                    self._set_leading(True)
            elif self._leading and not self.is_leader():
                self._set_leading(False)
            self._stop.wait(self.retry_s)

    def _set_leading(self, leading: bool) -> None:
        self._leading = leading
        log.info("%s %s the leader Lease %s", self.identity, "holds" if leading else "lost", self.name)
        callback = self.on_started if leading else self.on_stopped
        if callback is not None:
            callback()

    # ---- one round ------------------------------------------------------------------------------
    def _read(self) -> Any | None:
        try:
            return self.api.coordination.read_namespaced_lease(self.name, self.api.namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def try_acquire_or_renew(self) -> bool:
        """One attempt; True if this replica holds the Lease afterwards."""
        now = self.clock()
        lease = self._read()
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.lease_duration_s)),
            "renewTime": micro_time(now),
        }
        if lease is None:
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.api.namespace},
                    "spec": {**spec, "acquireTime": micro_time(now), "leaseTransitions": 0}}
            try:
                self.api.coordination.create_namespaced_lease(self.api.namespace, body)
            except ApiException as error:
                if error.status == 409:
                    return False
                raise
            self._observe(body["spec"], now)
            return True
        current = lease.spec
        holder = current.holder_identity
        self._observe({"holderIdentity": holder, "renewTime": str(current.renew_time),
                       "leaseDurationSeconds": current.lease_duration_seconds,
                       "acquireTime": str(current.acquire_time),
                       "leaseTransitions": current.lease_transitions}, now)
        if holder and holder != self.identity and not self._expired(current, now):
            return False
        transitions = current.lease_transitions or 0
        if holder != self.identity:
            spec["acquireTime"] = micro_time(now)
            spec["leaseTransitions"] = transitions + 1
        else:
            spec["acquireTime"] = micro_time(_epoch(current.acquire_time) or now)
            spec["leaseTransitions"] = transitions
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.api.namespace,
                             "resourceVersion": lease.metadata.resource_version},
                "spec": spec}
        try:
            self.api.coordination.replace_namespaced_lease(self.name, self.api.namespace, body)
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        self._observe(spec, now)
        return True

    def _observe(self, record: dict[str, Any], now: float) -> None:
        """Note the record read or written; a change restarts its lease on our clock (client-go's
        ``setObservedRecord``)."""
        key = tuple(str(record.get(k)) for k in ("holderIdentity", "renewTime", "leaseDurationSeconds"))
        if key != self._observed:
            self._observed, self._observed_at = key, now

    def _expired(self, spec: Any, now: float) -> bool:
        """The holder has not renewed for ``leaseDurationSeconds`` as *we* measure it (client-go's
        ``isLeaseValid``): the holder's renewTime comes from its clock and is not compared with ours."""
        duration = spec.lease_duration_seconds or self.lease_duration_s
        return now > self._observed_at + duration

    def _release(self) -> None:
        lease = self._read()
        if lease is None or lease.spec.holder_identity != self.identity:
            return
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.api.namespace,
                             "resourceVersion": lease.metadata.resource_version},
                "spec": {"holderIdentity": None, "leaseDurationSeconds": 1,
                         "renewTime": micro_time(self.clock()),
                         "leaseTransitions": lease.spec.lease_transitions or 0}}
        self.api.coordination.replace_namespaced_lease(self.name, self.api.namespace, body)


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        return value.timestamp()
    return parse_time(str(value))
