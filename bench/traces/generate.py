"""Make the standard traces of ``bench/policies.py`` (seeded, so the committed CSVs are reproducible).

    python bench/traces/generate.py            # rewrites bench/traces/*.csv and *.groups.yaml

Each trace comes with the groups file it is meant for (``<name>.groups.yaml``). They are kept
modest (a few thousand jobs at most) so every policy on every trace simulates in about a minute.

- ``bursts``: OSCAR's typical load: now and then a user uploads a few hundred files to a MinIO
  bucket and each becomes a 1-CPU job of 20-120 s; quiet in between.
- ``diurnal``: two days of a day/night cycle of mixed small jobs (Poisson, sinusoidal rate).
- ``trickle``: a steady trickle of short single jobs, about one every two minutes.
- ``mixed``: CPU-heavy and memory-heavy jobs interleaved, with a compute and a high-memory group.
- ``edge_cloud``: Raspberry Pi-class arm64 boards first (free, high priority), cloud burst for the
  rest; some jobs need ``arch=arm64``, some ``arch=amd64``, most do not care.

The held-out trace (``heldout``) is reported apart and never used to choose a setting: its seed was
committed before any tuning. Three OSCAR services of different sizes and run times (the ``service``
column), uploads in bursts of one service at a time over a background trickle, on two cloud groups
of different sizes and boot times.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable
from pathlib import Path

from elastic.sim.trace import Job, write_trace

HERE = Path(__file__).resolve().parent
HOUR = 3600.0


def _job(index: int, submit: float, cpus: float, memory: int, duration: float,
         selector: dict[str, str] | None = None) -> Job:
    return Job(index=index, submit_s=round(submit, 3), cpu_m=round(cpus * 1000), memory_mib=memory,
               duration_s=round(duration, 3), selector=selector or {})


def bursts(rng: random.Random) -> list[Job]:
    jobs: list[Job] = []
    t = 300.0
    for _ in range(10):
        files = rng.randint(100, 400)
        rate = rng.uniform(2.0, 6.0)  # files uploaded per second
        upload = t
        for _ in range(files):
            upload += rng.expovariate(rate)
            jobs.append(_job(len(jobs), upload, 1, 1024, rng.uniform(20, 120)))
        t = upload + rng.uniform(0.25, 1.0) * HOUR
    return jobs


def diurnal(rng: random.Random) -> list[Job]:
    jobs: list[Job] = []
    t, end, peak = 0.0, 48 * HOUR, 1 / 20.0  # up to one job every 20 s at midday
    while True:
        t += rng.expovariate(peak)
        if t > end:
            return jobs
        rate = 0.5 * (1 - math.cos(2 * math.pi * t / (24 * HOUR)))  # 0 at midnight, 1 at noon
        if rng.random() < 0.05 + 0.95 * rate:
            cpus = rng.choice((0.5, 1, 1, 2))
            jobs.append(_job(len(jobs), t, cpus, int(cpus * 1024), rng.uniform(60, 900)))


def trickle(rng: random.Random) -> list[Job]:
    jobs: list[Job] = []
    t = 0.0
    while t < 12 * HOUR:
        t += rng.expovariate(1 / 120.0)
        jobs.append(_job(len(jobs), t, 1, 512, rng.uniform(30, 300)))
    return jobs


def mixed(rng: random.Random) -> list[Job]:
    jobs: list[Job] = []
    t = 0.0
    while t < 8 * HOUR:
        t += rng.expovariate(1 / 25.0)
        if rng.random() < 0.5:
            jobs.append(_job(len(jobs), t, 4, 2048, rng.uniform(300, 1200)))
        else:
            jobs.append(_job(len(jobs), t, 1, 15360, rng.uniform(300, 1200)))
    return jobs


def edge_cloud(rng: random.Random) -> list[Job]:
    jobs: list[Job] = []
    t = 0.0
    while t < 6 * HOUR:
        # Bursts of 20-80 sensor uploads every 10-30 min, plus a background trickle.
        burst = rng.randint(20, 80)
        upload = t
        for _ in range(burst):
            upload += rng.expovariate(1.0)
            roll = rng.random()
            selector = {"arch": "arm64"} if roll < 0.2 else {"arch": "amd64"} if roll < 0.35 else {}
            jobs.append(_job(len(jobs), upload, 1, 768, rng.uniform(30, 180), selector))
        t = upload + rng.uniform(600, 1800)
    return jobs


SERVICES = (  # name, cpus, memory_mib, run time range (s)
    ("thumbnails", 1, 1024, (15, 45)),
    ("detect", 2, 4096, (60, 240)),
    ("transcode", 3, 6144, (300, 900)),
)


def heldout(rng: random.Random) -> list[Job]:
    jobs: list[Job] = []

    def add(t: float, service: tuple[str, int, int, tuple[int, int]]) -> None:
        name, cpus, memory, (low, high) = service
        made = _job(len(jobs), t, cpus, memory, rng.uniform(low, high))
        jobs.append(dataclasses.replace(made, service=name))

    t = rng.uniform(0, 600)
    while t < 10 * HOUR:  # bursts of one service's uploads
        service = rng.choice(SERVICES)
        files = rng.randint(20, 300) if service[0] != "transcode" else rng.randint(5, 40)
        rate = rng.uniform(1.0, 5.0)
        upload = t
        for _ in range(files):
            upload += rng.expovariate(rate)
            add(upload, service)
        t = upload + rng.uniform(0.25, 1.0) * HOUR
    t = 0.0
    while True:  # a background trickle of thumbnails
        t += rng.expovariate(1 / 180.0)
        if t > 10 * HOUR:
            break
        add(t, SERVICES[0])
    jobs.sort(key=lambda job: job.submit_s)
    return [dataclasses.replace(job, index=i) for i, job in enumerate(jobs)]


GROUPS = {
    "bursts": """\
