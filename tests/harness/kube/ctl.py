"""Drive the test cluster's machines from a shell: what a power command does to a real board.

The elastic daemon powers ``command`` nodes with shell commands; in tests those commands
are this tool, so "power on" makes a node boot and register and "power off" silences its kubelet::

    python -m tests.harness.kube.ctl --server http://127.0.0.1:PORT up board-1 --cpus 4 --memory-mib 8192 \\
        --label oscar/group=edge --ready-after 20
    python -m tests.harness.kube.ctl down board-1      # powered off: the node goes NotReady (Unknown)
    python -m tests.harness.kube.ctl delete vm-3       # the machine is gone: the node object too

``--server`` defaults to ``$KUBE_HARNESS_URL``. Standard library only, so a command starts fast.
Exit status: 0 done, 1 the server refused (message on stderr), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any


def _request(server: str, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        server.rstrip("/") + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def _label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--label {text!r}: expected KEY=VALUE")
    return key, value


def _taint(text: str) -> dict[str, str]:
    """``KEY[=VALUE]:EFFECT``, as ``kubectl taint`` writes it."""
    spec, sep, effect = text.rpartition(":")
    if not sep or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
        raise argparse.ArgumentTypeError(f"--taint {text!r}: expected KEY[=VALUE]:NoSchedule|NoExecute")
    key, _, value = spec.partition("=")
    return {"key": key, "value": value, "effect": effect} if value else {"key": key, "effect": effect}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.harness.kube.ctl", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--server", default=os.environ.get("KUBE_HARNESS_URL"), help="$KUBE_HARNESS_URL")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="boot a machine: register its node (or restart its kubelet)")
    up.add_argument("name")
    up.add_argument("--cpus", type=float, default=4)
    up.add_argument("--memory-mib", type=int, default=8192)
    up.add_argument("--gpus", type=int, default=0)
    up.add_argument("--pods", type=int, default=110)
    up.add_argument("--arch", default="amd64")
    up.add_argument("--address", default="127.0.0.1")
    up.add_argument("--label", type=_label, action="append", default=[], metavar="KEY=VALUE")
    up.add_argument("--taint", type=_taint, action="append", default=[], metavar="KEY[=VALUE]:EFFECT")
    up.add_argument("--ready-after", type=float, help="harness seconds until Ready (default: the server's)")
    down = commands.add_parser("down", help="power a machine off: its kubelet stops, the node stays")
    down.add_argument("name")
    delete = commands.add_parser("delete", help="the machine is gone: delete its node")
    delete.add_argument("name")
    args = parser.parse_args(argv)
    if not args.server:
        parser.error("--server (or $KUBE_HARNESS_URL) is required")
    try:
        if args.command == "up":
            body = {
                "name": args.name,
                "cpus": args.cpus,
                "memory_mib": args.memory_mib,
                "gpus": args.gpus,
                "pods": args.pods,
                "arch": args.arch,
                "address": args.address,
                "labels": dict(args.label),
                "taints": args.taint,
                "ready_after_s": args.ready_after,
            }
            _request(args.server, "POST", "/harness/v1/nodes", body)
        elif args.command == "down":
            _request(args.server, "PUT", f"/harness/v1/nodes/{args.name}/kubelet", {"running": False})
        else:
            _request(args.server, "DELETE", f"/harness/v1/nodes/{args.name}")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        with contextlib.suppress(ValueError):
            detail = json.loads(detail).get("message", detail)
        print(f"{args.command} {args.name}: {exc.code} {detail}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"{args.command} {args.name}: cannot reach {args.server}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
