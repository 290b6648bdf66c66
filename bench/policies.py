"""bench/policies: every policy on every standard trace and on a held-out one, compared fairly.

    python bench/policies.py [--quick] [--jobs N]

Each trace is run twice over: every policy at its documented defaults, and each baseline tuned,
swept over idle times / scale-down delays of 0, 30, 60, 120 and 300 s (CLUES ``IDLE_TIME``; the
Cluster Autoscaler's ``scale-down-unneeded-time`` and ``scale-down-delay-after-add`` together), its
best run that meets the wait target and interrupts no job taken (a baseline with no such run is
shown, but is no bar). ``oscar`` runs at its own defaults only: the settings it
ships with are what a user gets. The held-out trace (``heldout``) was generated from a seed
committed before any tuning and is never used to choose a setting; it is reported apart.

Prints one JSON line per run, writes ``bench/results/policies.md`` (the tables the README quotes)
and one PNG per trace beside it, and last one JSON summary line. Exits 1 when ``oscar`` misses a
target on any trace.

Every run meets the same real-cloud faults (``FAULTS``): 1 % of power-ons never come up and boot
times spread ±10 %, drawn per (group, n-th power-on), so backoff and recovery are part of every
comparison; the wait limit takes the slowest boot of that spread.

The targets, on every trace: a p95 wait no worse than the slowest group's boot time + 5 s, fewer
node-hours than every baseline at its defaults and at its best tuned setting, at most 1.3 × the
boot-aware lower bound, and no job ever interrupted (OSCAR's Jobs have ``backoffLimit: 0``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from elastic.groups import load_groups  # noqa: E402
from elastic.model import NodeGroup  # noqa: E402
from elastic.sim.engine import EngineSettings  # noqa: E402
from elastic.sim.report import markdown_table, plot_runs  # noqa: E402
from elastic.sim.trace import load_trace  # noqa: E402
from elastic.simulate import POLICIES, make_policy, simulate_one  # noqa: E402

TRACES = ("bursts", "diurnal", "trickle", "mixed", "edge_cloud")
HELDOUT = "heldout"
TRACE_DIR = ROOT / "bench" / "traces"
RESULTS = ROOT / "bench" / "results"
RATIO_TARGET = 1.3
DELAYS = (0.0, 30.0, 60.0, 120.0, 300.0)
FAULTS = EngineSettings(poweron_failure_rate=0.01, boot_spread=0.1, fault_seed=1)
TUNED = {
    "clues": lambda d: {"idle_time_s": d},
    "autoscaler": lambda d: {"unneeded_time_s": d, "delay_after_add_s": d},
}
"""Per baseline: the keyword settings one swept delay stands for."""
ROW_KEYS = ("trace", "policy", "setting", "node_hours", "cost", "wait_p50_s", "wait_p95_s", "wait_max_s",
            "jobs_unserved", "jobs_interrupted", "scale_ups", "marked_failed", "power_on_failures",
            "lower_bound_node_hours",
            "lower_bound_boot_aware_node_hours", "ratio_to_boot_aware_bound", "sim_wall_s")


def wait_limit(groups: tuple[NodeGroup, ...]) -> float:
    return round(max(group.boot_s for group in groups) * (1 + FAULTS.boot_spread) + 5, 1)


def _load(trace: str) -> tuple[Any, tuple[NodeGroup, ...]]:
    return load_trace(TRACE_DIR / f"{trace}.csv"), load_groups(TRACE_DIR / f"{trace}.groups.yaml")


def run_defaults(trace: str, engine: EngineSettings) -> list[dict[str, Any]]:
    """Every policy at its defaults on ``trace``, plotted (packing scheduler only)."""
    jobs, groups = _load(trace)
    sims, rows = [], []
    for name in POLICIES:
        sim, result = simulate_one(jobs, groups, make_policy(name, groups), engine)
        sims.append(sim)
        rows.append({**result, "trace": trace, "setting": "defaults", "scoring": engine.scoring})
    if engine.scoring == FAULTS.scoring:
        plot_runs(sims, rows, RESULTS / f"policies-{trace}.png", f"{trace} ({len(jobs)} jobs), each policy")
    return rows


def run_tuned(trace: str, policy: str, delay: float) -> dict[str, Any]:
    jobs, groups = _load(trace)
    _, result = simulate_one(jobs, groups, make_policy(policy, groups, TUNED[policy](delay)), FAULTS)
    return {**result, "trace": trace, "setting": f"{delay:g} s", "delay_s": delay, "scoring": FAULTS.scoring}


def best_tuned(rows: list[dict[str, Any]], limit: float) -> tuple[dict[str, Any], bool]:
    """The run with the fewest node-hours among those that serve every job within the wait target
    and interrupt none (an interrupted OSCAR job, ``backoffLimit: 0``, is a failed one), flagged
    True; when none does, the run with the fewest node-hours of all, flagged False: shown, but no
    setting of that baseline serves the trace as OSCAR needs, so it is no bar to beat."""
    ok = [r for r in rows if r["wait_p95_s"] <= limit and r["jobs_unserved"] == 0
          and r["jobs_interrupted"] == 0]
    if ok:
        return min(ok, key=lambda r: (r["node_hours"], r["delay_s"])), True
    return min(rows, key=lambda r: (r["node_hours"], r["delay_s"])), False


def verdict(oscar: dict[str, Any], defaults: list[dict[str, Any]], tuned: dict[str, dict[str, Any]],
            tuned_ok: dict[str, bool], limit: float) -> dict[str, bool]:
    others = [r for r in defaults if r["policy"] != "oscar"] + list(tuned.values())
    return {
        "p95_within_boot_plus_5s": oscar["wait_p95_s"] <= limit,
        "fewer_than_defaults": all(oscar["node_hours"] < r["node_hours"] for r in defaults
                                   if r["policy"] != "oscar"),
        "fewer_than_tuned": all(oscar["node_hours"] < r["node_hours"]
                                for p, r in tuned.items() if tuned_ok[p]),
        "within_1_3_bound": oscar["ratio_to_boot_aware_bound"] <= RATIO_TARGET,
        "none_interrupted": oscar["jobs_interrupted"] == 0 and oscar["jobs_unserved"] == 0,
    } if others else {}


def main() -> int:
    quick = "--quick" in sys.argv
    workers = min(2, os.cpu_count() or 1)
    if "--jobs" in sys.argv:
        workers = int(sys.argv[sys.argv.index("--jobs") + 1])
    started = time.perf_counter()
    RESULTS.mkdir(parents=True, exist_ok=True)
    traces = [*(TRACES[:2] if quick else TRACES), HELDOUT]
    spread = dataclasses.replace(FAULTS, scoring="least_allocated")
    with ProcessPoolExecutor(max_workers=workers) as pool:
        defaults = {t: pool.submit(run_defaults, t, FAULTS) for t in traces}
        spreads = {t: pool.submit(run_defaults, t, spread) for t in ([] if quick else traces)}
        sweeps = {(t, p, d): pool.submit(run_tuned, t, p, d) for t in traces for p in TUNED for d in DELAYS}
        default_rows = {t: f.result() for t, f in defaults.items()}
        spread_rows = [r for f in spreads.values() for r in f.result()]
        sweep_rows = {k: f.result() for k, f in sweeps.items()}
    summary: dict[str, Any] = {"traces": {}}
    for trace in traces:
        _, groups = _load(trace)
        limit = wait_limit(groups)
        rows = default_rows[trace]
        for row in rows:
            print(json.dumps({k: row[k] for k in ROW_KEYS}), flush=True)
        tuned: dict[str, dict[str, Any]] = {}
        tuned_ok: dict[str, bool] = {}
        for policy in TUNED:
            runs = [sweep_rows[(trace, policy, d)] for d in DELAYS]
            for row in runs:
                print(json.dumps({k: row[k] for k in ROW_KEYS}), flush=True)
            tuned[policy], tuned_ok[policy] = best_tuned(runs, limit)
        oscar = next(r for r in rows if r["policy"] == "oscar")
        summary["traces"][trace] = {
            "held_out": trace == HELDOUT,
            "wait_limit_s": limit,
            "oscar": {k: oscar[k] for k in ("node_hours", "wait_p50_s", "wait_p95_s",
                                            "ratio_to_boot_aware_bound")},
            "best_tuned": {p: {"setting": r["setting"], "node_hours": r["node_hours"],
                               "wait_p95_s": r["wait_p95_s"], "jobs_interrupted": r["jobs_interrupted"],
                               "meets_wait": tuned_ok[p]}
                           for p, r in tuned.items()},
            "targets": verdict(oscar, rows, tuned, tuned_ok, limit),
        }
    write_markdown(traces, default_rows, spread_rows, sweep_rows, summary)
    summary["target_met"] = all(all(t["targets"].values()) for t in summary["traces"].values())
    summary["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps({"benchmark": "policies", **summary}))
    return 0 if summary["target_met"] else 1


def _cell(r: dict[str, Any]) -> str:
    return f"{r['node_hours']:.2f} ({r['wait_p50_s']:.0f} / {r['wait_p95_s']:.0f})"


def _tuned_cell(best: dict[str, Any]) -> str:
    if best["meets_wait"]:
        return f"{best['node_hours']:.2f} at {best['setting']} (p95 {best['wait_p95_s']:.0f})"
    return (f"none: no setting serves every job within the wait limit without interrupting one "
            f"(fewest node-h: {best['node_hours']:.2f} at {best['setting']}, p95 {best['wait_p95_s']:.0f}, "
            f"{best['jobs_interrupted']} jobs interrupted)")


def _comparison_table(traces: list[str], summary: dict[str, Any],
                      default_rows: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = ["| trace | oscar node-h (p50 / p95 wait s) | CLUES defaults | CLUES best tuned | "
             "autoscaler defaults | autoscaler best tuned | p95 limit s | oscar × bound |",
             "|---|---|---|---|---|---|---|---|"]
    for trace in traces:
        info = summary["traces"][trace]
        rows = {r["policy"]: r for r in default_rows[trace]}
        best = info["best_tuned"]
        name = f"{trace} (held out)" if info["held_out"] else trace
        lines.append(f"| {name} | {_cell(rows['oscar'])} | {_cell(rows['clues'])} | "
                     f"{_tuned_cell(best['clues'])} | {_cell(rows['autoscaler'])} | "
                     f"{_tuned_cell(best['autoscaler'])} | {info['wait_limit_s']:g} | "
                     f"{rows['oscar']['ratio_to_boot_aware_bound']:.2f} |")
    return lines


def write_markdown(traces: list[str], default_rows: dict[str, list[dict[str, Any]]],
                   spread_rows: list[dict[str, Any]],
                   sweep_rows: dict[tuple[str, str, float], dict[str, Any]], summary: dict[str, Any]) -> None:
    standard = [t for t in traces if t != HELDOUT]
    lines = [
        "<!-- written by `python bench/policies.py`; do not edit by hand -->",
        "### Policies on the standard traces and the held-out one (`python bench/policies.py`)",
        "",
        "Node-hours and waits (p50 / p95, seconds) of `oscar` at its defaults against each baseline at "
        "its documented defaults and at its best tuned setting (swept over 0, 30, 60, 120 and 300 s of "
        "CLUES `IDLE_TIME`, or of the Cluster Autoscaler's `scale-down-unneeded-time` and "
        "`scale-down-delay-after-add` together; the run with the fewest node-hours among those with a "
        "p95 wait within the slowest boot + 5 s that interrupt no job: OSCAR's Jobs have "
        "`backoffLimit: 0`, so an interrupted job has failed). Scheduler: kube-scheduler with the "
        "`MostAllocated` scoring profile our k3s_server role configures. Every run meets the same "
        "faults: 1 % of power-ons never come up (each policy's own timeout gives them up; oscar "
        "backs the group off), boot times spread ±10 %; the wait limit is the slowest boot of that "
        "spread + 5 s.",
        "",
        *_comparison_table(standard, summary, default_rows),
        "",
        "Held out (seed committed before any tuning; never used to choose a setting):",
        "",
        *_comparison_table([t for t in traces if t == HELDOUT], summary, default_rows),
        "",
        "Targets for `oscar` at its defaults (p95 ≤ slowest boot + 5 s / fewer node-h than every baseline "
        "at defaults / fewer than every baseline's best tuned run / ≤ 1.3 × boot-aware bound / no job "
        "interrupted or unserved):",
        "",
        "| trace | p95 ok | < defaults | < best tuned | ≤ 1.3 × bound | none interrupted |",
        "|---|---|---|---|---|---|",
    ]
    keys = ("p95_within_boot_plus_5s", "fewer_than_defaults", "fewer_than_tuned", "within_1_3_bound",
            "none_interrupted")
    for trace in traces:
        targets = summary["traces"][trace]["targets"]
        lines.append(f"| {trace} | " + " | ".join("yes" if targets[k] else "**no**" for k in keys) + " |")
    every = [r for t in traces for r in default_rows[t]]
    lines += ["", "Every policy at its defaults:", "", markdown_table(every, extra=("trace",)), ""]
    lines += ["The baselines' sweeps (`setting` = the swept delay):", "",
              markdown_table([sweep_rows[k] for k in sorted(sweep_rows, key=lambda k: (traces.index(k[0]),
                              k[1], k[2]))], extra=("trace", "setting")), ""]
    if spread_rows:
        lines += ["For comparison, every policy at its defaults under stock kube-scheduler, which spreads "
                  "(`LeastAllocated`): no node empties under a falling load, so idle-based scale-in stalls.",
                  "", markdown_table(spread_rows, extra=("trace",)), ""]
    lines += [f"![{trace}](policies-{trace}.png)" for trace in traces] + [""]
    (RESULTS / "policies.md").write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
