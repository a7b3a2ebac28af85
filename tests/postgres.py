"""A private PostgreSQL server for tests: its own data folder, port and socket folder, no passwords."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg
from psycopg import sql


def find_bin_dir() -> Path:
    """The folder of `initdb` and `pg_ctl`: on PATH, or Debian's /usr/lib/postgresql/<major>/bin."""
    on_path = shutil.which("initdb")
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: -float(p.parent.name))
    for folder in ([Path(on_path).resolve().parent] if on_path else []) + debian:
        if (folder / "pg_ctl").is_file():
            return folder
    raise RuntimeError("PostgreSQL server binaries not found (`make system` installs them)")


class PostgresCluster:
    """initdb + pg_ctl start on 127.0.0.1 and a free port, trusting every local connection."""

    def __init__(self) -> None:
        self.bin_dir = find_bin_dir()
        # Outside pytest's folders: the server may run as another user, who must be able to reach its own.
        self.root = Path(tempfile.mkdtemp(prefix="lora-router-pg-"))
        # The server refuses to run as root.
        self._user = "postgres" if os.geteuid() == 0 else None
        if self._user:
            shutil.chown(self.root, self._user)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        data, log = self.root / "data", self.root / "server.log"
        # fsync off: a test server need not survive a power cut, and every commit gets cheap.
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off"
        try:
            initdb_options = ["--auth=trust", "-U", "postgres", "-E", "UTF8", "--no-locale", "--no-sync"]
            self._run("initdb", "-D", str(data), *initdb_options)
            self._run("pg_ctl", "-D", str(data), "-l", str(log), "-o", options, "-w", "start")
        except subprocess.CalledProcessError as exc:
            output = exc.stderr + (log.read_text() if log.is_file() else "")
            shutil.rmtree(self.root, ignore_errors=True)
            raise RuntimeError(f"PostgreSQL did not start: {output}") from None

    @property
    def url(self) -> str:
        """The URL of the maintenance database ``postgres``."""
        return self._url("postgres")

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a unique name unless given) and return its URL."""
        name = name or f"test_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self._url(name)

    def stop(self) -> None:
        if not (self.root / "data").is_dir():
            return  # stopped already
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def _url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [str(self.bin_dir / tool), *args],
            user=self._user,
            cwd=self.root,  # the server's user may not be allowed into ours
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )


def drop_connections(url: str) -> None:
    """What a server restart does to the clients of one database."""
    database = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(url, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    assert killed and all(ok for (ok,) in killed)
