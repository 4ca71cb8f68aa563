"""A PostgreSQL server of our own on this machine: initdb into a folder, start it, stop it.

For the local scale-out runner and for the tests, where no `postgresql://` URL is given. It uses the
machine's PostgreSQL programs (Debian's `postgresql` package puts them in /usr/lib/postgresql/N/bin).
PostgreSQL refuses to run as root, so as root the folder is handed to the `postgres` user and the
programs run as that user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

DATABASE_USER = "postgres"


def postgres_programs() -> Path | None:
    """The folder with initdb and pg_ctl, or None where PostgreSQL is not installed."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(os.path.realpath(on_path)).parent
    installed = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(installed[-1]).parent if installed else None


def missing_reason() -> str | None:
    """Why a local PostgreSQL cannot run here, or None when it can."""
    if postgres_programs() is None:
        return "PostgreSQL is not installed (Debian: apt-get install postgresql)"
    if os.geteuid() == 0 and not _user_exists(DATABASE_USER):
        return "running as root, and there is no 'postgres' user to run PostgreSQL as"
    return None


@dataclass
class LocalPostgres:
    """One PostgreSQL server listening on 127.0.0.1:`port`, its data in `folder`."""

    folder: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://{DATABASE_USER}@127.0.0.1:{self.port}/postgres"

    def url_of(self, database: str) -> str:
        return f"postgresql://{DATABASE_USER}@127.0.0.1:{self.port}/{database}"

    @classmethod
    def start(cls, folder: Path | None = None, port: int | None = None) -> LocalPostgres:
        """initdb into `folder` when it holds no database yet (a fresh folder in /tmp when None), then start."""
        reason = missing_reason()
        if reason:
            raise RuntimeError(reason)
        # /tmp itself, not a folder under a private one: the postgres user must be able to reach it.
        folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="chat-postgres-"))
        folder.mkdir(parents=True, exist_ok=True)
        server = cls(folder, port or free_port())
        if os.geteuid() == 0:
            user = pwd.getpwnam(DATABASE_USER)
            os.chown(folder, user.pw_uid, user.pw_gid)
            if subprocess.run(
                ["runuser", "-u", DATABASE_USER, "--", "test", "-w", str(folder)], check=False
            ).returncode:
                raise RuntimeError(
                    f"PostgreSQL runs as the '{DATABASE_USER}' user, which cannot reach {folder}: choose a folder it can reach"
                )
        data = folder / "data"
        if not (data / "PG_VERSION").exists():
            server._run("initdb", "-D", str(data), "-U", DATABASE_USER, "--auth=trust", "-E", "UTF8", "--no-sync")
        options = f"-p {server.port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=300"
        server._run("pg_ctl", "-D", str(data), "-l", str(folder / "server.log"), "-o", options, "-w", "start")
        return server

    def stop(self, mode: str = "fast") -> None:
        """Stop it, unless it already stopped (a Ctrl-C in a terminal reaches it too)."""
        if (self.folder / "data" / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", mode, "-w", "stop")

    def start_again(self) -> None:
        """Start a server that was stopped, on the same port and data."""
        LocalPostgres.start(self.folder, self.port)

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        import psycopg  # only where PostgreSQL is used

        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
        return self.url_of(name)

    def ensure_database(self, name: str) -> str:
        """The database `name`, made when it is not there yet (an earlier run made it); returns its URL."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as connection:
            found = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        return self.url_of(name) if found else self.create_database(name)

    def _run(self, program: str, *args: str) -> None:
        programs = postgres_programs()
        assert programs is not None
        command = [str(programs / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", DATABASE_USER, "--", *command]
        done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120, cwd=self.folder)
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed: {done.stderr.strip() or done.stdout.strip()}")


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
