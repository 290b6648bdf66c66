"""Board hosts: edge boards for Ansible tests, each an sshd in its own namespaces on 127.0.0.N:2222.

A board is `sshd` under `unshare --mount --uts --pid --fork --mount-proc`, with its own
hostname (`board-1`, ...), its own address (Linux routes all of 127.0.0.0/8 to lo), a private /tmp,
and overlays on /etc, /root, /var, /run, /home, /opt and /usr whose upper layers start from files
prepared in the board's `root_dir` and then live in a tmpfs of the board's own, so what Ansible writes
on one board is seen by no other board nor by the host, and vanishes on teardown. Its PID 1 is
`board_init.py`; killing it kills every process of the board and drops its mounts. A power-off keeps
the board's files (like a disk); only teardown discards them.

Use it as
  * a context manager: `with boards(3) as bs: bs[0].run("hostname")`;
  * pytest fixtures (`tests/conftest.py`: `board_hosts`, `board_factory`);
  * by hand: `python -m tests.harness.boards up --count 3` (then `status`, `poweroff board-2`,
    `poweron board-2`, `down`); `up` prints the inventory to give `ansible -i`.

SSH multiplexing is off everywhere (`ControlMaster=no`, `ControlPath=none`, also as `ansible_ssh_args`,
because Ansible's default `ssh_args` turn ControlPersist on and ssh keeps the first value it is given):
a stale mux master would silently answer for a board that was torn down or powered off. Host keys are
checked against a known_hosts file written per fleet, so a wrong board is an error, not a surprise.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from pathlib import Path

from tests.harness import board_files
from tests.harness.board_files import OVERLAY_DIRS, SSHD, TMPFS_DIRS

PORT = 2222
FIRST_OCTET = 11
DEFAULT_DIR = Path("/tmp/oscar-boards")
LOCK_FILE = Path("/tmp/oscar-boards.lock")
CLAIMS_DIR = Path("/tmp/oscar-boards.claims")
INIT = Path(__file__).with_name("board_init.py")
# The boards' Python for Ansible modules: the system one, as on a real board.
TARGET_PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
NO_MUX = "-o ControlMaster=no -o ControlPath=none"


class BoardError(RuntimeError):
    """A board did not start, stop or switch power as asked; the message carries its log's tail."""


