"""Workload traces: CSV ``submit_s,cpus,memory_mib,duration_s[,selector][,service]``, one job a line.

``selector`` is ``key=value`` (several joined by ``;``), matched against node labels like a pod's
``nodeSelector``. ``service`` names the OSCAR service whose Job the line is (its pods carry the
service's labels); jobs of one service are alike, which is what a policy may learn run times from.
Every malformed line is a ``BadInput`` naming the file and line.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from provisioner.errors import BadInput

REQUIRED_COLUMNS = ("submit_s", "cpus", "memory_mib", "duration_s")


class TraceError(BadInput):
    """The trace file is invalid; the message names the file and line."""


@dataclasses.dataclass(frozen=True, slots=True)
class Job:
    """One job of a trace: a pod requesting ``cpu_m``/``memory_mib`` that runs ``duration_s``."""

    index: int
    submit_s: float
    cpu_m: int
    memory_mib: int
    duration_s: float
    selector: Mapping[str, str] = dataclasses.field(default_factory=dict)
    line: int = 0
    service: str = ""
    """The OSCAR service the job belongs to ("" when the trace does not say)."""


def parse_selector(raw: str, where: str) -> dict[str, str]:
    selector: dict[str, str] = {}
    for part in raw.replace(",", ";").split(";"):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise TraceError(f"{where}: selector {part!r} is not key=value")
        selector[key.strip()] = value.strip()
    return selector


def _number(raw: str | None, column: str, where: str) -> float:
    try:
        value = float(raw if raw is not None else "")
    except ValueError:
        raise TraceError(f"{where}: {column} {raw!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise TraceError(f"{where}: {column} must be a finite number >= 0, got {raw!r}")
    return value


def load_trace(path: Path) -> tuple[Job, ...]:
    """Read and check a trace; jobs come back sorted by submit time (stable for equal times)."""
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as error:
        raise TraceError(f"{path}: cannot read: {error.strerror or error}") from None
    with handle:
        reader = csv.DictReader(line for line in handle if not line.lstrip().startswith("#"))
        header = [name.strip() for name in (reader.fieldnames or [])]
        missing = [column for column in REQUIRED_COLUMNS if column not in header]
        if missing:
            raise TraceError(f"{path}: line 1: missing column(s) {', '.join(missing)} "
                             f"(need {','.join(REQUIRED_COLUMNS)}[,selector])")
        reader.fieldnames = header
        jobs = []
        for row in reader:
            where = f"{path}: line {reader.line_num}"
            if None in row:
                raise TraceError(f"{where}: more fields than columns")
            cpus = _number(row["cpus"], "cpus", where)
            memory = _number(row["memory_mib"], "memory_mib", where)
            duration = _number(row["duration_s"], "duration_s", where)
            if cpus == 0 and memory == 0:
                raise TraceError(f"{where}: a job must request some cpus or memory_mib")
            jobs.append(Job(
                index=len(jobs),
                submit_s=_number(row["submit_s"], "submit_s", where),
                cpu_m=math.ceil(cpus * 1000 - 1e-9),
                memory_mib=math.ceil(memory),
                duration_s=duration,
                selector=parse_selector(row.get("selector") or "", where),
                line=reader.line_num,
                service=(row.get("service") or "").strip(),
            ))
    if not jobs:
        raise TraceError(f"{path}: no jobs")
    ordered = sorted(jobs, key=lambda job: (job.submit_s, job.index))
    return tuple(dataclasses.replace(job, index=i) for i, job in enumerate(ordered))


def write_trace(path: Path, jobs: Sequence[Job]) -> None:
    """Write jobs in the trace format (used by the generator of ``bench/traces``)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        with_selector = any(job.selector for job in jobs)
        with_service = any(job.service for job in jobs)
        writer.writerow([*REQUIRED_COLUMNS, *(["selector"] if with_selector else []),
                         *(["service"] if with_service else [])])
        for job in jobs:
            row = [f"{job.submit_s:.3f}", f"{job.cpu_m / 1000:g}", str(job.memory_mib),
                   f"{job.duration_s:.3f}"]
            if with_selector:
                row.append(";".join(f"{k}={v}" for k, v in job.selector.items()))
            if with_service:
                row.append(job.service)
            writer.writerow(row)
