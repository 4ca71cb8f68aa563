"""Scale out on one machine: PostgreSQL, N replicas of `python app.py`, and nginx in front, in one command.

    python -m deploy.scale_out --replicas 2              # then open http://127.0.0.1:8080
    python -m deploy.scale_out --replicas 3 --db postgresql://user@host/chat --port 9000

Without `--db` it starts a PostgreSQL of its own, its data in `--folder` (kept between runs, so
conversations survive). Every other setting of the app (CHAT_MODEL, OPENAI_API_KEY, ...) is passed on to
the replicas from the environment. Ctrl-C or SIGTERM drains the replicas (each saves its running
answers), then stops nginx and PostgreSQL. deploy/compose.yaml is the same shape for containers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from deploy.local_postgres import LocalPostgres, free_port

PROJECT = Path(__file__).resolve().parent.parent
NGINX_TEMPLATE = Path(__file__).resolve().parent / "nginx.conf"


def nginx_config(replica_ports: list[int], port: int, folder: Path) -> str:
    """deploy/nginx.conf with these replicas and this port, its files in `folder`."""
    text = NGINX_TEMPLATE.read_text()
    servers = "\n        ".join(f"server 127.0.0.1:{p} max_fails=1 fail_timeout=10s;" for p in replica_ports)
    text = text.replace("server app:7860 max_fails=1 fail_timeout=10s;", servers)
    text = text.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    places = "\n".join(
        f"    {name}_temp_path {folder / name};" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    text = text.replace("http {\n", f"http {{\n{places}\n    access_log off;\n", 1)
    head = f"pid {folder / 'nginx.pid'};\nerror_log {folder / 'error.log'} warn;\n"
    if os.geteuid() == 0:
        head += "user root;\n"  # its workers must reach the folder this runner made
    return head + text


def wait_until_answering(url: str, process: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer at {url}")
        time.sleep(0.1)


STDERR = 2
"""This process's standard error, as a file descriptor (whatever `sys.stderr` has been replaced with)."""


@contextmanager
def replica(database_url: str, port: int, environment: dict[str, str]) -> Iterator[subprocess.Popen]:
    """One `python app.py` on 127.0.0.1:`port`; on leaving, SIGTERM (it drains) and wait."""
    env = {**environment, "CHAT_DB": database_url, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)}
    # nginx, on this machine, forwards each visitor's address (deploy/nginx.conf sets X-Forwarded-For to the
    # address it was reached from, whatever a client wrote there): the replicas believe it from 127.0.0.1 only.
    env["FORWARDED_ALLOW_IPS"] = "127.0.0.1"
    # The replica writes to this process's stderr: its stdout carries only the runner's own lines ("replica
    # pid", "serving"), which a script can read without a replica's log splitting them.
    process = subprocess.Popen([sys.executable, "app.py"], cwd=PROJECT, env=env, stdout=STDERR)
    try:
        wait_until_answering(f"http://127.0.0.1:{port}/", process, f"replica on port {port}")
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


def nginx_program() -> str | None:
    """nginx, on the PATH or where Debian puts it (/usr/sbin, off a non-root PATH); None when not installed."""
    program = shutil.which("nginx") or "/usr/sbin/nginx"
    return program if Path(program).exists() else None


@contextmanager
def nginx(replica_ports: list[int], port: int, folder: Path) -> Iterator[subprocess.Popen]:
    program = nginx_program()
    if program is None:
        raise RuntimeError("nginx is not installed (Debian: apt-get install nginx)")
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "nginx.conf"
    config.write_text(nginx_config(replica_ports, port, folder))
    process = subprocess.Popen([program, "-p", str(folder), "-c", str(config), "-g", "daemon off;"])
    try:
        wait_until_answering(f"http://127.0.0.1:{port}/", process, "nginx")
        yield process
    finally:
        process.send_signal(signal.SIGQUIT)  # graceful: open streams finish
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@contextmanager
def own_postgres(folder: Path) -> Iterator[str]:
    server = LocalPostgres.start(folder)
    try:
        yield server.ensure_database("chat")
    finally:
        server.stop()


@contextmanager
def scaled_out(
    replicas: int, port: int, folder: Path, database_url: str | None = None, environment: dict[str, str] | None = None
) -> Iterator[list[subprocess.Popen]]:
    """Everything started, in order; everything stopped in reverse on leaving. The replicas get
    `environment` (this process's by default)."""
    with ExitStack() as stack:
        if database_url is None:
            database_url = stack.enter_context(own_postgres(folder / "postgres"))
        environment = dict(os.environ if environment is None else environment)
        ports = [free_port() for _ in range(replicas)]
        processes = [stack.enter_context(replica(database_url, p, environment)) for p in ports]
        stack.enter_context(nginx(ports, port, folder / "nginx"))
        yield processes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deploy.scale_out", description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=2, help="app processes (default 2)")
    parser.add_argument("--port", type=int, default=8080, help="nginx listens on 127.0.0.1:PORT (default 8080)")
    parser.add_argument("--db", default=None, help="a postgresql:// URL (default: start PostgreSQL in --folder)")
    parser.add_argument("--folder", type=Path, default=Path("data/scale-out"), help="PostgreSQL's data, nginx's files")
    args = parser.parse_args(argv)
    if args.replicas < 1:
        parser.error("--replicas must be at least 1")
    stop = {"signal": None}
    signal.signal(signal.SIGTERM, lambda number, _: stop.update(signal=number))
    with scaled_out(args.replicas, args.port, args.folder.resolve(), args.db) as replicas:
        for process in replicas:
            print(f"replica pid {process.pid}", flush=True)
        print(f"serving {args.replicas} replicas at http://127.0.0.1:{args.port}/ (Ctrl-C to stop)", flush=True)
        try:
            while stop["signal"] is None:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        print("stopping: the replicas save their running answers first", flush=True)


if __name__ == "__main__":
    main()