@dataclasses.dataclass(frozen=True)
class Board:
    """One running board host, as a client sees it. `root_dir` is on the host: the seed of its overlays,
    its log (`board.log`: init and sshd), and its state (`state.json`: pids and namespaces)."""

    name: str
    address: str
    port: int
    user: str
    key_path: Path
    hostname: str
    root_dir: Path
    known_hosts: Path
    users: tuple[str, ...] = ("root",)

    def ssh_options(self) -> list[str]:
        """ssh options that reach exactly this board: its key, its known host key, never a mux."""
        return [
            "-F", "/dev/null", "-i", str(self.key_path), "-p", str(self.port),
            "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "ControlMaster=no", "-o", "ControlPath=none",
            "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
        ]

    def ssh_argv(self, command: str | Sequence[str], *, user: str | None = None) -> list[str]:
        remote = command if isinstance(command, str) else shlex.join(command)
        return ["ssh", *self.ssh_options(), f"{user or self.user}@{self.address}", "--", remote]

    def run(
        self, command: str | Sequence[str], *, user: str | None = None, check: bool = True,
        timeout: float = 30.0, input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell command on the board over real ssh (a string goes to the remote shell as is)."""
        return subprocess.run(self.ssh_argv(command, user=user), capture_output=True, text=True,
                              check=check, timeout=timeout, input=input)

    def is_on(self) -> bool:
        """True when the board's sshd answers with an SSH banner."""
        return _banner(self.address, self.port)

    def power_off(self, timeout: float = 10.0) -> None:
        """Like pulling the plug: every process of the board dies (its files stay), sshd stops answering."""
        os.kill(_init_pid(self), signal.SIGUSR1)
        _wait_until(lambda: not self.is_on(), timeout, self, "to power off")

    def power_on(self, timeout: float = 10.0) -> None:
        """Boot again: sshd starts and answers on the same address with the same host key."""
        os.kill(_init_pid(self), signal.SIGUSR2)
        _wait_until(self.is_on, timeout, self, "to power on")

    def to_json(self) -> dict[str, object]:
        data = dataclasses.asdict(self)
        return {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
                for k, v in data.items()}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Board:
        paths = {"key_path", "root_dir", "known_hosts"}
        return cls(**{k: (Path(str(v)) if k in paths else tuple(v) if k == "users" else v)  # type: ignore[arg-type]
                      for k, v in data.items()})


@cache
def availability() -> str | None:
    """Why board hosts cannot run here, or None. Tries the real thing: namespaces and an overlay mount."""
    if os.geteuid() != 0:
        return "board hosts need root (namespaces, overlay mounts, sshd)"
    for tool in ("unshare", "setpriv", "cp", "ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"`{tool}` not found (scripts/test.sh installs util-linux and openssh-client)"
    if not Path(SSHD).exists():
        return f"{SSHD} not found: apt-get install openssh-server (scripts/test.sh does)"
    script = ('mount -t tmpfs tmpfs "$1" && mkdir "$1/u" "$1/w" && '
              'mount -t overlay overlay -o lowerdir=/etc,upperdir="$1/u",workdir="$1/w" "$2"')
    with tempfile.TemporaryDirectory(prefix="oscar-boards-probe-", dir="/tmp") as tmp:
        for d in ("rw", "merged"):
            Path(tmp, d).mkdir()
        probe = subprocess.run(
            ["unshare", "--mount", "--uts", "--pid", "--fork", "--mount-proc",
             "sh", "-c", script, "sh", f"{tmp}/rw", f"{tmp}/merged"],
            capture_output=True, text=True,
        )
    if probe.returncode != 0:
        return f"unshare/overlayfs unavailable: {probe.stderr.strip() or probe.returncode}"
    return None


def _banner(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1.0) as conn:
            conn.settimeout(2.0)
            return conn.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def _log_tail(board: Board, lines: int = 15) -> str:
    log = board.root_dir / "board.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def _wait_until(done: Callable[[], bool], timeout: float, board: Board, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise BoardError(f"{board.name} ({board.address}:{board.port}) did not manage {what} within "
                             f"{timeout:.0f} s; its log ({board.root_dir / 'board.log'}) ends:\n"
                             f"{_log_tail(board)}")
        time.sleep(0.05)


def _state(board: Board) -> dict[str, object]:
    return json.loads((board.root_dir / "state.json").read_text())


def _init_pid(board: Board) -> int:
    """The host pid of the board's init, checked against the recorded namespace (pids get reused)."""
    state = _state(board)
    pid = int(state["init_pid"])  # type: ignore[arg-type]
    try:
        alive = os.readlink(f"/proc/{pid}/ns/pid") == state["pidns"]
    except OSError:
        alive = False
    if not alive:
        raise BoardError(f"{board.name} is not running (its init, pid {pid}, is gone)")
    return pid


def _alive(pid: int) -> bool:
    """True for a live process; a zombie (exited, not yet reaped by its parent) counts as gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def _claim_addresses(count: int, first: int) -> list[str]:
    """Pick `count` addresses 127.0.0.N whose port is free and that no live fleet claims (hold LOCK_FILE)."""
    CLAIMS_DIR.mkdir(exist_ok=True)
    chosen: list[str] = []
    octet = first
    while len(chosen) < count:
        if octet > 254:
            raise BoardError(f"no free address for {count} boards in 127.0.0.{first}-254 (port {PORT})")
        address = f"127.0.0.{octet}"
        octet += 1
        claim = CLAIMS_DIR / address
        if claim.exists():
            with contextlib.suppress(ValueError, OSError):
                if _alive(int(claim.read_text().split()[0])):
                    continue
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((address, PORT))
            except OSError:
                continue
        claim.write_text(f"{os.getpid()}\n")
        chosen.append(address)
    return chosen


def _release(address: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        (CLAIMS_DIR / address).unlink()


def _sweep_dead_fleets() -> None:
    """Delete temp fleets whose boards all died with an interrupted run (kill -9 of pytest): their
    processes went with their parent (pdeathsig), but their files stayed."""
    for fleet_file in Path("/tmp").glob("oscar-boards-*/fleet.json"):
        states = list(fleet_file.parent.glob("*/state.json"))
        with contextlib.suppress(OSError, ValueError, KeyError):
            if not any(_alive(int(json.loads(f.read_text())["unshare_pid"])) for f in states):
                shutil.rmtree(fleet_file.parent, ignore_errors=True)


def _init_state(board: Board, proc: subprocess.Popen[bytes], timeout: float = 5.0) -> dict[str, object]:
    """Find the board's init (the process unshare forked) and its namespaces, or say why there is none."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            init = int(Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()[0])
            namespaces = {kind: os.readlink(f"/proc/{init}/ns/{kind}") for kind in ("pid", "mnt")}
            return {"unshare_pid": proc.pid, "init_pid": init,
                    "pidns": namespaces["pid"], "mntns": namespaces["mnt"]}
        time.sleep(0.01)
    raise BoardError(f"{board.name} did not start (unshare exit status {proc.poll()}); its log "
                     f"({board.root_dir / 'board.log'}) ends:\n{_log_tail(board)}")


def _spawn(board: Board, layers: list[tuple[str, str]], detach: bool) -> subprocess.Popen[bytes]:
    """Start the board's namespaces and init. Attached boards die with the thread that started them."""
    (board.root_dir / "rw").mkdir()
    config = {
        "hostname": board.hostname,
        "seed": str(board.root_dir / "upper"),
        "scratch": str(board.root_dir / "rw"),
        "overlays": layers,
        "tmpfs": [d for d in TMPFS_DIRS if Path(d).is_dir()],
        "sshd": [SSHD, "-D", "-e", "-f", "/etc/ssh/sshd_config"],
    }
    (board.root_dir / "init.json").write_text(json.dumps(config, indent=1))
    argv = ["unshare", "--mount", "--uts", "--pid", "--fork", "--mount-proc", "--kill-child=SIGKILL",
            sys.executable, "-I", "-S", str(INIT), str(board.root_dir / "init.json")]
    if not detach:
        argv = ["setpriv", "--pdeathsig", "KILL", *argv]
    with open(board.root_dir / "board.log", "ab") as log:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=detach, cwd="/")


