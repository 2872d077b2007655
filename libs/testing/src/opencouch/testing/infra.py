"""Private infrastructure servers a test or a chaos run may kill and restart at will.

Each runs from the machine's own binaries (nats-server, postgres, redis-server) on a free port,
keeps its data in a folder that survives restarts (JetStream's file store, Postgres's cluster,
Redis's append-only file), and comes back on the same port, as a restarted container would.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType

import psycopg

from opencouch.testing.servers import ServerUnavailableError, free_port, reachable, wait_reachable


class PrivateServer:
    """One server process with a data folder and a port that outlive restarts."""

    name = "server"

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._log = data_dir / f"{self.name}.log"

    @property
    def url(self) -> str:
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def prepare(self) -> None:
        """One-time setup of the data folder before the first start."""

    def start(self) -> None:
        """Start (or start again) and wait until it accepts connections."""
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, preexec_fn=self._demote()
            )
        wait_reachable(self.url, timeout=30)

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(10)

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> None:
        """Stop (cleanly), then start on the same port with the same data."""
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None and reachable(self.url)

    @property
    def pid(self) -> int | None:
        """The running server's process id (for reading its use of the machine), if it runs."""
        return (
            self._process.pid
            if self._process is not None and self._process.poll() is None
            else None
        )

    def _demote(self) -> Callable[[], None] | None:
        return None


class PrivateNats(PrivateServer):
    """nats-server with JetStream on disk."""

    name = "nats"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        binary = shutil.which("nats-server")
        if binary is None:
            raise ServerUnavailableError("no nats-server binary")
        store = self.data_dir / "jetstream"
        return [binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(store)]


class PrivateRedis(PrivateServer):
    """redis-server with an append-only file, so claims survive a restart."""

    name = "redis"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServerUnavailableError("no redis-server binary")
        return [
            binary,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "everysec",
        ]  # fmt: skip


def _postgres_bin() -> Path:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "postgres").is_file():
            return candidate
    found = shutil.which("postgres")
    if found:
        return Path(found).parent
    raise ServerUnavailableError("no postgres binaries")


class PrivatePostgres(PrivateServer):
    """A Postgres cluster of its own (trust auth), run as the postgres user when we are root."""

    name = "postgres"

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self._bin = _postgres_bin()
        self._cluster = data_dir / "cluster"
        self._sockets = data_dir / "sockets"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def prepare(self) -> None:
        self._cluster.mkdir(parents=True, exist_ok=True)
        self._sockets.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.data_dir, "postgres", "postgres")
            for path in (self._cluster, self._sockets):
                shutil.chown(path, "postgres", "postgres")
        subprocess.run(
            [str(self._bin / "initdb"), "-D", str(self._cluster), "-U", "postgres", "-A", "trust"],
            check=True,
            capture_output=True,
            preexec_fn=self._demote(),
        )

    def command(self) -> list[str]:
        return [
            str(self._bin / "postgres"),
            "-D", str(self._cluster),
            "-p", str(self.port),
            "-k", str(self._sockets),
            "-c", "listen_addresses=127.0.0.1",
            "-c", "fsync=off",
        ]  # fmt: skip

    def start(self) -> None:
        super().start()
        deadline = time.monotonic() + 30
        while True:  # accepting TCP is not yet accepting queries (recovery after a kill)
            try:
                with psycopg.connect(self.url, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _demote(self) -> Callable[[], None] | None:
        if os.geteuid() != 0:
            return None
        import pwd

        user = pwd.getpwnam("postgres")

        def demote() -> None:
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)

        return demote


class PrivateInfra:
    """NATS, Redis and Postgres of this run only; ``with PrivateInfra() as infra: ...``."""

    def __init__(self) -> None:
        self._stack = ExitStack()
        root = Path(
            self._stack.enter_context(tempfile.TemporaryDirectory(prefix="opencouch-infra-"))
        )
        os.chmod(root, 0o755)
        self.nats = PrivateNats(_folder(root, "nats"))
        self.redis = PrivateRedis(_folder(root, "redis"))
        self.postgres = PrivatePostgres(_folder(root, "postgres"))

    def __enter__(self) -> PrivateInfra:
        try:
            for server in (self.nats, self.redis, self.postgres):
                server.prepare()
                server.start()
                self._stack.callback(server.stop)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stack.close()


def _folder(root: Path, name: str) -> Path:
    path = root / name
    path.mkdir()
    return path
