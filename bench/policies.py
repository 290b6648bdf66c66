"""bench/policies: every policy on every standard trace, side by side (DESIGN §5).

    python bench/policies.py [--quick]

Prints one JSON line per (trace, policy), writes ``bench/results/policies.md`` (the table the
README includes) and one PNG per trace beside it, then a sweep of ``oscar``'s ``PolicySettings``
(idle time, cooldown) under both kube-scheduler scoring strategies, and last one JSON summary line.

The target: on each trace ``oscar`` at its defaults uses the fewest node-hours of all policies, at a
p95 wait no worse than the slowest group's boot time + 5 s, and at most 1.15 × the boot-aware
lower bound. The sweep is the evidence for (or against) the defaults.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from elastic.groups import load_groups  # noqa: E402
from elastic.model import NodeGroup, PolicySettings  # noqa: E402
from elastic.sim.engine import EngineSettings  # noqa: E402
from elastic.sim.report import markdown_table, plot_runs  # noqa: E402
from elastic.sim.trace import load_trace  # noqa: E402
from elastic.simulate import POLICIES, make_policy, simulate_one  # noqa: E402

TRACES = ("bursts", "diurnal", "trickle", "mixed", "edge_cloud")
TRACE_DIR = ROOT / "bench" / "traces"
RESULTS = ROOT / "bench" / "results"
RATIO_TARGET = 1.15
SWEEP = ((300.0, 120.0), (120.0, 60.0), (60.0, 30.0), (30.0, 0.0), (0.0, 0.0))
SCORINGS = ("most_allocated", "least_allocated")
"""The default first: our k3s packs (a ``MostAllocated`` profile); stock kube-scheduler spreads."""
BEST_KEYS = ("idle_time_s", "cooldown_s", "node_hours", "ratio_to_boot_aware_bound", "wait_p95_s")


WHY = """\
Why these defaults, and why `oscar` still misses 1.15 × the boot-aware bound on some traces:

- **Idle time ≈ one boot (60 s).** Keeping an idle node on costs node-time; powering it off and
  booting another later costs a boot (`boot_s` of node-time, plus the wait). The boot-aware bound
  charges each gap `min(gap, boot_s)`: the offline optimum of this ski-rental problem. The online
  rule that waits one boot time before powering off is never worse than twice that optimum, and the
  sweep agrees: from 300 s to 60 s, node-hours fall by about 45% on the bursty traces with no change
  in p95 wait. Shorter still (30 s, 0 s) saves a little more on these traces but turns every short
  lull into a cold start for the next job, which a real workload with think-time pays in wait.
- **The scheduler must pack.** Stock kube-scheduler (`LeastAllocated`) puts each new pod on the
  emptiest node, so under a falling load no node ever empties and no policy that only powers off
  idle nodes can scale in; the Cluster Autoscaler then wins only by evicting running pods (its
  under-50% rule), which restarts them. Our k3s runs a `MostAllocated` scoring profile, and the
  simulator models it by default; the spread table shows the difference.
- **The bound is an ideal, not a schedule.** It packs the running jobs perfectly at every instant
  and starts each at its submit time. When a burst arrives faster than nodes boot, every job waits
  for a boot anyway, each real node carries a few jobs of unequal length (it stays on for the
  longest, and durations are unknown when pods are placed), and nodes of different shapes (`mixed`)
  cannot pool their CPU and memory. On `bursts`, `edge_cloud` and `mixed` no idle time, cooldown or
  scoring in the sweep gets within 1.15 ×: the best, at 0 s idle, is about 1.4-1.65 ×.
"""


def meets(row: dict[str, Any], others: list[dict[str, Any]],
          groups: tuple[NodeGroup, ...]) -> dict[str, bool]:
    """The three parts of the target for one ``oscar`` row against the other policies' rows."""
    wait_limit = max(group.boot_s for group in groups) + 5
    return {
        "fewest_node_hours": all(row["node_hours"] <= other["node_hours"] for other in others),
        "p95_within_boot_plus_5s": row["wait_p95_s"] <= wait_limit,
        "within_1_15_bound": row["ratio_to_boot_aware_bound"] <= RATIO_TARGET,
    }


