"""``oscar-deploy simulate``: replay a workload trace against node groups in virtual time, with the
daemon's own ``decide()`` (policy ``oscar``) or a baseline, and report node-hours, cost and waits
beside two lower bounds on node-hours (``elastic.sim.bounds``).

The parts live in ``elastic.sim`` (trace, engine, baselines, bounds, report); this module wires
them and turns a raw run into the figures the CLI and ``bench/policies.py`` print.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from elastic.groups import load_groups, load_yaml12
from elastic.model import ClusterView, Decision, NodeGroup, PolicySettings
from elastic.policy.fit import group_labels
from elastic.sim.baselines import AutoscalerPolicy, CluesPolicy, StaticPolicy
from elastic.sim.bounds import lower_bound_boot_aware_node_hours, lower_bound_node_hours
from elastic.sim.engine import EngineSettings, JobRun, Policy, SimResult, Simulation
from elastic.sim.fit import placeable
from elastic.sim.report import prepare_report_dir, render_results_table, write_report
from elastic.sim.trace import Job, TraceError, load_trace
from provisioner.elastic_settings import knob_float
from provisioner.errors import BadInput, OscarDeployError

__all__ = ["POLICIES", "render_results_table", "run_simulations", "simulate_one"]

POLICIES = ("oscar", "clues", "autoscaler", "static")
SECTIONS = frozenset({"oscar", "clues", "autoscaler", "engine"})


class SettingsFileError(BadInput):
    """The ``--settings`` file is invalid."""


@dataclasses.dataclass(frozen=True)
class OscarSettings(PolicySettings):
    """``PolicySettings`` plus the daemon's tick (``[elastic] tick_s``), for ``--settings``."""

    tick_s: float = knob_float("tick_s")


class OscarPolicy:
    """The daemon's ``elastic.policy.decide`` unchanged, looked at as the daemon does: after pods
    become unschedulable (batched) and on its 10 s tick (``[elastic] tick_s``)."""

    name = "oscar"
    event_driven = True
    interrupts_jobs = False
    """Scale-in only takes nodes without user pods (``elastic.policy.scalein``); the engine checks."""

    def __init__(self, groups: Sequence[NodeGroup], settings: PolicySettings | None = None,
                 tick_s: float = knob_float("tick_s")) -> None:
        try:
            from elastic.policy import decide
        except ImportError as error:
            raise OscarDeployError(
                f"policy 'oscar' needs elastic.policy.decide, not available: {error}") from None
        self._decide = decide
        self.groups = tuple(groups)
        self.settings = settings or PolicySettings()
        self.period_s = tick_s

    def initial_on(self, group: NodeGroup) -> int:
        return group.min

    def decide(self, view: ClusterView, now: float) -> Decision:
        return self._decide(view, self.groups, now, self.settings)


def _overrides(data: Any, cls: type, where: str) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise SettingsFileError(f"{where}: expected a mapping of settings")
    flags: set[str] = set()
    if dataclasses.is_dataclass(cls):
        known = {field.name for field in dataclasses.fields(cls)}
        flags = {field.name for field in dataclasses.fields(cls) if isinstance(field.default, bool)}
    else:  # a baseline policy: its keyword-only constructor arguments
        known = {name for name, parameter in inspect.signature(cls).parameters.items()
                 if parameter.kind is inspect.Parameter.KEYWORD_ONLY}
    values = {}
    for key, value in data.items():
        if key not in known:
            raise SettingsFileError(f"{where}: unknown setting {key!r} (known: {', '.join(sorted(known))})")
        if key == "system_namespaces" and isinstance(value, list):
            value = frozenset(map(str, value))
        elif key in flags:
            if not isinstance(value, bool):
                raise SettingsFileError(f"{where}: {key!r}: {value!r} is not true or false")
        elif isinstance(value, bool) or not isinstance(value, int | float | str | frozenset):
            raise SettingsFileError(f"{where}: {key!r}: {value!r} is not a number")
        values[str(key)] = value
    return values


