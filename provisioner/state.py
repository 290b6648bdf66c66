"""The state store: one SQLite file that remembers deployments, their nodes, events and secrets.

The cloud is the source of truth for what exists; this file is the operator's memory of
what was asked for and what was seen, so ``destroy``, ``show`` and resume know where to look.

How the engine uses it (the contract the cloud drivers and the engine build on)::

    store = StateStore.open(settings_path)            # creates the file 0600, its directory 0700
    dep = store.find(name) or store.create_deployment(  # find: a re-run with --name resumes
        name, plan=record.to_dict(), templates=[...], inputs={...},
        credentials={"aws": creds.source.to_json()},  # where from, never the values
        locations=[("aws", "eu-west-1")])             # recorded BEFORE the first cloud call
    with store.lock(dep.id):                          # refuses a second concurrent run, clearly
        store.ensure_secret(dep.id, "k3s_token", generate_secret)     # stable across resumes
        store.record_node(dep.id, group="wn", name=..., provider="aws", region=...)   # before create
        store.update_node(dep.id, name, cloud_id="i-…", state="running")  # as soon as it exists
        store.add_event(dep.id, "node-created", "wn-1 is i-…")
        store.set_status(dep.id, "created")

Design choices:

- **Small transactions.** Every call is its own short ``BEGIN IMMEDIATE`` … ``COMMIT``, so a crash
  (kill -9) loses at most the call in flight, and the next run reconciles with the cloud.
- **WAL journal + busy timeout.** Readers never wait for writers (``list``/``show`` work while a
  ``create`` runs), and two processes writing different deployments queue for the write lock for a
  few milliseconds instead of failing with "database is locked".
- **Per-deployment run lock**: ``fcntl.flock`` on ``<state dir>/deployments/<id>/.lock``. The kernel
  drops it when the holder dies (even by kill -9), so a crash never blocks the next run; the holder
  writes its pid into the file so the refusal can name it. Reads take no lock. (flock is local
  to one machine: keep the state file off NFS, as SQLite itself advises.)
- **Schema versioned** with ``PRAGMA user_version`` and a list of migration steps; a file written
  by a newer oscar-deploy is refused rather than misread.
- **No cloud credentials here**: a deployment records only *where* its credentials came from
  (``credentials``: provider → a JSON-able description, see ``provisioner.credentials``). Generated
  secrets (k3s token, MinIO and OSCAR passwords) are stored, read only by ``secret()``/``secrets()``,
  and never appear in ``Deployment`` or ``Node`` objects or their reprs.
- Per-deployment files (the private SSH key, kubeconfig, logs) live in ``deployment_dir(id)``
  (``<state dir>/deployments/<id>/``, mode 0700; write key files with ``write_private_file``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import logging
import os
import re
import secrets
import shutil
import sqlite3
import string
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from provisioner.errors import BadInput, NotFound, StateError
from provisioner.record import DeploymentRecord, RecordError, read_record

log = logging.getLogger(__name__)

Status = Literal["creating", "created", "failed", "destroying", "destroyed"]
STATUSES: tuple[str, ...] = ("creating", "created", "failed", "destroying", "destroyed")

BUSY_TIMEOUT_MS = 15_000
"""How long a writer waits for another process's write transaction (they last milliseconds)."""

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class InvalidName(StateError, BadInput):
    """A ``--name`` the state file cannot take: bad input (exit 2), refused before anything is recorded."""


class UnknownDeployment(NotFound, BadInput):
    """An ID argument that names no deployment: bad input (exit 2), like any other wrong argument."""

