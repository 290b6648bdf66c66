"""The state store: private files, versioned schema, lookups, run locks and concurrent writers.

Everything runs on real SQLite files in tmp dirs; locking and concurrency use real processes
(a lock holder killed with SIGKILL, two writers at once).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner.errors import NotFound, OscarDeployError, StateError
from provisioner.state import (
    SCHEMA_VERSION,
    StateStore,
    generate_secret,
    new_password,
    new_token,
    write_private_file,
)

ROOT = Path(__file__).resolve().parent.parent


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """Prove the modes come from the code, not from a friendly umask."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore.open(tmp_path / "state" / "state.db") as opened:
        yield opened


def new_dep(store: StateStore, name: str | None = "demo") -> str:
    return store.create_deployment(name, plan={"groups": [{"name": "wn", "count": 2}]},
                                   templates=["oscar-aws.yaml"], inputs={"workers": 2},
                                   credentials={"aws": {"kind": "auth-file", "path": "/a", "entry": "aws"}},
                                   locations=[("aws", "eu-west-1")]).id


def run_python(code: str, *args: str) -> subprocess.Popen[str]:
    """Start a real second process running ``code`` against the project's package."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# --- files and modes -----------------------------------------------------------------------------


def test_state_file_directory_and_wal_files_are_private(tmp_path: Path, permissive_umask: None) -> None:
    db = tmp_path / "a" / "b" / "state.db"
    with StateStore.open(db) as store:
        dep_id = new_dep(store)
        store.record_node(dep_id, group="wn", name="wn-1", provider="aws")
        store.set_secret(dep_id, "minio_password", "x" * 12)
        # while the connection is open the WAL and shared-memory files exist: check them too
        wal, shm = Path(f"{db}-wal"), Path(f"{db}-shm")
        assert wal.exists() and shm.exists()
        assert mode(db) == 0o600
        assert mode(wal) == 0o600
        assert mode(shm) == 0o600
        assert mode(db.parent) == 0o700
        assert mode(db.parent.parent) == 0o700
        directory = store.deployment_dir(dep_id)
        assert directory == db.parent / "deployments" / dep_id
        assert mode(directory) == 0o700
        key = directory / "id_ed25519"
        write_private_file(key, "PRIVATE KEY")
        assert mode(key) == 0o600 and key.read_text() == "PRIVATE KEY"


def test_an_existing_directory_is_not_chmodded(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    with StateStore.open(shared / "state.db"):
        pass
    assert mode(shared) == 0o755
    assert mode(shared / "state.db") == 0o600


def test_a_state_file_left_readable_is_made_private(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    StateStore.open(db).close()
    db.chmod(0o644)
    StateStore.open(db).close()
    assert mode(db) == 0o600


def test_default_path_expands_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    from provisioner.config import Settings

    with StateStore.open(Settings().general.state) as store:
        assert store.path == tmp_path / ".local" / "state" / "oscar-deploy" / "state.db"
    assert mode(tmp_path / ".local" / "state" / "oscar-deploy") == 0o700


# --- schema --------------------------------------------------------------------------------------


def test_schema_is_versioned_and_reopening_keeps_data(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with StateStore.open(db) as store:
        assert store.schema_version == SCHEMA_VERSION >= 1
        dep_id = new_dep(store)
    with StateStore.open(db) as store:
        assert store.get("demo").id == dep_id
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_newer_schema_is_refused_clearly(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    StateStore.open(db).close()
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    with pytest.raises(StateError) as info:
        StateStore.open(db)
    message = str(info.value)
    assert str(db) in message and "newer" in message and str(SCHEMA_VERSION + 5) in message


def test_a_file_that_is_not_sqlite_is_a_state_error(tmp_path: Path) -> None:
    bogus = tmp_path / "state.db"
    bogus.write_text("this is not a database, just text that is long enough to have a header\n" * 20)
    with pytest.raises(StateError, match=str(bogus)):
        StateStore.open(bogus)


# --- deployments ---------------------------------------------------------------------------------


def test_deployment_round_trip_and_lookup_by_id_or_name(store: StateStore) -> None:
    dep_id = new_dep(store, "alpha")
    assert len(dep_id) == 8 and int(dep_id, 16) >= 0
    by_name, by_id = store.get("alpha"), store.get(dep_id)
    assert by_name == by_id
    assert by_id.status == "creating"
    assert by_id.plan == {"groups": [{"name": "wn", "count": 2}]}
    assert by_id.templates == ("oscar-aws.yaml",)
    assert by_id.inputs == {"workers": 2}
    assert by_id.credentials["aws"]["entry"] == "aws"
    assert by_id.locations == (("aws", "eu-west-1"),)
    assert by_id.created_at.endswith("Z")
    assert [e.kind for e in store.events(dep_id)] == ["recorded"]

    store.add_location(dep_id, "openstack", "RegionOne")
    store.add_location(dep_id, "aws", "eu-west-1")  # already known: not repeated
    store.set_status(dep_id, "created")
    after = store.get(dep_id)
    assert after.locations == (("aws", "eu-west-1"), ("openstack", "RegionOne"))
    assert after.status == "created"

    unnamed = store.create_deployment(None, plan={})
    assert unnamed.name == unnamed.id
    assert [d.name for d in store.list_deployments()] == ["alpha", unnamed.id]


def test_unknown_deployment_is_not_found_naming_it(store: StateStore) -> None:
    with pytest.raises(NotFound, match="'nope'"):
        store.get("nope")
    assert store.find("nope") is None
    assert isinstance(NotFound("x"), OscarDeployError)


def test_names_are_unique_and_checked(store: StateStore) -> None:
    dep_id = new_dep(store, "alpha")
    with pytest.raises(StateError, match=f"'alpha' already exists \\(id {dep_id}\\)"):
        new_dep(store, "alpha")
    with pytest.raises(StateError, match="already exists"):
        new_dep(store, dep_id)  # a name equal to another deployment's id would make lookups ambiguous
    with pytest.raises(StateError, match="not valid"):
        new_dep(store, "bad name; drop table")
    with pytest.raises(StateError, match="unknown deployment status 'done'"):
        store.set_status(dep_id, "done")  # type: ignore[arg-type]


def test_forget_removes_everything_of_one_deployment(store: StateStore) -> None:
    keep, gone = new_dep(store, "keep"), new_dep(store, "gone")
    for dep_id in (keep, gone):
        store.record_node(dep_id, group="wn", name="wn-1", provider="aws")
        store.set_secret(dep_id, "k3s_token", new_token())
    directory = store.deployment_dir(gone)
    store.forget(gone)
    assert store.find("gone") is None and not directory.exists()
    assert store.nodes(gone) == [] and store.secrets(gone) == {} and store.events(gone) == []
    assert [n.name for n in store.nodes(keep)] == ["wn-1"] and "k3s_token" in store.secrets(keep)


# --- nodes, events, secrets ----------------------------------------------------------------------


def test_nodes_are_recorded_then_updated_as_they_appear(store: StateStore) -> None:
    dep_id = new_dep(store)
    store.record_node(dep_id, group="front", name="front-1", provider="aws", region="eu-west-1")
    store.record_node(dep_id, group="wn", name="wn-1", provider="aws", region="eu-west-1")
    first = store.node(dep_id, "wn-1")
    assert first.cloud_id is None and first.state == "creating"
    updated = store.update_node(dep_id, "wn-1", cloud_id="i-0abc", state="running",
                                addresses={"private": ["10.0.0.5"]})
    assert (updated.cloud_id, updated.state, updated.addresses) == ("i-0abc", "running",
                                                                    {"private": ["10.0.0.5"]})
    assert updated.created_at == first.created_at and updated.group == "wn"
    assert [n.name for n in store.nodes(dep_id)] == ["front-1", "wn-1"]
    assert [n.name for n in store.nodes(dep_id, group="wn")] == ["wn-1"]
    store.remove_node(dep_id, "wn-1")
    store.remove_node(dep_id, "wn-1")  # idempotent
    assert [n.name for n in store.nodes(dep_id)] == ["front-1"]
    with pytest.raises(NotFound, match="wn-1"):
        store.update_node(dep_id, "wn-1", state="running")
    with pytest.raises(NotFound, match="zzzzzzzz"):
        store.record_node("zzzzzzzz", group="wn", name="x", provider="aws")


def test_events_keep_their_order(store: StateStore) -> None:
    dep_id = new_dep(store)
    for i in range(5):
        store.add_event(dep_id, "step", f"step {i}")
    assert [e.message for e in store.events(dep_id)][1:] == [f"step {i}" for i in range(5)]
    assert [e.message for e in store.events(dep_id, limit=2)] == ["step 3", "step 4"]


def test_secrets_are_stable_across_resumes_and_not_in_deployment_objects(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with StateStore.open(db) as store:
        dep_id = new_dep(store)
        token = store.ensure_secret(dep_id, "k3s_token")
        password = store.ensure_secret(dep_id, "minio_password")
    with StateStore.open(db) as store:  # a resumed create reuses what the first attempt generated
        assert store.ensure_secret(dep_id, "k3s_token") == token
        assert store.secret(dep_id, "minio_password") == password
        assert store.secrets(dep_id) == {"k3s_token": token, "minio_password": password}
        assert store.secret_names(dep_id) == ["k3s_token", "minio_password"]
        dep = store.get(dep_id)
        for text in (repr(dep), repr(store.nodes(dep_id)), repr(store.events(dep_id))):
            assert token not in text and password not in text
        with pytest.raises(NotFound, match="oscar_password"):
            store.secret(dep_id, "oscar_password")


def test_generated_secrets_fit_their_consumers() -> None:
    passwords = {new_password() for _ in range(50)}
    assert len(passwords) == 50  # never a fixed default
    for value in passwords:
        assert len(value) >= 8 and value.isalnum() and value.isascii()
        assert any(c.isupper() for c in value) and any(c.islower() for c in value)
    token = generate_secret("k3s_token")
    assert len(token) == 64 and int(token, 16) >= 0
    assert generate_secret("minio_password").isalnum() and len(generate_secret("oscar_password")) >= 8
    assert generate_secret("k3s_token") != token
    with pytest.raises(ValueError):
        new_password(6)


# --- locks and concurrency (real processes) ------------------------------------------------------

HOLDER = """
    import sys, time
    from provisioner.state import StateStore
    store = StateStore.open(sys.argv[1])
    with store.lock(sys.argv[2]):
        print("locked", flush=True)
        time.sleep(60)