def load_settings_file(path: Path | None) -> dict[str, dict[str, Any]]:
    """Overrides per section. A flat mapping is ``oscar``'s ``PolicySettings``; with sections
    ``oscar``/``clues``/``autoscaler``/``engine``, each goes to that policy's keyword defaults."""
    if path is None:
        return {}
    try:
        data = load_yaml12(path)
    except BadInput as error:
        raise SettingsFileError(str(error)) from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise SettingsFileError(f"{path}: expected a mapping of settings")
    if not set(data) & SECTIONS:
        data = {"oscar": data}
    unknown = set(data) - SECTIONS
    if unknown:
        raise SettingsFileError(f"{path}: unknown section(s) {sorted(map(str, unknown))} "
                                f"(known: {', '.join(sorted(SECTIONS))})")
    return {
        "oscar": _overrides(data.get("oscar"), OscarSettings, f"{path}: oscar"),
        "engine": _overrides(data.get("engine"), EngineSettings, f"{path}: engine"),
        "clues": _overrides(data.get("clues"), CluesPolicy, f"{path}: clues"),
        "autoscaler": _overrides(data.get("autoscaler"), AutoscalerPolicy, f"{path}: autoscaler"),
    }


def make_policy(name: str, groups: Sequence[NodeGroup], overrides: Mapping[str, Any] | None = None) -> Policy:
    """Build policy ``name`` with its defaults, changed by ``overrides`` (keyword arguments)."""
    overrides = dict(overrides or {})
    try:
        if name == "oscar":
            tick = float(overrides.pop("tick_s", knob_float("tick_s")))
            return OscarPolicy(groups, PolicySettings(**overrides), tick_s=tick)
        if name == "clues":
            return CluesPolicy(groups, **overrides)
        if name == "autoscaler":
            return AutoscalerPolicy(groups, **overrides)
        if name == "static":
            return StaticPolicy()
    except TypeError as error:
        raise SettingsFileError(f"policy {name!r}: {error}") from None
    raise BadInput(f"unknown policy {name!r} (known: {', '.join(POLICIES)})")


def check_jobs_fit(jobs: Sequence[Job], groups: Sequence[NodeGroup], trace: Path) -> None:
    """A job that no group can ever run would wait forever: reject the trace, naming the line."""
    for job in jobs:
        pod = Simulation._pod(job)
        if not any(
            group.max > 0 and group.cpu_m >= job.cpu_m and group.memory_mib >= job.memory_mib
            and placeable(pod, group_labels(group), group.taints)
            for group in groups
        ):
            selector = ";".join(f"{k}={v}" for k, v in job.selector.items()) or "none"
            raise TraceError(
                f"{trace}: line {job.line}: no group can ever run this job "
                f"(cpus {job.cpu_m / 1000:g}, memory_mib {job.memory_mib}, selector {selector})"
            )


def _percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (the value below which ``fraction`` of the values lie)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


RESCHEDULER_S = (10, 30)
"""OSCAR's rescheduler thresholds: the manager's default and its Helm chart's."""


def _waited(run: JobRun) -> float:
    """How long the job's pod was pending before its first start (forever if it never started)."""
    if run.first_start is None:
        return math.inf
    return run.first_start - run.job.submit_s


