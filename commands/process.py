"""The service as a child process: for end-to-end tests, benchmarks and smoke runs on other hosts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from router.settings import Settings

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_command() -> list[str]:
    cli = Path(sys.executable).with_name("lora-router")
    if cli.is_file():
        return [str(cli), "serve", "--log-level", "info"]
    # Not installed (e.g. a GPU host running from a checkout): the same typer app, from the repository.
    return [sys.executable, "-c", "from commands.main import app; app()", "serve", "--log-level", "info"]


class ServiceProcess:
    """`lora-router serve` in its own process group, so the engine core (its child) goes down with it."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        command: list[str] | None = None,
        *,
        port: int | None = None,
        ready_path: str = "/ready",
    ) -> None:
        self.port = port or free_port()
        self.ready_path = ready_path
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.command = command or serve_command()
        pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
        self._env = {**os.environ, **env, "LORA_ROUTER_PORT": str(self.port), "PYTHONPATH": pythonpath}
        self._proc: subprocess.Popen[bytes] | None = None
        self.start_s: float | None = None
        self._launched = 0.0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, timeout_s: float = 300.0) -> ServiceProcess:
        return self.launch().wait_ready(timeout_s)

    def launch(self) -> ServiceProcess:
        """Start the process without waiting (several can then start side by side)."""
        self._launched = time.monotonic()
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self.command, env=self._env, stdout=log, stderr=log, start_new_session=True, cwd=REPO
            )
        return self

    def wait_ready(self, timeout_s: float = 300.0) -> ServiceProcess:
        """Until the service answers ready, at most ``timeout_s`` from now (it may have been launched long
        before); ``start_s`` is then the time since its launch."""
        assert self._proc is not None, "launch() first"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"service exited with {self._proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}{self.ready_path}", timeout=2).status_code == 200:
                    self.start_s = round(time.monotonic() - self._launched, 1)
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"service not ready after {timeout_s:.0f}s:\n{self.log_tail()}")

    def terminate(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM (graceful drain) and wait; the exit code, or None if it is still running."""
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                return None
        return self._proc.returncode

    def stop(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM (graceful drain), then SIGKILL whatever is left of the group; returns the exit code."""
        if self._proc is None:
            return None
        code = self.terminate(timeout_s)
        try:
            os.killpg(self._proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._proc.wait()
        return code

    def kill(self) -> None:
        """SIGKILL the whole group at once: a crash, as far as its clients can tell."""
        if self._proc is not None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._proc.wait()

    def restart(self) -> ServiceProcess:
        self.stop()
        return self.start()

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def replica_process(settings: Settings, log_path: Path) -> ServiceProcess:
    """A replica on loopback and a free port, as a child process (tests, benchmarks); not started yet."""
    from router.replica import check_base_requests, replica_command, replica_dtype, replica_env

    port = free_port()
    check_base_requests(settings)
    command = replica_command(settings, host="127.0.0.1", port=port, dtype=replica_dtype(settings))
    return ServiceProcess(replica_env(settings), log_path, command, port=port, ready_path="/health")
