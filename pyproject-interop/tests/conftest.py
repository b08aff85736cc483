"""Fixtures: the real Emu WPS and MapProxy WMS (one each per session) and twitcher servers
(fresh ones per test, each with its own INI file and SQLite database). Logs of the servers a
failing test used are attached to its report."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from interop import (Emu, MapProxy, PyGeoApi, ServerProcess, Twitcher, required_env,
                     start_emu, start_mapproxy, start_pygeoapi, start_twitcher)

# Every server process started in this session, for failure reports and teardown.
_PROCESSES: list[ServerProcess] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        for process in _PROCESSES:
            if process.owner is None or item.nodeid.startswith(process.owner):
                report.sections.append(
                    (f"{process.name} log ({process.log_path})", process.log_text(tail=80)))
    return report


def pytest_sessionfinish(session, exitstatus):
    # Safety net: nothing we started outlives the session (fixtures normally stop them).
    for process in _PROCESSES:
        process.stop(grace=5)


@pytest.fixture(scope="session")
def twitcher_bin() -> str:
    binary = required_env("TWITCHER_BIN")
    assert Path(binary).is_file(), f"TWITCHER_BIN={binary} does not exist"
    return binary


@pytest.fixture(scope="session")
def twitcherctl_bin() -> str:
    """Our own twitcherctl (the Rust CLI of this repository)."""
    binary = required_env("TWITCHERCTL_BIN")
    assert Path(binary).is_file(), f"TWITCHERCTL_BIN={binary} does not exist"
    return binary


@pytest.fixture(scope="session")
def twitcherctl_06() -> str:
    """The original twitcherctl of pyramid-twitcher 0.6.0 (PyPI)."""
    binary = os.environ.get("TWITCHER_INTEROP_TWITCHERCTL_06")
    if not binary:
        pytest.skip("the twitcherctl 0.6.0 venv was skipped (TWITCHER_INTEROP_SKIP_06=1)")
    return binary


@pytest.fixture(scope="session")
def emu(tmp_path_factory) -> Emu:
    """The real Emu WPS (birdhouse-emu 1.0.0 / pywps 4.6.0) on a free loopback port."""
    executable = required_env("TWITCHER_INTEROP_EMU")
    emu = start_emu(executable, tmp_path_factory.mktemp("emu"), _PROCESSES)
    yield emu
    emu.process.stop()


@pytest.fixture(scope="session")
def mapproxy(tmp_path_factory) -> MapProxy:
    """A real WMS: MapProxy 7.0.0 serving its `debug` source on a free loopback port."""
    python = required_env("TWITCHER_INTEROP_MAPPROXY_PYTHON")
    server = start_mapproxy(python, tmp_path_factory.mktemp("mapproxy"), _PROCESSES)
    yield server
    server.process.stop()


@pytest.fixture(scope="session")
def pygeoapi(tmp_path_factory) -> PyGeoApi:
    """A real OGC API – Processes and Features server: pygeoapi 0.21.0 with its hello-world
    process, a GeoJSON collection from `tests/data` and a TinyDB job manager."""
    python = required_env("TWITCHER_INTEROP_PYGEOAPI_PYTHON")
    server = start_pygeoapi(python, tmp_path_factory.mktemp("pygeoapi"), _PROCESSES)
    yield server
    server.process.stop()


class TwitcherFactory:
    """Starts twitcher servers for one test (or module) and stops them with SIGTERM after it."""

    def __init__(self, binary: str, tmp_path_factory, owner: str):
        self.binary = binary
        self.tmp_path_factory = tmp_path_factory
        self.owner = owner
        self.started: list[Twitcher] = []

    def __call__(self, *, username: str | None = None, password: str | None = None,
                 listen_style: str = "host_port", **extra: str) -> Twitcher:
        """`extra` are more `[app:main]` keys (dots written as `__`)."""
        server = start_twitcher(
            self.binary, self.tmp_path_factory.mktemp("twitcher"), owner=self.owner,
            username=username, password=password, listen_style=listen_style,
            extra={k.replace("__", "."): v for k, v in extra.items()}, registry=_PROCESSES)
        self.started.append(server)
        return server

    def restart(self, old: Twitcher) -> Twitcher:
        """Stops `old` (SIGTERM, must exit 0) and starts a server on the same working
        directory, so on the same database (the port may change)."""
        self.started.remove(old)
        status = old.process.stop()
        assert status == 0, f"twitcher exited with {status} on SIGTERM"
        server = start_twitcher(
            self.binary, old.workdir, owner=self.owner, username=old.username,
            password=old.password, registry=_PROCESSES)
        self.started.append(server)
        return server

    def stop_all(self) -> None:
        failures = []
        for server in reversed(self.started):
            status = server.process.stop()
            if status != 0:
                failures.append(
                    f"twitcher on port {server.port} did not exit cleanly on SIGTERM "
                    f"(status {status}); log:\n{server.process.log_text(tail=40)}")
        self.started.clear()
        assert not failures, "\n".join(failures)


@pytest.fixture
def twitcher(request, twitcher_bin, tmp_path_factory):
    """Factory: `twitcher(username=..., password=...)` starts a server for this test."""
    factory = TwitcherFactory(twitcher_bin, tmp_path_factory, request.node.nodeid)
    yield factory
    factory.stop_all()


@pytest.fixture(scope="module")
def module_twitcher(request, twitcher_bin, tmp_path_factory):
    """The same factory, for servers shared by the tests of one module."""
    factory = TwitcherFactory(twitcher_bin, tmp_path_factory, request.node.nodeid)
    yield factory
    factory.stop_all()


@pytest.fixture
def server(twitcher) -> Twitcher:
    """A twitcher without basic auth on /RPC2."""
    return twitcher()


@pytest.fixture
def rpc(server):
    """xmlrpc.client proxy of `server`."""
    return server.rpc()