def start(
    count: int = 3,
    base_dir: Path | None = None,
    *,
    users: Sequence[str] = ("root",),
    prefix: str = "board",
    first_octet: int = FIRST_OCTET,
    detach: bool = False,
    timeout: float = 20.0,
) -> tuple[list[Board], list[subprocess.Popen[bytes]]]:
    """Start `count` boards in parallel and wait until each answers SSH. The first of `users` is each
    board's default login; every listed user accepts the fleet's client key. Prefer `boards()`."""
    if reason := availability():
        raise BoardError(reason)
    base = Path(base_dir) if base_dir else Path(tempfile.mkdtemp(prefix="oscar-boards-", dir="/tmp"))
    if any(base.resolve().is_relative_to(d) for d in OVERLAY_DIRS):
        raise BoardError(f"{base}: the boards' directory must not be under an overlaid dir {OVERLAY_DIRS}")
    base.mkdir(parents=True, exist_ok=True)
    if (base / "fleet.json").exists():
        raise BoardError(f"{base} already holds a fleet; stop it first: "
                         f"`python -m tests.harness.boards --dir {base} down`")
    client_key = base / "id_ed25519"
    if not client_key.exists():
        board_files.generate_key(client_key, "oscar-boards-client")
    authorized = client_key.with_suffix(".pub").read_text().strip()
    known_hosts = base / "known_hosts"
    fleet: list[Board] = []
    procs: list[subprocess.Popen[bytes]] = []
    LOCK_FILE.touch()
    with open(LOCK_FILE) as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _sweep_dead_fleets()
        addresses = _claim_addresses(count, first_octet)
        try:
            for i, address in enumerate(addresses, start=1):
                name = f"{prefix}-{i}"
                board = Board(name=name, address=address, port=PORT, user=users[0], key_path=client_key,
                              hostname=name, root_dir=base / name, known_hosts=known_hosts,
                              users=tuple(users))
                board.root_dir.mkdir()
                layers, host_pub = board_files.prepare_board(
                    board.root_dir, hostname=name, address=address, port=PORT, users=users,
                    authorized_key=authorized)
                with open(known_hosts, "a") as kh:
                    kh.write(f"[{address}]:{PORT} {' '.join(host_pub.split()[:2])}\n")
                procs.append(_spawn(board, layers, detach))
                fleet.append(board)
            for board, proc in zip(fleet, procs, strict=True):
                (board.root_dir / "state.json").write_text(json.dumps(_init_state(board, proc)))
                (CLAIMS_DIR / board.address).write_text(f"{proc.pid}\n")
            deadline = time.monotonic() + timeout
            for board, proc in zip(fleet, procs, strict=True):
                _wait_until(lambda b=board, p=proc: b.is_on() or p.poll() is not None,
                            max(0.1, deadline - time.monotonic()), board, "to answer SSH")
                if proc.poll() is not None:
                    raise BoardError(f"{board.name} exited at start-up ({proc.returncode}); its log ends:\n"
                                     f"{_log_tail(board)}")
        except BaseException:
            stop(fleet, procs)
            for address in addresses:
                _release(address)
            if base_dir is None:
                shutil.rmtree(base, ignore_errors=True)
            raise
    (base / "fleet.json").write_text(json.dumps([b.to_json() for b in fleet], indent=1))
    return fleet, procs


