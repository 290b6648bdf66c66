"""bench/cli: how long a user waits for `oscar-deploy --help` and for `plan` of each shipped template.

Runs the installed command as a subprocess, as a user would, several times each, and prints the
medians. Targets (DESIGN §5): ``--help`` ≤ 0.3 s, ``plan`` ≤ 1 s (the worst template's median).
The size catalogue cache lives in a fresh temporary directory, so the first `plan` run pays for
building it (reported as ``plan_first_s``) and the medians show the steady state.

    python bench/cli.py [--runs N]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
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


def timed(args: list[str], env: dict[str, str]) -> float:
    """Wall time of one run; a failing run aborts the benchmark with its stderr."""
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"bench/cli: {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return elapsed


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
        help_times = [timed([command, "--help"], env) for _ in range(options.runs)]
        plan_medians: dict[str, float] = {}
        first = None
        for template in templates:
            times = [timed([command, "plan", str(template)], env) for _ in range(options.runs)]
            first = times[0] if first is None else first
            plan_medians[template.name] = round(statistics.median(times), 3)
            print(f"plan {template.name}: median {plan_medians[template.name]:.3f} s "
                  f"(min {min(times):.3f}, max {max(times):.3f})", file=sys.stderr)

    help_s = round(statistics.median(help_times), 3)
    plan_s = max(plan_medians.values())
    print(f"--help: median {help_s:.3f} s (min {min(help_times):.3f}, max {max(help_times):.3f})",
          file=sys.stderr)
    print(json.dumps({
        "benchmark": "cli",
        "runs": options.runs,
        "help_s": help_s,
        "plan_s": plan_s,
        "plan_first_s": round(first or 0.0, 3),
        "plan_by_template": plan_medians,
        "targets": {"help_s": HELP_TARGET_S, "plan_s": PLAN_TARGET_S},
        "meets_targets": help_s <= HELP_TARGET_S and plan_s <= PLAN_TARGET_S,
    }))


if __name__ == "__main__":
    main()
