"""A real herald daemon for the tests: ``herald serve`` in a temporary directory.

The binary is ``$HERALD_BIN``, else ``../../target/release/herald`` relative to this
package (the repository's release build), else ``herald`` on ``PATH``. Tests that need
a daemon are skipped, saying why, when none is found.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from herald_client import Client, Role

PACKAGE_DIR = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
REGION_SIZE = "8M"
"""Small and quick to create; tests that need a full ring ask for their own size."""


def herald_binary() -> str | None:
    """Where the daemon binary is, or ``None``."""
    configured = os.environ.get("HERALD_BIN")
    if configured:
        return configured
    release = PACKAGE_DIR / ".." / ".." / "target" / "release" / "herald"
    if release.is_file() and os.access(release, os.X_OK):
        return str(release.resolve())
    return shutil.which("herald")


class Daemon:
    """One ``herald serve`` process over a data directory that outlives restarts."""

    def __init__(self, binary: str, data_dir: Path, extra_args: list[str]) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.extra_args = extra_args
        self.socket_path = str(data_dir / "herald.sock")
        self.process: subprocess.Popen[bytes] | None = None
        self.ready_line = ""
        self._starts = 0

    def start(self) -> None:
        """Start the daemon and return once it printed its ``ready:`` line."""
        assert self.process is None, "the daemon is already running"
        self._starts += 1
        stderr_path = self.data_dir.parent / f"herald-stderr-{self._starts}.log"
        region_size = [] if "--region-size" in self.extra_args else ["--region-size", REGION_SIZE]
        with open(stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "serve",
                    "--data-dir",
                    str(self.data_dir),
                    *region_size,
                    *self.extra_args,
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
        self.ready_line = self._read_ready_line(stderr_path)

    def _read_ready_line(self, stderr_path: Path) -> str:
        """Read stdout until ``ready:``; fail with the daemon's stderr if it never comes."""
        assert self.process is not None and self.process.stdout is not None
        stdout = self.process.stdout
        deadline = time.monotonic() + READY_TIMEOUT_S
        received = b""
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while b"\n" not in received:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    self.kill()
                    pytest.fail(f"herald printed no ready line in {READY_TIMEOUT_S} s; stderr: {stderr_path.read_text()}")
                chunk = os.read(stdout.fileno(), 4096)
                if not chunk:
                    code = self.process.wait()
                    self.process = None
                    pytest.fail(f"herald exited ({code}) before it was ready; stderr: {stderr_path.read_text()}")
                received += chunk
        line = received.split(b"\n", 1)[0].decode()
        assert line.startswith("ready: serving on "), f"unexpected first line from herald: {line!r}"
        return line

    def stop(self) -> int:
        """SIGTERM (a clean stop) and wait; returns the exit code."""
        return self._signal_and_wait(signal.SIGTERM)

    def kill(self) -> int:
        """SIGKILL (a crash) and wait; returns the exit code."""
        return self._signal_and_wait(signal.SIGKILL)

    def restart_after_kill(self) -> None:
        """``kill -9`` the daemon, then start it again on the same region."""
        self.kill()
        self.start()

    def _signal_and_wait(self, signal_number: int) -> int:
        process = self.process
        if process is None:
            return 0
        self.process = None
        if process.poll() is None:
            process.send_signal(signal_number)
        try:
            code = process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
            pytest.fail(f"herald did not stop within {STOP_TIMEOUT_S} s of signal {signal_number}")
        if process.stdout is not None:
            process.stdout.close()
        return code


def start_daemon(tmp_path: Path, extra_args: list[str]) -> Daemon:
    binary = herald_binary()
    if binary is None:
        pytest.skip("no herald binary: set HERALD_BIN, build target/release/herald, or put herald on PATH")
    data_dir = tmp_path / "herald-data"
    daemon = Daemon(binary, data_dir, extra_args)
    daemon.start()
    return daemon


@pytest.fixture
def daemon(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Daemon]:
    """A fresh daemon per test. ``@pytest.mark.daemon_args(...)`` adds ``serve`` flags."""
    marker = request.node.get_closest_marker("daemon_args")
    extra_args = list(marker.args) if marker else []
    started = start_daemon(tmp_path, extra_args)
    try:
        yield started
    finally:
        started.stop()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "daemon_args(*flags): extra `herald serve` flags for the daemon fixture")


@pytest.fixture
def connect(daemon: Daemon) -> Iterator[Callable[..., Client]]:
    """``connect(role, name)``: a blocking client of the test's daemon, closed afterwards."""
    opened: list[Client] = []

    def make(role: Role, client_name: str = "") -> Client:
        client = Client.connect(daemon.socket_path, role=role, client_name=client_name, timeout=10)
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()