"""


def test_a_second_run_is_refused_naming_the_holder_and_kill_9_frees_the_lock(store: StateStore) -> None:
    dep_id = new_dep(store, "busy")
    holder = run_python(HOLDER, str(store.path), "busy")
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(StateError) as info, store.lock(dep_id):
            pass
        assert str(info.value) == (f"deployment busy ({dep_id}) is being changed by another "
                                   f"oscar-deploy run (pid {holder.pid}); wait for it to finish or stop it")
        assert store.is_locked("busy") == holder.pid
        # reads never wait for the lock
        started = time.monotonic()
        assert store.get("busy").status == "creating"
        assert store.list_deployments()[0].id == dep_id
        store.add_event(dep_id, "note", "writes to the file still work; only runs are exclusive")
        assert time.monotonic() - started < 1.0
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        assert holder.returncode == -signal.SIGKILL
    assert store.is_locked("busy") is None
    with store.lock("busy") as dep:
        assert dep.id == dep_id
        assert store.is_locked(dep_id) == os.getpid()
        with store.lock(dep_id):  # re-entrant within one run
            pass
        assert store.is_locked(dep_id) == os.getpid()
    assert store.is_locked(dep_id) is None


def test_locks_are_per_deployment(store: StateStore) -> None:
    new_dep(store, "one")
    new_dep(store, "two")
    holder = run_python(HOLDER, str(store.path), "one")
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with store.lock("two"):
            store.set_status(store.get("two").id, "created")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


WRITE_TX_HOLDER = """
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("UPDATE deployments SET status = 'failed'")
    print("writing", flush=True)
    time.sleep(60)