def leftovers(fleet: Sequence[Board]) -> list[str]:
    """Processes still inside any of the boards' pid or mount namespaces (empty after a clean stop)."""
    namespaces = set()
    for board in fleet:
        with contextlib.suppress(OSError):
            state = _state(board)
            namespaces |= {state["pidns"], state["mntns"]}
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            inside = {os.readlink(proc / "ns/pid"), os.readlink(proc / "ns/mnt")} & namespaces
            if inside and _alive(int(proc.name)):
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{proc.name} {cmdline}")
    return found


def stop(
    fleet: Sequence[Board], procs: Sequence[subprocess.Popen[bytes]] = (), timeout: float = 10.0
) -> None:
    """Shut every board down (its init kills all its processes; its mounts go with its namespace), wait
    until nothing of it runs, then delete its files. Safe to call twice."""
    by_pid = {p.pid: p for p in procs}
    pending = []
    for board in fleet:
        try:
            state = _state(board)
        except OSError:  # interrupted before its init was known: kill unshare, --kill-child does the rest
            _release(board.address)
            continue
        with contextlib.suppress(BoardError, ProcessLookupError):
            os.kill(_init_pid(board), signal.SIGTERM)
        pending.append((board, int(state["unshare_pid"])))  # type: ignore[arg-type]
    deadline = time.monotonic() + timeout
    for board, pid in pending:
        proc = by_pid.get(pid)
        while (proc.poll() is None) if proc else _alive(pid):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)  # --kill-child then SIGKILLs the board's init
                if proc:
                    proc.wait(timeout=5)
                deadline = time.monotonic() + 5  # not our child (`down`): give the kernel time to reap
                while not proc and _alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.02)
                break
            time.sleep(0.02)
        _release(board.address)
    recorded = {pid for _, pid in pending}
    for pid, proc in by_pid.items():
        if pid not in recorded and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    if left := leftovers(fleet):
        raise BoardError("board processes survived teardown:\n" + "\n".join(left))
    for board in fleet:
        shutil.rmtree(board.root_dir, ignore_errors=True)


@contextlib.contextmanager
def boards(
    count: int = 3, *, users: Sequence[str] = ("root",), prefix: str = "board", timeout: float = 20.0
) -> Iterator[list[Board]]:
    """`count` running boards in a fresh temp dir, torn down (processes, mounts, files) on exit."""
    fleet, procs = start(count, users=users, prefix=prefix, timeout=timeout)
    base = fleet[0].root_dir.parent
    try:
        yield fleet
    finally:
        stop(fleet, procs)
        shutil.rmtree(base, ignore_errors=True)


