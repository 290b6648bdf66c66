"""PID 1 of one board host: private mounts, its hostname, sshd, and power switching by signal.

It runs inside `unshare --mount --uts --pid --fork --mount-proc`, so it is the init of the board's pid
namespace: when it exits, the kernel kills every process of the board, and the mount namespace (with
its overlays) goes away with the last of them. Nothing needs unmounting by hand, and nothing survives.
The overlays' upper layers live in a tmpfs mounted in that namespace only, seeded with the board's
prepared files: tmpfs is a valid upper layer on any host (an overlayfs root, as in containers, is not),
and the board's writes never reach the host's disk.

Signals from the harness (`tests/harness/boards.py`):
  SIGUSR1  power off: kill every process of the board but this one (sshd and all sessions);
  SIGUSR2  power on: start sshd again (no-op when it runs);
  SIGTERM  shut down (also SIGINT, SIGHUP).
Signals are taken synchronously with `sigwaitinfo`, so there are no handler races, and init also reaps
the orphans reparented to it (it is PID 1). Standard library only, and no import of the rest of the
harness: it runs before anything else and should start fast.

Usage: python board_init.py CONFIG.json  (written by boards.py; see `BoardInitConfig` there).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

CONTROL = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2}
_LIBC = ctypes.CDLL(None, use_errno=True)


def log(message: str) -> None:
    """One line to the board's log (our stderr is the log file the harness opened)."""
    print(f"board-init: {message}", file=sys.stderr, flush=True)


def mount(source: str, target: str, fstype: str, options: str) -> None:
    """mount(2) directly: one syscall, no `mount` process per overlay."""
    rc = _LIBC.mount(source.encode(), target.encode(), fstype.encode(), 0, options.encode())
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount -t {fstype} -o {options} {target}: {os.strerror(err)}")


def setup(config: dict[str, Any]) -> None:
    """Overlay the board's private directories, hide /tmp, set the hostname, prepare sshd's dirs."""
    scratch = Path(config["scratch"])
    mount("tmpfs", str(scratch), "tmpfs", "mode=0700")
    subprocess.run(["cp", "-a", config["seed"], str(scratch / "upper")], check=True)
    for target, name in config["overlays"]:
        upper, work = scratch / "upper" / name, scratch / "work" / name
        work.mkdir(parents=True)
        mount("overlay", target, "overlay", f"lowerdir={target},upperdir={upper},workdir={work}")
    for target in config["tmpfs"]:
        mount("tmpfs", target, "tmpfs", "mode=1777")
    socket.sethostname(config["hostname"])
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)


def start_sshd(argv: list[str]) -> int:
    """Start sshd in the foreground as our child, with a clean signal mask (ours blocks CONTROL)."""
    pid = os.posix_spawn(argv[0], argv, dict(os.environ), setsigmask=())
    log(f"sshd started (pid {pid} in the board)")
    return pid


def reap() -> set[int]:
    """Collect every exited child (init inherits all orphans of the board)."""
    gone: set[int] = set()
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return gone
        if pid == 0:
            return gone
        gone.add(pid)


def kill_all() -> None:
    """Kill every process of the board except init (kill(-1) from a namespace's init spares itself)."""
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        return
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def main(argv: list[str]) -> int:
    config = json.loads(Path(argv[1]).read_text())
    signal.pthread_sigmask(signal.SIG_BLOCK, CONTROL)
    try:
        setup(config)
    except (OSError, subprocess.CalledProcessError) as exc:
        log(f"setup failed: {exc}")
        return 1
    sshd: int | None = start_sshd(config["sshd"])
    while True:
        info = signal.sigwaitinfo(CONTROL)
        if info.si_signo == signal.SIGCHLD:
            if sshd in reap():
                log("sshd exited")
                sshd = None
        elif info.si_signo == signal.SIGUSR1:
            kill_all()
            sshd = None
            log("powered off")
        elif info.si_signo == signal.SIGUSR2:
            if sshd is None:
                sshd = start_sshd(config["sshd"])
            log("powered on")
        else:
            kill_all()
            log(f"shut down by signal {info.si_signo}")
            return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