# Each step moves the schema from version i to i+1. Append only; never edit a released step.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE deployments (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            status TEXT NOT NULL,
            plan TEXT NOT NULL,
            templates TEXT NOT NULL,
            inputs TEXT NOT NULL,
            credentials TEXT NOT NULL,
            locations TEXT NOT NULL
        )""",
        """CREATE TABLE nodes (
            deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            grp TEXT NOT NULL,
            provider TEXT NOT NULL,
            region TEXT,
            cloud_id TEXT,
            addresses TEXT NOT NULL,
            state TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (deployment_id, name)
        )""",
        """CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
            at TEXT NOT NULL,
            kind TEXT NOT NULL,
            message TEXT NOT NULL
        )""",
        "CREATE INDEX events_by_deployment ON events(deployment_id, seq)",
        """CREATE TABLE secrets (
            deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            value TEXT NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (deployment_id, name)
        )""",
    ),
    (  # 2: the size and zone a machine got (a capacity fallback shows in `show`, not only in events)
        "ALTER TABLE nodes ADD COLUMN size TEXT",
        "ALTER TABLE nodes ADD COLUMN zone TEXT",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclasses.dataclass(frozen=True)
class Deployment:
    """A deployment as recorded. Holds no secret values (those are only in ``secret()``)."""

    id: str
    name: str
    status: str
    created_at: str
    """ISO 8601 UTC."""
    updated_at: str
    plan: Mapping[str, Any]
    """The deployment record as stored JSON; read it typed with ``StateStore.record`` (which migrates
    an older record once) or ``provisioner.record.read_record``."""
    templates: tuple[str, ...]
    inputs: Mapping[str, Any]
    """Non-secret input values, as resolved (secret inputs appear as ``{secret.NAME}``)."""
    credentials: Mapping[str, Any]
    """Provider → where its credentials came from (never the values)."""
    locations: tuple[tuple[str, str | None], ...]
    """(provider, region) pairs the deployment uses: where ``destroy`` sweeps."""


@dataclasses.dataclass(frozen=True)
class Node:
    """A machine of a deployment: created (cloud) or adopted (edge board)."""

    deployment_id: str
    name: str
    group: str
    provider: str
    region: str | None
    cloud_id: str | None
    """The cloud's id (``i-…``, a Nova server uuid); None until the create call answered."""
    addresses: Mapping[str, Any]
    """E.g. ``{"public": ["198.51.100.7"], "private": ["10.0.0.5"]}``."""
    state: str
    created_at: str
    updated_at: str
    size: str | None = None
    """The instance type or flavor it runs on (None for boards, or before the create call answered)."""
    zone: str | None = None


@dataclasses.dataclass(frozen=True)
class Event:
    deployment_id: str
    at: str
    kind: str
    message: str


