"""The files that make a board a board, written into the seed of its overlay upper dirs before it starts.

A file placed in `<root_dir>/upper/etc/...` shadows the real `/etc/...` inside that board only, so each
board has its own sshd_config, host key, hostname, /etc/hosts, authorized keys and (optionally) a
non-root login user in its own /etc/passwd, while the host's files stay untouched. At start-up the
board's init copies this seed into a tmpfs private to the board and uses that as the overlays' upper
layer (see `board_init.py`), so what the board writes later lives in memory and goes with it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

SSHD = "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
# Overlaid in every board: what Ansible writes (config, users, packages, binaries, logs) stays private.
# All of /usr, not only /usr/local: a `dpkg -i` on a board (merged-/usr Debian) must not reach the host.
OVERLAY_DIRS = ("/etc", "/root", "/var", "/run", "/home", "/opt", "/usr")
# A fresh, empty tmpfs in every board (it also hides the harness's own files under /tmp).
TMPFS_DIRS = ("/tmp",)


def layer_name(target: str) -> str:
    """`/usr/local` -> `usr_local`: one flat directory per overlaid target."""
    return target.strip("/").replace("/", "_")


def upper_dir(root_dir: Path, target: str) -> Path:
    return root_dir / "upper" / layer_name(target)


def make_layers(root_dir: Path, targets: Iterable[str] = OVERLAY_DIRS) -> list[tuple[str, str]]:
    """Create the upper seed dir of each target that exists; returns (target, layer name) pairs. The seed's
    root copies the real dir's mode and owner, because an overlay's root shows its upper dir's attributes
    (a 0755 /root would be a different machine)."""
    layers = []
    for target in targets:
        real = Path(target)
        if not real.is_dir():
            continue
        upper = upper_dir(root_dir, target)
        upper.mkdir(parents=True)
        st = real.stat()
        os.chown(upper, st.st_uid, st.st_gid)
        os.chmod(upper, st.st_mode & 0o7777)
        layers.append((target, layer_name(target)))
    return layers


def board_path(root_dir: Path, path: str) -> Path:
    """Where `path` (as seen inside the board) lives in the board's upper dirs."""
    for target in sorted(OVERLAY_DIRS, key=len, reverse=True):
        if path == target or path.startswith(target + "/"):
            return upper_dir(root_dir, target) / path[len(target) :].lstrip("/")
    raise ValueError(f"{path} is not under an overlaid directory")


def write_file(
    root_dir: Path, path: str, text: str, mode: int = 0o644, owner: tuple[int, int] = (0, 0)
) -> None:
    """Write a file as the board will see it; missing parent dirs copy the real ones' mode and owner."""
    dest = board_path(root_dir, path)
    missing = []
    parent, real_parent = dest.parent, Path(path).parent
    while not parent.exists():
        missing.append((parent, real_parent))
        parent, real_parent = parent.parent, real_parent.parent
    for directory, real in reversed(missing):
        directory.mkdir()
        if real.is_dir():
            st = real.stat()
            os.chown(directory, st.st_uid, st.st_gid)
            os.chmod(directory, st.st_mode & 0o7777)
        else:
            os.chown(directory, *owner)
            os.chmod(directory, 0o700 if directory.name == ".ssh" else 0o755)
    dest.write_text(text)
    os.chown(dest, *owner)
    os.chmod(dest, mode)


def generate_key(path: Path, comment: str) -> str:
    """A fresh ed25519 key pair at `path`; returns the public key line."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True, capture_output=True,
    )
    return path.with_suffix(".pub").read_text().strip()


def sshd_config(address: str, port: int) -> str:
    """A complete sshd_config of its own (no Include of the host's): key-only logins, no PAM, no DNS."""
    return "\n".join([
        "# Board host sshd_config, written by tests/harness/board_files.py",
        f"ListenAddress {address}:{port}",
        "HostKey /etc/ssh/ssh_host_ed25519_key",
        "PidFile /run/sshd.pid",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "AuthorizedKeysFile .ssh/authorized_keys",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "UseDNS no",
        "PrintMotd no",
        "MaxStartups 100:30:200",
        "MaxSessions 50",
        "AcceptEnv LANG LC_*",
        f"Subsystem sftp {SFTP_SERVER}",
        "",
    ])


def free_uid(minimum: int = 1001) -> int:
    """A uid and gid no account or group of the host uses (the board's users live in its /etc only)."""
    used = {int(line.split(":")[2]) for f in ("/etc/passwd", "/etc/group")
            for line in Path(f).read_text().splitlines() if line.count(":") >= 2}
    uid = minimum
    while uid in used:
        uid += 1
    return uid


def add_user(root_dir: Path, user: str, authorized_key: str) -> None:
    """A login user in the board's own /etc/passwd, group and shadow (`*`: no password, not locked)."""
    uid = free_uid()
    for name, line in (("passwd", f"{user}:x:{uid}:{uid}:{user}:/home/{user}:/bin/bash"),
                       ("group", f"{user}:x:{uid}:"),
                       ("shadow", f"{user}:*:20000:0:99999:7:::")):
        real = Path("/etc") / name
        mode = real.stat().st_mode & 0o7777
        text = real.read_text()
        write_file(root_dir, f"/etc/{name}", text + ("" if text.endswith("\n") else "\n") + line + "\n", mode,
                   (real.stat().st_uid, real.stat().st_gid))
    home = board_path(root_dir, f"/home/{user}")
    home.mkdir(parents=True)
    os.chown(home, uid, uid)
    os.chmod(home, 0o750)
    for skel in Path("/etc/skel").glob(".*"):
        if skel.is_file():
            shutil.copy(skel, home / skel.name)
            os.chown(home / skel.name, uid, uid)
    write_file(root_dir, f"/home/{user}/.ssh/authorized_keys", authorized_key + "\n", 0o600, (uid, uid))


def fresh_root_dotfiles(root_dir: Path) -> None:
    """root's shell start-up files as on a fresh Debian, not the host's: sshd's bash reads ~/.bashrc even
    for commands, and a developer's (pyenv, conda) costs half a second per Ansible connection."""
    for name in (".bashrc", ".profile"):
        for source in (Path("/usr/share/base-files") / f"dot{name}", Path("/etc/skel") / name):
            if source.is_file():
                write_file(root_dir, f"/root/{name}", source.read_text())
                break


def prepare_board(
    root_dir: Path, *, hostname: str, address: str, port: int, users: Iterable[str], authorized_key: str
) -> tuple[list[tuple[str, str]], str]:
    """Lay out one board's private files; returns its overlay layers and its host public key."""
    layers = make_layers(root_dir)
    write_file(root_dir, "/etc/ssh/sshd_config", sshd_config(address, port))
    key_dir = root_dir / "hostkey"
    key_dir.mkdir()
    host_pub = generate_key(key_dir / "ssh_host_ed25519_key", f"root@{hostname}")
    private = (key_dir / "ssh_host_ed25519_key").read_text()
    write_file(root_dir, "/etc/ssh/ssh_host_ed25519_key", private, 0o600)
    write_file(root_dir, "/etc/ssh/ssh_host_ed25519_key.pub", host_pub + "\n")
    write_file(root_dir, "/etc/hostname", hostname + "\n")
    hosts = Path("/etc/hosts").read_text()
    write_file(root_dir, "/etc/hosts", f"{address}\t{hostname}\n" + hosts)
    fresh_root_dotfiles(root_dir)
    for user in users:
        if user == "root":
            write_file(root_dir, "/root/.ssh/authorized_keys", authorized_key + "\n", 0o600)
        else:
            add_user(root_dir, user, authorized_key)
    return layers, host_pub