def summarize(sim: SimResult, groups: Sequence[NodeGroup], bound: float, boot_bound: float,
              rescheduler_threshold_s: float | None = None) -> dict[str, Any]:
    """The reported figures of one run. A job's wait is from submission to the start of the run
    that completed it (an evicted job waits again). With ``rescheduler_threshold_s``, also how many
    jobs OSCAR's rescheduler would have sent away at that threshold (``rescheduled``)."""
    waits = [run.start - run.job.submit_s for run in sim.runs if run.start is not None]
    cost_per_hour = {group.name: group.cost_per_hour for group in groups}
    node_hours = sum(sim.node_seconds.values()) / 3600
    return {
        "policy": sim.policy,
        "node_hours": round(node_hours, 6),
        "cost": round(sum(s / 3600 * cost_per_hour[g] for g, s in sim.node_seconds.items()), 6),
        "wait_mean_s": round(sum(waits) / len(waits), 3) if waits else 0.0,
        "wait_p50_s": round(_percentile(waits, 0.5), 3),
        "wait_p95_s": round(_percentile(waits, 0.95), 3),
        "wait_max_s": round(max(waits, default=0.0), 3),
        "jobs": len(sim.runs),
        "jobs_unserved": sum(1 for run in sim.runs if run.start is None),
        "scale_ups": sim.scale_ups,
        "scale_downs": sim.scale_downs,
        "evictions": sum(run.evictions for run in sim.runs),
        "jobs_interrupted": sum(1 for run in sim.runs if run.evictions),
        # OSCAR's rescheduler (off by default) sends a pod pending longer than its threshold to
        # another cluster: 10 s in the manager's default, 30 s in its Helm chart.
        **{f"rescheduled_past_{t}s": sum(1 for run in sim.runs if _waited(run) > t) for t in RESCHEDULER_S},
        "marked_failed": sim.marked_failed,
        "power_on_failures": sim.power_on_failures,
        "rejected_actions": len(sim.rejected),
        "policy_looks": sim.looks,
        "horizon_s": round(sim.horizon_s, 3),
        "node_hours_by_group": {g: round(s / 3600, 6) for g, s in sim.node_seconds.items()},
        "lower_bound_node_hours": round(bound, 6),
        "lower_bound_boot_aware_node_hours": round(boot_bound, 6),
        "ratio_to_boot_aware_bound": round(node_hours / boot_bound, 4) if boot_bound else 0.0,
        **({} if rescheduler_threshold_s is None else {
            "rescheduler_threshold_s": rescheduler_threshold_s,
            "rescheduled": sum(1 for run in sim.runs if _waited(run) > rescheduler_threshold_s)}),
    }


def simulate_one(jobs: Sequence[Job], groups: Sequence[NodeGroup], policy: Policy,
                 engine: EngineSettings | None = None, rescheduler_threshold_s: float | None = None
                 ) -> tuple[SimResult, dict[str, Any]]:
    """Run one policy on already-loaded jobs and groups; return the raw run and its figures."""
    started = time.perf_counter()
    sim = Simulation(jobs, groups, policy, engine).run()
    result = summarize(sim, groups, lower_bound_node_hours(jobs, groups),
                       lower_bound_boot_aware_node_hours(jobs, groups), rescheduler_threshold_s)
    result["sim_wall_s"] = round(time.perf_counter() - started, 3)
    return sim, result


def run_simulations(trace: Path, groups_file: Path, policies: list[str], *, settings_file: Path | None,
                    report: Path | None, rescheduler_threshold_s: float | None = None
                    ) -> list[dict[str, Any]]:
    """Simulate each policy on ``trace`` with ``groups_file``; optionally write a report.

    Everything is read and checked before the first run, so bad input fails fast (``BadInput``).
    """
    groups = load_groups(groups_file)
    jobs = load_trace(trace)
    check_jobs_fit(jobs, groups, trace)
    overrides = load_settings_file(settings_file)
    engine = EngineSettings(**overrides.get("engine", {}))
    built = [make_policy(name, groups, overrides.get(name)) for name in policies]
    if report is not None:
        prepare_report_dir(report)
    sims: list[SimResult] = []
    results: list[dict[str, Any]] = []
    for policy in built:
        sim, result = simulate_one(jobs, groups, policy, engine, rescheduler_threshold_s)
        result["trace"] = trace.name
        sims.append(sim)
        results.append(result)
    if report is not None:
        png, page = write_report(sims, results, report, f"{trace.name} on {groups_file.name}")
        for result in results:
            result["report_png"], result["report_page"] = str(png), str(page)
    return results
