"""bench/provision: wall time of `create` for 1 front-end + 20 workers vs 1 + 1.

Against the EC2 emulator (tests/harness/ec2.py: moto behind the EC2 fix-up layer) with 1 s of
injected latency on every API call, through the real engine and the stock-libcloud EC2 driver,
with the default settings (``parallel_creates`` = 10). Machines are created in parallel and the
per-deployment groundwork (key pair, security group, image) is done once, so 21 machines should
cost little more than 2: target ratio ≤ 1.5. Each deployment is destroyed afterwards (untimed,
without latency). Prints one JSON line last.

Run from the repository root: ``python bench/provision.py [--latency 1.0] [--workers 20]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from provisioner.clouds.ec2 import Ec2Driver  # noqa: E402
from provisioner.config import GeneralSettings, Settings  # noqa: E402
from provisioner.credentials import AwsCredentials, CredentialSource  # noqa: E402
from provisioner.engine import CreateRequest, create, destroy  # noqa: E402
from provisioner.plan import make_plan  # noqa: E402
from provisioner.resources import templates_dir  # noqa: E402
from provisioner.state import StateStore  # noqa: E402
from provisioner.template import load_cluster_spec  # noqa: E402
from tests.harness.ec2 import Ec2Emulator  # noqa: E402

REGION = "us-east-1"


def timed_create(emulator: Ec2Emulator, store: StateStore, settings: Settings, workers: int,
                 latency_s: float) -> tuple[float, int]:
    """Seconds to create 1 front-end + ``workers`` workers (volume, address, all running), and the
    number of API calls it made."""
    credentials = AwsCredentials("AKIDBENCHPROVISION01", "bench-secret", CredentialSource("environment"),
                                 endpoint_url=emulator.endpoint)

    def factory(_provider: str, region: str | None) -> Ec2Driver:
        return Ec2Driver(credentials, region or REGION, settings.provisioner)

    spec = load_cluster_spec([templates_dir() / "oscar-aws.yaml"],
                             {"wn_num": str(workers), "max_wn_num": str(max(workers, 4)),
                              "admin_cidr": "10.0.0.0/8", "region": REGION},
                             import_paths=[], cache_dir=Path(settings.general.cache_dir))
    request = CreateRequest(make_plan(spec, settings), name=f"bench-{workers}", configure=False)
    emulator.set_faults({"latency_s": latency_s})
    calls_before = len(emulator.calls)
    start = time.perf_counter()
    dep = create(store, request, factory, settings)
    elapsed = time.perf_counter() - start
    calls = len(emulator.calls) - calls_before
    emulator.set_faults({})
    running = [i for i in emulator.inventory(REGION)["instances"]
               if i["state"] == "running" and i["tags"].get("oscar-deploy:deployment") == dep.id]
    assert len(running) == workers + 1, f"expected {workers + 1} machines, found {len(running)}"
    destroy(store, dep.id, factory)
    return elapsed, calls


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=1.0, help="seconds added to every API call")
    parser.add_argument("--workers", type=int, default=20)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-provision-") as tmp, Ec2Emulator() as emulator, \
            StateStore.open(Path(tmp) / "state.db") as store:
        settings = Settings(general=GeneralSettings(cache_dir=str(Path(tmp) / "cache")))
        small_s, small_calls = timed_create(emulator, store, settings, 1, args.latency)
        print(f"1 + 1: {small_s:.1f} s ({small_calls} API calls)", file=sys.stderr)
        large_s, large_calls = timed_create(emulator, store, settings, args.workers, args.latency)
        print(f"1 + {args.workers}: {large_s:.1f} s ({large_calls} API calls)", file=sys.stderr)
    print(json.dumps({"benchmark": "provision", "latency_s": args.latency,
                      "parallel_creates": settings.provisioner.parallel_creates,
                      "small_nodes": 2, "large_nodes": args.workers + 1,
                      "small_s": round(small_s, 2), "large_s": round(large_s, 2),
                      "small_calls": small_calls, "large_calls": large_calls,
                      "ratio": round(large_s / small_s, 3), "target_ratio": 1.5}))


if __name__ == "__main__":
    main()