def write_inventory(
    fleet: Sequence[Board], path: Path, *, group: str = "boards", user: str | None = None
) -> Path:
    """An Ansible INI inventory of the boards (host name = board name), with mux off and host keys checked."""
    lines = [f"[{group}]"]
    for b in fleet:
        lines.append(f"{b.name} ansible_host={b.address} ansible_port={b.port} ansible_user={user or b.user} "
                     f"ansible_ssh_private_key_file={b.key_path}")
    known_hosts = {str(b.known_hosts) for b in fleet}
    common = (f"-F /dev/null -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes "
              f"-o UserKnownHostsFile={' '.join(sorted(known_hosts))}")
    lines += ["", f"[{group}:vars]",
              f"ansible_ssh_args='{NO_MUX}'",
              f"ansible_ssh_common_args='{common}'",
              # One ssh connection per task instead of four or five, since there is no mux to reuse.
              "ansible_pipelining=true",
              f"ansible_python_interpreter={TARGET_PYTHON}", ""]
    path.write_text("\n".join(lines))
    return path


def power_command(fleet: Sequence[Board], verb: str) -> str:
    """A shell command template (`{node}` = a board's name or address) that powers a board of `fleet` on
    or off from any process: what the elastic daemon's `power: {type: command}` groups call."""
    if verb not in ("poweron", "poweroff"):
        raise ValueError(f"verb must be poweron or poweroff, not {verb!r}")
    base = fleet[0].root_dir.parent
    repo = Path(__file__).resolve().parents[2]
    return (f"cd {shlex.quote(str(repo))} && {shlex.quote(sys.executable)} -m tests.harness.boards "
            f"--dir {shlex.quote(str(base))} {verb} {{node}}")


def load(base_dir: Path = DEFAULT_DIR) -> list[Board]:
    """The boards recorded in `base_dir` (by `up` or `start`)."""
    fleet_file = Path(base_dir) / "fleet.json"
    if not fleet_file.exists():
        raise BoardError(f"no boards in {base_dir} (no fleet.json); start some with `up`")
    return [Board.from_json(d) for d in json.loads(fleet_file.read_text())]


def _by_name(base_dir: Path, name: str) -> Board:
    fleet = load(base_dir)
    for board in fleet:
        if name in (board.name, board.address):
            return board
    raise BoardError(f"no board named {name!r} in {base_dir} (have: {', '.join(b.name for b in fleet)})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.boards",
                                     description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                        help=f"the fleet's directory (default {DEFAULT_DIR})")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start boards in the background; prints their inventory")
    up.add_argument("--count", type=int, default=3)
    up.add_argument("--user", action="append", help="login user(s), first is the default (root)")
    up.add_argument("--first-octet", type=int, default=FIRST_OCTET)
    sub.add_parser("down", help="stop every board of --dir and delete its files")
    sub.add_parser("status", help="list the boards and whether they answer")
    for verb in ("poweron", "poweroff"):
        sub.add_parser(verb, help=f"{verb[5:]} one board (sshd started/stopped)").add_argument("name")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            fleet, _ = start(args.count, args.dir, users=args.user or ["root"], first_octet=args.first_octet,
                             detach=True)
            inventory = write_inventory(fleet, args.dir / "inventory.ini")
            for b in fleet:
                print(f"{b.name}\t{b.address}:{b.port}\t" + shlex.join(b.ssh_argv("hostname")[:-2]))
            print(f"inventory: {inventory}\n  ansible -i {inventory} all -m ping")
        elif args.command == "down":
            fleet = load(args.dir)
            stop(fleet)
            for name in ("fleet.json", "known_hosts", "inventory.ini", "id_ed25519", "id_ed25519.pub"):
                (args.dir / name).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                args.dir.rmdir()
            print(f"stopped {len(fleet)} boards")
        elif args.command == "status":
            for b in load(args.dir):
                print(f"{b.name}\t{b.address}:{b.port}\t{'on' if b.is_on() else 'off'}")
        else:
            board = _by_name(args.dir, args.name)
            board.power_on() if args.command == "poweron" else board.power_off()
            print(f"{board.name} {args.command[5:]}")
    except BoardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
