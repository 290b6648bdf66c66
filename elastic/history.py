"""The daemon's run-time and arrival history: what ``decide()`` learns run times from.

Kept in memory from the pods the daemon already watches, bounded (``HISTORY_RUNS`` run times per
owner, ``HISTORY_ARRIVALS`` arrival times), and rebuilt at start from the pods the API still lists
(OSCAR's finished Job pods stay until the Job's TTL removes them): no database, so any replica that
wins the Lease learns the same history. A pod counts once: when it is first seen (its creation time
is an arrival) and when it is first seen Succeeded (its run time, from ``status.startTime`` to the
container's ``finishedAt``). Failed pods teach nothing about how long a service's jobs run.

The owner of a pod is its OSCAR service (the ``oscar_service`` label OSCAR puts on every job,
``ServiceLabel`` in grycap/oscar ``pkg/types/service.go``) within its namespace, else its requests
(jobs of one OSCAR service ask for the same resources), as the simulator groups a trace's jobs.
"""

from __future__ import annotations

import bisect
import collections
from collections.abc import Iterable, Mapping
from typing import Any

from elastic.model import HISTORY_ARRIVALS, HISTORY_RUNS, RunHistory
from elastic.view import is_daemonset, is_mirror, owner_of, parse_time, pod_requests

_SEEN_MAX = 4 * HISTORY_ARRIVALS
"""Pod keys remembered as counted (arrivals, finished), so a pod listed again is not counted twice."""


def run_time(pod: Mapping[str, Any]) -> float | None:
    """Seconds from ``status.startTime`` to the last container's ``finishedAt``; None if unknown."""
    status = pod.get("status") or {}
    started = parse_time(status.get("startTime"))
    ends = [parse_time(((c.get("state") or {}).get("terminated") or {}).get("finishedAt"))
            for c in status.get("containerStatuses") or []]
    known = [e for e in ends if e is not None]
    if started is None or not known:
        return None
    return max(max(known) - started, 0.0)


class HistoryKeeper:
    """Bounded history of the pods seen; ``snapshot()`` is what goes into the ``ClusterView``."""

    def __init__(self) -> None:
        self._runtimes: dict[str, collections.deque[float]] = {}
        self._arrivals: list[float] = []
        self._arrived: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._finished: collections.OrderedDict[str, None] = collections.OrderedDict()

    @staticmethod
    def _remember(seen: collections.OrderedDict[str, None], key: str) -> bool:
        """True the first time ``key`` is seen (within the bounded memory)."""
        if key in seen:
            return False
        seen[key] = None
        if len(seen) > _SEEN_MAX:
            seen.popitem(last=False)
        return True

    def observe(self, pods: Iterable[Mapping[str, Any]]) -> None:
        """Count new arrivals and newly Succeeded pods among the API's pod objects."""
        for pod in pods:
            meta = pod.get("metadata") or {}
            key = f"{meta.get('namespace')}/{meta.get('name')}"
            first = key not in self._arrived
            succeeded = (pod.get("status") or {}).get("phase") == "Succeeded"
            if not first and not succeeded:
                continue
            if is_daemonset(pod) or is_mirror(pod):
                continue
            created = parse_time(meta.get("creationTimestamp"))
            if created is not None and self._remember(self._arrived, key):
                bisect.insort(self._arrivals, created)
                if len(self._arrivals) > HISTORY_ARRIVALS:
                    del self._arrivals[0]
            if succeeded and self._remember(self._finished, key):
                took = run_time(pod)
                if took is not None:
                    cpu, mem, _ = pod_requests(pod.get("spec") or {})
                    owner = owner_of(meta, cpu, mem)
                    if owner not in self._runtimes:
                        self._runtimes[owner] = collections.deque(maxlen=HISTORY_RUNS)
                    self._runtimes[owner].append(took)

    def snapshot(self) -> RunHistory:
        return RunHistory({owner: tuple(times) for owner, times in self._runtimes.items()},
                          tuple(self._arrivals))