"""


def test_reads_do_not_wait_for_another_process_write_transaction(store: StateStore) -> None:
    dep_id = new_dep(store, "readme")
    writer = run_python(WRITE_TX_HOLDER, str(store.path))
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
        started = time.monotonic()
        assert store.get("readme").status == "creating"  # the uncommitted change is not seen
        assert store.nodes(dep_id) == [] and len(store.events(dep_id)) == 1
        assert time.monotonic() - started < 1.0
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert store.get("readme").status == "creating"  # the killed transaction never landed


WRITER = """
    import sys
    from provisioner.state import StateStore
    store = StateStore.open(sys.argv[1])
    dep = store.create_deployment(sys.argv[2], plan={"writer": sys.argv[2]})
    with store.lock(dep.id):
        for i in range(int(sys.argv[3])):
            store.record_node(dep.id, group="wn", name=f"wn-{i}", provider="aws", region="r")
            store.update_node(dep.id, f"wn-{i}", cloud_id=f"i-{sys.argv[2]}-{i}", state="running")
            store.add_event(dep.id, "node-created", f"wn-{i}")
            store.ensure_secret(dep.id, f"s{i % 3}")
        store.set_status(dep.id, "created")
    print(dep.id, flush=True)
"""


def test_two_processes_writing_different_deployments_corrupt_nothing(store: StateStore) -> None:
    count = 120
    writers = [run_python(WRITER, str(store.path), name, str(count)) for name in ("left", "right")]
    outputs = [w.communicate(timeout=60) for w in writers]
    for writer, (_out, err) in zip(writers, outputs, strict=True):
        assert writer.returncode == 0, err
    for name in ("left", "right"):
        dep = store.get(name)
        assert dep.status == "created" and dep.plan == {"writer": name}
        nodes = store.nodes(dep.id)
        assert len(nodes) == count
        assert {n.cloud_id for n in nodes} == {f"i-{name}-{i}" for i in range(count)}
        assert all(n.state == "running" for n in nodes)
        assert len(store.events(dep.id)) == count + 1
        assert sorted(store.secrets(dep.id)) == ["s0", "s1", "s2"]
    check = sqlite3.connect(store.path).execute("PRAGMA integrity_check").fetchone()[0]
    assert check == "ok"