def _ensure_private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) with mode 0700; only directories we create are chmod-ed,
    so ``--state /tmp/x.db`` never changes ``/tmp``."""
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask


def write_private_file(path: Path, data: str | bytes) -> None:
    """Write a file only its owner can read (SSH private keys, kubeconfigs), never briefly wider."""
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, raw)
    finally:
        os.close(fd)


# --- generated secrets ---------------------------------------------------------------------------

_ALNUM = string.ascii_letters + string.digits


def new_password(length: int = 24) -> str:
    """A random password of letters and digits (safe unquoted in YAML, shells, URLs and htpasswd).

    24 characters give ~142 bits; MinIO needs at least 8. Always has a lower, an upper and a digit,
    for services with complexity rules.
    """
    if length < 8:
        raise ValueError("passwords shorter than 8 characters are refused (MinIO's minimum)")
    while True:
        value = "".join(secrets.choice(_ALNUM) for _ in range(length))
        if (any(c.islower() for c in value) and any(c.isupper() for c in value)
                and any(c.isdigit() for c in value)):
            return value


def new_token(nbytes: int = 32) -> str:
    """A random hex token (k3s join token, API tokens): 64 hex characters by default."""
    return secrets.token_hex(nbytes)


def new_urlsafe(nbytes: int = 32) -> str:
    """A ``secrets.token_urlsafe`` value, for consumers that accept ``-`` and ``_``."""
    return secrets.token_urlsafe(nbytes)


def generate_secret(name: str) -> str:
    """A fresh value for the secret ``name``: a hex token when the name says token/key, else a
    24-character password. Never a default value."""
    lowered = name.lower()
    if "token" in lowered or lowered.endswith(("_key", "-key")):
        return new_token()
    return new_password()


# --- the store -----------------------------------------------------------------------------------


class StateStore:
    """The SQLite state file. One instance per process; safe to share between threads."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn
        self._mutex = threading.RLock()
        self._held: dict[str, tuple[int, int]] = {}
        """deployment id → (fd, depth) of run locks this process holds (re-entrant)."""

    # -- opening and schema --

    @classmethod
    def open(cls, path: str | Path) -> StateStore:
        """Open (creating if needed) the state file at ``path``; migrate an older schema."""
        db = Path(path).expanduser()
        try:
            _ensure_private_dir(db.parent)
            if not db.exists():
                fd = os.open(db, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
                os.fchmod(fd, 0o600)
                os.close(fd)
            elif db.stat().st_mode & 0o077 and db.stat().st_uid == os.getuid():
                os.chmod(db, 0o600)  # secrets live here: never group- or world-readable
        except FileExistsError:
            pass
        except OSError as exc:
            # the path is the user's (--state, [general] state): bad input, nothing was changed
            raise BadInput(f"{db}: cannot create the state file: {exc.strerror}; give a writable path "
                           f"with --state or [general] state") from None
        try:
            conn = sqlite3.connect(db, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                   check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as exc:
            raise StateError(f"{db}: not a usable oscar-deploy state file ({exc})") from None
        store = cls(db, conn)
        store._migrate()
        return store

    def close(self) -> None:
        with self._mutex:
            self._conn.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction (``BEGIN IMMEDIATE`` takes the write lock up front, so two
        writers queue instead of deadlocking on a read→write upgrade)."""
        with self._mutex:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StateError(f"{self.path}: the state file stayed locked: {exc}") from None
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._mutex:
            return self._conn.execute(sql, params).fetchall()

    def _migrate(self) -> None:
        try:
            current = self._conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StateError(f"{self.path}: not a usable oscar-deploy state file ({exc})") from None
        if current > SCHEMA_VERSION:
            raise StateError(
                f"{self.path}: state file has schema version {current}, newer than this oscar-deploy "
                f"knows ({SCHEMA_VERSION}); upgrade oscar-deploy to use it")
        if current == SCHEMA_VERSION:
            return
        with self._write() as conn:
            current = conn.execute("PRAGMA user_version").fetchone()[0]  # another process may have won
            for version in range(current, SCHEMA_VERSION):
                for statement in MIGRATIONS[version]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {version + 1}")

    @property
    def schema_version(self) -> int:
        return int(self._read("PRAGMA user_version")[0][0])

    # -- per-deployment files and locks --

    def deployment_dir(self, deployment_id: str) -> Path:
        """``<state dir>/deployments/<id>/`` (0700), created on first use: SSH key, kubeconfig, logs."""
        if not re.fullmatch(r"[0-9a-f]{8}", deployment_id):
            raise StateError(f"{deployment_id!r} is not a deployment id")
        path = self.path.parent / "deployments" / deployment_id
        _ensure_private_dir(path)
        return path

    @contextlib.contextmanager
    def lock(self, ref: str) -> Iterator[Deployment]:
        """Hold the run lock of deployment ``ref`` (id or name) for a mutating command.

        Raises ``StateError`` naming the holder's pid when another process holds it. Re-entrant in
        one process. The kernel releases it if this process dies, so a crash never blocks forever.
        """
        dep = self.get(ref)
        with self._mutex:
            held = self._held.get(dep.id)
            if held:
                self._held[dep.id] = (held[0], held[1] + 1)
        if not held:
            fd = self._acquire(dep)
            with self._mutex:
                self._held[dep.id] = (fd, 1)
        try:
            yield self.get(dep.id)
        finally:
            with self._mutex:
                fd, depth = self._held[dep.id]
                if depth > 1:
                    self._held[dep.id] = (fd, depth - 1)
                else:
                    del self._held[dep.id]
                    os.close(fd)  # closing the descriptor releases the flock

    def _acquire(self, dep: Deployment) -> int:
        lock_path = self.deployment_dir(dep.id) / ".lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                raise StateError(f"{lock_path}: cannot lock: {exc.strerror}") from None
            holder = _read_pid(lock_path)
            raise StateError(
                f"deployment {dep.name} ({dep.id}) is being changed by another oscar-deploy run "
                f"(pid {holder or 'unknown'}); wait for it to finish or stop it") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    def is_locked(self, ref: str) -> int | None:
        """The pid of the run holding ``ref``'s lock, or None; never waits."""
        dep = self.get(ref)
        lock_path = self.path.parent / "deployments" / dep.id / ".lock"
        if not lock_path.exists():
            return None
        fd = os.open(lock_path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return _read_pid(lock_path) or -1
        finally:
            os.close(fd)
        return None

    # -- deployments --

    def create_deployment(
        self,
        name: str | None,
        *,
        plan: Mapping[str, Any],
        templates: Iterable[str | Path] = (),
        inputs: Mapping[str, Any] | None = None,
        credentials: Mapping[str, Any] | None = None,
        locations: Iterable[tuple[str, str | None]] = (),
        status: Status = "creating",
    ) -> Deployment:
        """Record a new deployment (before any cloud call). ``name`` defaults to the new id.

        An existing ``name`` is a ``StateError``: the engine looks it up first to resume.
        """
        if name is not None and not _NAME_RE.match(name):
            raise InvalidName(
                f"deployment name {name!r} is not valid: use 1-63 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit")
        _check_status(status)
        now = _now_iso()
        with self._write() as conn:
            taken = {r[0] for r in conn.execute(
                "SELECT id FROM deployments UNION SELECT name FROM deployments")}
            if name is not None and name in taken:
                row = conn.execute("SELECT id FROM deployments WHERE name = ? OR id = ?",
                                   (name, name)).fetchone()
                raise StateError(f"a deployment named {name!r} already exists (id {row[0]})")
            dep_id = secrets.token_hex(4)
            while dep_id in taken:
                dep_id = secrets.token_hex(4)
            conn.execute(
                "INSERT INTO deployments (id, name, created_at, updated_at, status, plan, templates, "
                "inputs, credentials, locations) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (dep_id, name or dep_id, now, now, status, _dump(plan), _dump([str(t) for t in templates]),
                 _dump(dict(inputs or {})), _dump(dict(credentials or {})),
                 _dump(_unique_locations(locations))),
            )
            conn.execute("INSERT INTO events (deployment_id, at, kind, message) VALUES (?, ?, ?, ?)",
                         (dep_id, now, "recorded", f"deployment {name or dep_id} recorded"))
        return self.get(dep_id)

    def get(self, ref: str) -> Deployment:
        """The deployment whose id or name is ``ref``; ``NotFound`` naming it otherwise."""
        rows = self._read("SELECT * FROM deployments WHERE id = ? UNION ALL "
                          "SELECT * FROM deployments WHERE name = ? AND id <> ?", (ref, ref, ref))
        if not rows:
            raise UnknownDeployment(f"no deployment with id or name {ref!r} in {self.path}")
        return _deployment(rows[0])

    def find(self, ref: str) -> Deployment | None:
        """Like ``get`` but None when there is no such deployment (for resume by ``--name``)."""
        try:
            return self.get(ref)
        except NotFound:
            return None

    def list_deployments(self) -> list[Deployment]:
        """Every deployment, oldest first."""
        return [_deployment(r) for r in self._read("SELECT * FROM deployments ORDER BY created_at, id")]

    def set_status(self, deployment_id: str, status: Status) -> None:
        _check_status(status)
        self._update_deployment(deployment_id, status=status)

    def set_plan(self, deployment_id: str, plan: Mapping[str, Any]) -> None:
        """Replace the recorded plan (``scale`` changes a group's count)."""
        self._update_deployment(deployment_id, plan=_dump(plan))

    def set_inputs(self, deployment_id: str, inputs: Mapping[str, Any]) -> None:
        """Replace the recorded inputs (``create --update`` changed some in place)."""
        self._update_deployment(deployment_id, inputs=_dump(dict(inputs)))

    def record(self, ref: str) -> DeploymentRecord:
        """The typed record of deployment ``ref`` (``provisioner.record``). A record of the older
        untyped format is migrated once: written back in the current format, with a message."""
        dep = self.get(ref)
        try:
            record, migrated = read_record(dep.plan)
        except RecordError as error:
            raise RecordError(f"deployment {dep.name}: {error} (state file {self.path})") from None
        if migrated:
            self.set_plan(dep.id, record.to_dict())
            self.add_event(dep.id, "record-migrated", f"record migrated to version {record.version}")
            log.warning("deployment %s: its record, written by an older oscar-deploy, was migrated to record "
                        "version %d", dep.name, record.version)
        return record

    def add_location(self, deployment_id: str, provider: str, region: str | None) -> None:
        """Remember that the deployment uses ``provider``/``region`` (before creating anything there)."""
        with self._write() as conn:
            row = conn.execute("SELECT locations FROM deployments WHERE id = ?", (deployment_id,)).fetchone()
            if row is None:
                raise NotFound(f"no deployment with id {deployment_id!r} in {self.path}")
            locations = _unique_locations([*map(tuple, json.loads(row[0])), (provider, region)])
            conn.execute("UPDATE deployments SET locations = ?, updated_at = ? WHERE id = ?",
                         (_dump(locations), _now_iso(), deployment_id))

    def _update_deployment(self, deployment_id: str, **columns: str) -> None:
        sets = ", ".join(f"{column} = ?" for column in columns)
        with self._write() as conn:
            cursor = conn.execute(f"UPDATE deployments SET {sets}, updated_at = ? WHERE id = ?",
                                  (*columns.values(), _now_iso(), deployment_id))
            if cursor.rowcount == 0:
                raise NotFound(f"no deployment with id {deployment_id!r} in {self.path}")

    def forget(self, deployment_id: str) -> None:
        """Remove a deployment's record, nodes, events, secrets and directory (after ``destroy``)."""
        with self._write() as conn:
            conn.execute("DELETE FROM deployments WHERE id = ?", (deployment_id,))
        directory = self.path.parent / "deployments" / deployment_id
        shutil.rmtree(directory, ignore_errors=True)

    # -- nodes --

    def record_node(
        self,
        deployment_id: str,
        *,
        group: str,
        name: str,
        provider: str,
        region: str | None = None,
        cloud_id: str | None = None,
        addresses: Mapping[str, Any] | None = None,
        state: str = "creating",
        size: str | None = None,
        zone: str | None = None,
    ) -> Node:
        """Insert or replace a node (call it before the create call, then ``update_node``)."""
        now = _now_iso()
        with self._write() as conn:
            old = conn.execute("SELECT created_at FROM nodes WHERE deployment_id = ? AND name = ?",
                               (deployment_id, name)).fetchone()
            try:
                conn.execute(
                    "INSERT OR REPLACE INTO nodes (deployment_id, name, grp, provider, region, cloud_id, "
                    "addresses, state, created_at, updated_at, size, zone) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (deployment_id, name, group, provider, region, cloud_id, _dump(dict(addresses or {})),
                     state, old[0] if old else now, now, size, zone),
                )
            except sqlite3.IntegrityError:
                raise NotFound(f"no deployment with id {deployment_id!r} in {self.path}") from None
        return self.node(deployment_id, name)

    def update_node(
        self,
        deployment_id: str,
        name: str,
        *,
        cloud_id: str | None = None,
        addresses: Mapping[str, Any] | None = None,
        state: str | None = None,
        size: str | None = None,
        zone: str | None = None,
    ) -> Node:
        """Change the given fields of a recorded node; None leaves a field as it is."""
        changes: dict[str, Any] = {}
        if size is not None:
            changes["size"] = size
        if zone is not None:
            changes["zone"] = zone
        if cloud_id is not None:
            changes["cloud_id"] = cloud_id
        if addresses is not None:
            changes["addresses"] = _dump(dict(addresses))
        if state is not None:
            changes["state"] = state
        sets = "".join(f"{column} = ?, " for column in changes)
        with self._write() as conn:
            cursor = conn.execute(
                f"UPDATE nodes SET {sets}updated_at = ? WHERE deployment_id = ? AND name = ?",
                (*changes.values(), _now_iso(), deployment_id, name))
            if cursor.rowcount == 0:
                raise NotFound(f"deployment {deployment_id}: no node {name!r}")
        return self.node(deployment_id, name)

    def remove_node(self, deployment_id: str, name: str) -> None:
        """Forget a node (after the cloud confirmed it is gone); absent nodes are fine."""
        with self._write() as conn:
            conn.execute("DELETE FROM nodes WHERE deployment_id = ? AND name = ?", (deployment_id, name))

    def node(self, deployment_id: str, name: str) -> Node:
        rows = self._read("SELECT * FROM nodes WHERE deployment_id = ? AND name = ?", (deployment_id, name))
        if not rows:
            raise NotFound(f"deployment {deployment_id}: no node {name!r}")
        return _node(rows[0])

    def nodes(self, deployment_id: str, group: str | None = None) -> list[Node]:
        """The deployment's nodes (of one group if given), oldest first."""
        sql = "SELECT * FROM nodes WHERE deployment_id = ?"
        params: list[Any] = [deployment_id]
        if group is not None:
            sql += " AND grp = ?"
            params.append(group)
        return [_node(r) for r in self._read(sql + " ORDER BY created_at, name", params)]

    # -- events --

    def add_event(self, deployment_id: str, kind: str, message: str) -> None:
        """Append to the deployment's history (``show`` prints it). Never put secret values here."""
        with self._write() as conn:
            try:
                conn.execute("INSERT INTO events (deployment_id, at, kind, message) VALUES (?, ?, ?, ?)",
                             (deployment_id, _now_iso(), kind, message))
            except sqlite3.IntegrityError:
                raise NotFound(f"no deployment with id {deployment_id!r} in {self.path}") from None

    def events(self, deployment_id: str, limit: int | None = None) -> list[Event]:
        """The deployment's events, oldest first (the last ``limit`` if given)."""
        rows = self._read("SELECT * FROM events WHERE deployment_id = ? ORDER BY seq DESC LIMIT ?",
                          (deployment_id, -1 if limit is None else limit))
        return [Event(r["deployment_id"], r["at"], r["kind"], r["message"]) for r in reversed(rows)]

    # -- secrets --

    def set_secret(self, deployment_id: str, name: str, value: str) -> None:
        """Store (or replace) a deployment's secret."""
        with self._write() as conn:
            try:
                conn.execute("INSERT OR REPLACE INTO secrets (deployment_id, name, value, created_at) "
                             "VALUES (?, ?, ?, ?)", (deployment_id, name, value, _now_iso()))
            except sqlite3.IntegrityError:
                raise NotFound(f"no deployment with id {deployment_id!r} in {self.path}") from None

    def ensure_secret(self, deployment_id: str, name: str,
                      generate: Callable[[str], str] = generate_secret) -> str:
        """The stored secret ``name``, generated and stored first if absent: a resumed ``create``
        reuses the values the first attempt generated (machines may already carry them)."""
        with self._write() as conn:
            row = conn.execute("SELECT value FROM secrets WHERE deployment_id = ? AND name = ?",
                               (deployment_id, name)).fetchone()
            if row is not None:
                return str(row[0])
            value = generate(name)
            try:
                conn.execute("INSERT INTO secrets (deployment_id, name, value, created_at) "
                             "VALUES (?, ?, ?, ?)", (deployment_id, name, value, _now_iso()))
            except sqlite3.IntegrityError:
                raise NotFound(f"no deployment with id {deployment_id!r} in {self.path}") from None
            return value

    def delete_secret(self, deployment_id: str, name: str) -> None:
        """Drop a secret nothing needs any more (a destroyed deployment's SSH key)."""
        with self._write() as conn:
            conn.execute("DELETE FROM secrets WHERE deployment_id = ? AND name = ?", (deployment_id, name))

    def secret(self, deployment_id: str, name: str) -> str:
        rows = self._read("SELECT value FROM secrets WHERE deployment_id = ? AND name = ?",
                          (deployment_id, name))
        if not rows:
            raise NotFound(f"deployment {deployment_id}: no secret {name!r}")
        return str(rows[0][0])

    def secrets(self, deployment_id: str) -> dict[str, str]:
        """Every secret of the deployment, by name (for ``show --show-secrets`` and configure)."""
        rows = self._read("SELECT name, value FROM secrets WHERE deployment_id = ? ORDER BY name",
                          (deployment_id,))
        return {r[0]: r[1] for r in rows}

    def secret_names(self, deployment_id: str) -> list[str]:
        """The names only, for listings that must not show values."""
        return [r[0] for r in self._read("SELECT name FROM secrets WHERE deployment_id = ? ORDER BY name",
                                         (deployment_id,))]


# --- helpers -------------------------------------------------------------------------------------


def _read_pid(lock_path: Path) -> int | None:
    try:
        text = lock_path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise StateError(f"unknown deployment status {status!r} (known: {', '.join(STATUSES)})")


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _unique_locations(locations: Iterable[Sequence[str | None]]) -> list[list[str | None]]:
    seen: list[list[str | None]] = []
    for provider, region in locations:
        if [provider, region] not in seen:
            seen.append([provider, region])
    return seen


def _deployment(row: sqlite3.Row) -> Deployment:
    return Deployment(
        id=row["id"],
        name=row["name"],
        status=row["status"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        plan=json.loads(row["plan"]),
        templates=tuple(json.loads(row["templates"])),
        inputs=json.loads(row["inputs"]),
        credentials=json.loads(row["credentials"]),
        locations=tuple((p, r) for p, r in json.loads(row["locations"])),
    )


def _node(row: sqlite3.Row) -> Node:
    return Node(
        deployment_id=row["deployment_id"],
        name=row["name"],
        group=row["grp"],
        provider=row["provider"],
        region=row["region"],
        cloud_id=row["cloud_id"],
        addresses=json.loads(row["addresses"]),
        state=row["state"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        size=row["size"],
        zone=row["zone"],
    )