# OSCAR on a cloud: 4-vCPU workers (t3.xlarge-like), booted on demand.
- name: cloud
  cpus: 4
  memory_mib: 15000
  min: 0
  max: 100
  boot_s: 90
  cost_per_hour: 0.1664
  labels: {arch: amd64}
""",
    "diurnal": """\
- name: cloud
  cpus: 8
  memory_mib: 30000
  min: 0
  max: 12
  boot_s: 120
  cost_per_hour: 0.3328
  labels: {arch: amd64}
""",
    "trickle": """\
- name: cloud
  cpus: 2
  memory_mib: 7500
  min: 0
  max: 6
  boot_s: 60
  cost_per_hour: 0.0832
  labels: {arch: amd64}
""",
    "mixed": """\
# A compute-optimised and a memory-optimised group; 15 GiB jobs only fit the second.
- name: compute
  cpus: 8
  memory_mib: 15000
  min: 0
  max: 20
  boot_s: 90
  cost_per_hour: 0.34
  priority: 10
  labels: {arch: amd64, family: compute}
- name: highmem
  cpus: 4
  memory_mib: 31000
  min: 0
  max: 20
  boot_s: 90
  cost_per_hour: 0.2016
  labels: {arch: amd64, family: memory}
""",
    "heldout": """\
# Two cloud sizes: 4 vCPU booting in 90 s, 8 vCPU (same price per vCPU) booting in 120 s.
- name: small
  cpus: 4
  memory_mib: 15000
  min: 0
  max: 60
  boot_s: 90
  cost_per_hour: 0.1664
  labels: {arch: amd64, size: small}
- name: large
  cpus: 8
  memory_mib: 30000
  min: 0
  max: 30
  boot_s: 120
  cost_per_hour: 0.3328
  labels: {arch: amd64, size: large}
""",
    "edge_cloud": """\
# Edge first: eight Raspberry Pi 4 boards (free to run, powered by a PoE switch), then cloud burst.
- name: pi
  cpus: 4
  memory_mib: 3800
  min: 0
  max: 8
  boot_s: 45
  cost_per_hour: 0.0
  priority: 20
  labels: {arch: arm64, site: edge}
  power:
    type: command
    power_on: "poe-switch port-on {node}"
    power_off: "poe-switch port-off {node}"
  nodes:
    - {name: pi-01, address: 192.0.2.11}
    - {name: pi-02, address: 192.0.2.12}
    - {name: pi-03, address: 192.0.2.13}
    - {name: pi-04, address: 192.0.2.14}
    - {name: pi-05, address: 192.0.2.15}
    - {name: pi-06, address: 192.0.2.16}
    - {name: pi-07, address: 192.0.2.17}
    - {name: pi-08, address: 192.0.2.18}
- name: graviton
  cpus: 4
  memory_mib: 15000
  min: 0
  max: 6
  boot_s: 90
  cost_per_hour: 0.1344
  priority: 10
  labels: {arch: arm64, site: cloud}
- name: cloud
  cpus: 4
  memory_mib: 15000
  min: 0
  max: 10
  boot_s: 90
  cost_per_hour: 0.1664
  priority: 5
  labels: {arch: amd64, site: cloud}
""",
}

TRACES: dict[str, tuple[int, Callable[[random.Random], list[Job]]]] = {
    "bursts": (1, bursts),
    "diurnal": (2, diurnal),
    "trickle": (3, trickle),
    "mixed": (4, mixed),
    "edge_cloud": (5, edge_cloud),
    "heldout": (20261207, heldout),
}


def main() -> None:
    for name, (seed, make) in TRACES.items():
        jobs = make(random.Random(seed))
        write_trace(HERE / f"{name}.csv", jobs)
        (HERE / f"{name}.groups.yaml").write_text(GROUPS[name], encoding="utf-8")
        print(f"{name}: {len(jobs)} jobs")


if __name__ == "__main__":
    main()