def main() -> None:
    quick = "--quick" in sys.argv
    started = time.perf_counter()
    RESULTS.mkdir(parents=True, exist_ok=True)
    table_rows: list[dict[str, Any]] = []
    summary: dict[str, Any] = {"traces": {}}
    sweep_rows: list[dict[str, Any]] = []
    spread_rows: list[dict[str, Any]] = []
    for trace in TRACES[:2] if quick else TRACES:
        jobs = load_trace(TRACE_DIR / f"{trace}.csv")
        groups = load_groups(TRACE_DIR / f"{trace}.groups.yaml")
        sims, rows = [], []
        for name in POLICIES:
            sim, result = simulate_one(jobs, groups, make_policy(name, groups))
            result["trace"] = trace
            sims.append(sim)
            rows.append(result)
            print(json.dumps({key: result[key] for key in (
                "trace", "policy", "node_hours", "cost", "wait_mean_s", "wait_p95_s", "jobs_unserved",
                "evictions", "lower_bound_node_hours", "lower_bound_boot_aware_node_hours",
                "ratio_to_boot_aware_bound", "sim_wall_s")}), flush=True)
        plot_runs(sims, rows, RESULTS / f"policies-{trace}.png", f"{trace} ({len(jobs)} jobs), each policy")
        table_rows.extend(rows)
        oscar = rows[POLICIES.index("oscar")]
        verdict = meets(oscar, [r for r in rows if r is not oscar], groups)
        # Sweep: oscar's idle time and cooldown, under the scheduler's default spreading and packing.
        best_by_scoring: dict[str, Any] = {}
        for scoring in SCORINGS:
            engine = EngineSettings(scoring=scoring)
            baselines = rows
            if scoring != EngineSettings().scoring:
                baselines = []
                for name in POLICIES:
                    result = simulate_one(jobs, groups, make_policy(name, groups), engine)[1]
                    baselines.append({**result, "trace": trace})
                spread_rows.extend(baselines)
            for idle, cooldown in SWEEP:
                overrides = {"idle_time_s": idle, "cooldown_s": cooldown}
                _, result = simulate_one(jobs, groups, make_policy("oscar", groups, overrides), engine)
                others = [r for r in baselines if r["policy"] != "oscar"]
                row = {"trace": trace, "scoring": scoring, **overrides, "node_hours": result["node_hours"],
                       "wait_p95_s": result["wait_p95_s"],
                       "ratio_to_boot_aware_bound": result["ratio_to_boot_aware_bound"],
                       **meets(result, others, groups)}
                sweep_rows.append(row)
                print(json.dumps({"sweep": row}), flush=True)
            ok = [r for r in sweep_rows if r["trace"] == trace and r["scoring"] == scoring
                  and r["fewest_node_hours"] and r["p95_within_boot_plus_5s"]]
            best_by_scoring[scoring] = min(ok, key=lambda r: r["node_hours"]) if ok else None
        summary["traces"][trace] = {
            "oscar_defaults": verdict, "oscar_ratio": oscar["ratio_to_boot_aware_bound"],
            "oscar_wait_p95_s": oscar["wait_p95_s"],
            "best_sweep": {scoring: best and {k: best[k] for k in BEST_KEYS}
                           for scoring, best in best_by_scoring.items()},
        }
    write_markdown(table_rows, spread_rows, sweep_rows, summary)
    verdicts = [all(t["oscar_defaults"].values()) for t in summary["traces"].values()]
    summary["target_met_at_defaults"] = all(verdicts)
    defaults = PolicySettings()
    summary["defaults"] = {"idle_time_s": defaults.idle_time_s, "cooldown_s": defaults.cooldown_s}
    summary["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps({"benchmark": "policies", **summary}))


def write_markdown(rows: list[dict[str, Any]], spread_rows: list[dict[str, Any]], sweep: list[dict[str, Any]],
                   summary: dict[str, Any]) -> None:
    lines = [
        "<!-- written by `python bench/policies.py`; do not edit by hand -->",
        "### Policies on the standard traces (`python bench/policies.py`)",
        "",
        "Node-hours, cost and waits of each policy at its defaults on each trace of `bench/traces/`, "
        "beside DESIGN §5's boot-aware lower bound (× bound). Scheduler: kube-scheduler with the "
        "`MostAllocated` scoring profile our k3s_server role configures (it packs, so nodes empty).",
        "",
        markdown_table(rows, extra=("trace",)),
        "",
        "Target for `oscar` (fewest node-hours / p95 ≤ slowest boot + 5 s / ≤ 1.15 × bound):",
        "",
        "| trace | fewest node-h | p95 ok | ≤ 1.15 × bound | best sweep (pack) | best sweep (spread) |",
        "|---|---|---|---|---|---|",
    ]
    for trace, info in summary["traces"].items():
        verdict = info["oscar_defaults"]
        cells = ["yes" if verdict[k] else "**no**" for k in
                 ("fewest_node_hours", "p95_within_boot_plus_5s", "within_1_15_bound")]
        best = []
        for scoring in SCORINGS:
            b = info["best_sweep"][scoring]
            best.append(f"idle {b['idle_time_s']:g} s, cooldown {b['cooldown_s']:g} s: "
                        f"{b['ratio_to_boot_aware_bound']:.2f} ×" if b else "none")
        lines.append(f"| {trace} | {' | '.join(cells)} | {' | '.join(best)} |")
    lines += ["", "For comparison, every policy at its defaults under stock kube-scheduler, which spreads "
              "(`LeastAllocated`):", "", markdown_table(spread_rows, extra=("trace",)), "", WHY]
    lines += ["", "Sweep of `oscar`'s idle time and cooldown (`spread` = `LeastAllocated`, `pack` = "
              "`MostAllocated` scheduler scoring):", "",
              "| trace | scoring | idle_time_s | cooldown_s | node-h | wait p95 s | × bound |",
              "|---|---|---|---|---|---|---|"]
    for r in sweep:
        lines.append(f"| {r['trace']} | {'spread' if r['scoring'] == 'least_allocated' else 'pack'} | "
                     f"{r['idle_time_s']:g} | {r['cooldown_s']:g} | {r['node_hours']:.2f} | "
                     f"{r['wait_p95_s']:.1f} | {r['ratio_to_boot_aware_bound']:.3f} |")
    lines += [""] + [f"![{trace}](policies-{trace}.png)" for trace in summary["traces"]] + [""]
    (RESULTS / "policies.md").write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
