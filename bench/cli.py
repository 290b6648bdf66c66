"""bench/cli: how long a user waits for `oscar-deploy --help` and for `plan` of each shipped template.

Runs the installed command as a subprocess, as a user would, several times each, and prints the
medians. Targets: ``--help`` ≤ 0.3 s, ``plan`` ≤ 1 s (the worst template's median).
The size catalogue cache lives in a fresh temporary directory, so the first `plan` run pays for
building it (reported as ``plan_first_s``) and the medians show the steady state.

    python bench/cli.py [--runs N]

The last line printed is one JSON object with the figures: wall-time medians (the targets' unit),
CPU-time medians (``*_cpu_s``, steady under a shared machine's load) and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HELP_TARGET_S = 0.3
PLAN_TARGET_S = 1.0


def find_command() -> str:
    """The installed ``oscar-deploy`` next to this interpreter (a venv), else on PATH."""
    beside = Path(sys.executable).parent / "oscar-deploy"
    if beside.exists():
        return str(beside)
    found = shutil.which("oscar-deploy")
    if not found:
        sys.exit("bench/cli: `oscar-deploy` is not installed (pip install -e .)")
    return found


def timed(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system) time of one run; a failing run aborts with its stderr.

    CPU time is reported too because the build machine is shared: under load the wall time
    measures the neighbours as much as the command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"bench/cli: {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs of each command (default 7)")
    options = parser.parse_args()
    command = find_command()
    templates = sorted((REPO / "tosca" / "templates").glob("*.yaml"))
    if not templates:
        sys.exit("bench/cli: no templates under tosca/templates")

    with tempfile.TemporaryDirectory(prefix="bench-cli-") as cache:
        env = {**os.environ, "OSCAR_DEPLOY_GENERAL_CACHE_DIR": cache}
        help_runs = [timed([command, "--help"], env) for _ in range(options.runs)]
        plan_wall: dict[str, float] = {}
        plan_cpu: dict[str, float] = {}
        first = None
        for template in templates:
            runs = [timed([command, "plan", str(template)], env) for _ in range(options.runs)]
            first = runs[0][0] if first is None else first
            walls = [wall for wall, _ in runs]
            plan_wall[template.name] = median(walls)
            plan_cpu[template.name] = median([cpu for _, cpu in runs])
            print(f"plan {template.name}: median {plan_wall[template.name]:.3f} s wall "
                  f"(min {min(walls):.3f}, max {max(walls):.3f}), {plan_cpu[template.name]:.3f} s CPU",
                  file=sys.stderr)

    help_s = median([wall for wall, _ in help_runs])
    plan_s = max(plan_wall.values())
    print(f"--help: median {help_s:.3f} s wall, {median([cpu for _, cpu in help_runs]):.3f} s CPU",
          file=sys.stderr)
    print(json.dumps({
        "benchmark": "cli",
        "runs": options.runs,
        "help_s": help_s,
        "plan_s": plan_s,
        "help_cpu_s": median([cpu for _, cpu in help_runs]),
        "plan_cpu_s": max(plan_cpu.values()),
        "plan_first_s": round(first or 0.0, 3),
        "plan_by_template": plan_wall,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "targets": {"help_s": HELP_TARGET_S, "plan_s": PLAN_TARGET_S},
        "meets_targets": help_s <= HELP_TARGET_S and plan_s <= PLAN_TARGET_S,
    }))


if __name__ == "__main__":
    main()
