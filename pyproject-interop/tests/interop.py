"""Support code of the interop suite: server processes, readiness polling, the golden
transcripts of the original Twitcher 0.5.6, and OWS/WPS document helpers."""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import socket
import sqlite3
import struct
import subprocess
import time
import xmlrpc.client
import zlib
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import requests
from lxml import etree

NS = {
    "ows": "http://www.opengis.net/ows/1.1",
    "wps": "http://www.opengis.net/wps/1.0.0",
    "xlink": "http://www.w3.org/1999/xlink",
}
XLINK_HREF = f"{{{NS['xlink']}}}href"

# Member order of a service struct, as the original's XML-RPC interface wrote it.
SERVICE_KEYS = ["url", "name", "type", "purl", "public", "auth", "verify"]
TOKEN_RE = re.compile(r"^[0-9a-f]{32}$")


def free_port() -> int:
    """A loopback port that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def required_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set: run the suite through pyproject-interop/run.sh")
    return value


class ProcessExited(RuntimeError):
    """The process ended before it became ready."""


@dataclass
class ServerProcess:
    """A server we started: its own process group, output in a log file."""

    name: str
    argv: list[str]
    cwd: Path
    log_path: Path
    owner: str | None = None  # node id prefix of the tests it serves; None: the session
    env: dict[str, str] | None = None
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self, tail: int | None = None) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        if tail is not None:
            text = "\n".join(text.splitlines()[-tail:])
        return text

    def wait_ready(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Polls `ready` (exceptions count as "not yet") until it holds, the process dies or
        the time is up."""
        deadline = time.monotonic() + timeout
        delay = 0.02
        last_error: Exception | None = None
        while True:
            if not self.running():
                raise ProcessExited(
                    f"{self.name} exited with status {self.proc.returncode} before {what}; "
                    f"log {self.log_path}:\n{self.log_text(tail=60)}"
                )
            try:
                if ready():
                    return
            except (requests.RequestException, OSError) as e:
                last_error = e
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"{self.name} did not reach {what} within {timeout:.0f} s "
                    f"(last error: {last_error}); log {self.log_path}:\n{self.log_text(tail=60)}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.25)

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM to the process group, SIGKILL after `grace` seconds. Returns the exit status
        of the main process, None when it had to be killed."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            return self.proc.returncode
        self._signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
            return None

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass


# --- twitcher ---------------------------------------------------------------------------------

@dataclass
class Twitcher:
    """One running twitcher server with its own INI file and SQLite database."""

    process: ServerProcess
    port: int
    workdir: Path
    username: str | None = None
    password: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def rpc_url(self) -> str:
        return f"{self.url}/RPC2"

    def rpc(self, username: str | None = None, password: str | None = None,
            **kwargs) -> xmlrpc.client.ServerProxy:
        """An xmlrpc.client proxy; with credentials when given (`user:password@` in the URL,
        as the original twitcherctl builds it)."""
        if username is None:
            return xmlrpc.client.ServerProxy(self.rpc_url, **kwargs)
        return xmlrpc.client.ServerProxy(
            f"http://{username}:{password}@127.0.0.1:{self.port}/RPC2", **kwargs)

    def admin_rpc(self) -> xmlrpc.client.ServerProxy:
        """A proxy that passes this server's basic auth, whether it has one or not."""
        if self.username is None:
            return self.rpc()
        return self.rpc(self.username, self.password)

    def proxy_url(self, name: str) -> str:
        return f"{self.url}/ows/proxy/{name}"


def twitcher_ini(port: int, *, username: str | None, password: str | None,
                 listen_style: str, extra: dict[str, str]) -> str:
    """An INI in the original's development.ini style (PasteDeploy sections and keys)."""
    app = {
        "use": "egg:pyramid_twitcher",
        "pyramid.reload_templates": "false",
        "pyramid.default_locale_name": "en",
        "sqlalchemy.url": "sqlite:///%(here)s/twitcher.sqlite",
        "twitcher.url": f"http://127.0.0.1:{port}",
        "twitcher.rpcinterface": "true",
        "twitcher.ows_security": "true",
        "twitcher.ows_proxy": "true",
        "twitcher.ows_proxy_delegate": "false",
        "twitcher.ows_proxy_protected_path": "/ows",
    }
    if username is not None:
        app["twitcher.username"] = username
        app["twitcher.password"] = password or ""
    app.update(extra)
    lines = ["###", "# written by the twitcher interop suite", "###", "", "[app:main]"]
    lines += [f"{k} = {v}" for k, v in app.items()]
    lines += ["", "[server:main]", "use = egg:gunicorn#main"]
    if listen_style == "listen":
        lines.append(f"listen = 127.0.0.1:{port}")
    else:
        lines += ["host = 127.0.0.1", f"port = {port}"]
    return "\n".join(lines) + "\n"


def start_twitcher(binary: str, workdir: Path, *, owner: str | None,
                   username: str | None = None, password: str | None = None,
                   listen_style: str = "host_port", extra: dict[str, str] | None = None,
                   registry: list[ServerProcess]) -> Twitcher:
    """Starts `twitcher serve` on a free port and waits for `GET /health` to answer 200.
    Retries with another port when the chosen one was taken in between."""
    for attempt in range(3):
        port = free_port()
        ini = workdir / "twitcher.ini"
        ini.write_text(twitcher_ini(port, username=username, password=password,
                                    listen_style=listen_style, extra=extra or {}))
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"), NO_COLOR="1")
        process = ServerProcess("twitcher", [binary, "serve", str(ini)], cwd=workdir,
                                log_path=workdir / f"twitcher-{port}.log", owner=owner, env=env)
        registry.append(process)
        process.start()
        health = f"http://127.0.0.1:{port}/health"
        try:
            process.wait_ready(lambda: requests.get(health, timeout=2).status_code == 200,
                               timeout=30, what="GET /health = 200")
        except ProcessExited:
            if attempt < 2 and "in use" in process.log_text():
                continue
            raise
        return Twitcher(process, port, workdir, username, password)
    raise AssertionError("unreachable")


# --- Emu --------------------------------------------------------------------------------------

@dataclass
class Emu:
    process: ServerProcess
    port: int
    database: Path  # pywps's request log (`--database sqlite:///…`)
    outputs: Path  # `--outputpath`, served by Emu under /outputs

    @property
    def url(self) -> str:
        """The WPS endpoint, as registered in twitcher."""
        return f"http://127.0.0.1:{self.port}/wps"

    def logged_requests(self) -> list[tuple[str, str | None]]:
        """`(operation, identifier)` of every request pywps accepted. pywps 4.6 writes a
        `pywps_requests` row for each GetCapabilities, DescribeProcess and Execute it has
        parsed, before it runs it (`Service.call` → `dblog.log_request`), and nothing for a
        request it refused while parsing."""
        uri = f"file:{self.database}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
            return db.execute("SELECT operation, identifier FROM pywps_requests").fetchall()

    def executions(self) -> int:
        """How many Execute requests pywps has accepted so far (any process)."""
        return sum(1 for operation, _ in self.logged_requests() if operation == "execute")


def start_emu(executable: str, workdir: Path, registry: list[ServerProcess]) -> Emu:
    outputs = workdir / "outputs"
    outputs.mkdir(exist_ok=True)
    for attempt in range(3):
        port = free_port()
        argv = [executable, "start", "-b", "127.0.0.1", "--hostname", "127.0.0.1",
                "--port", str(port), "--outputpath", str(outputs),
                "--outputurl", f"http://127.0.0.1:{port}/outputs",
                "--database", f"sqlite:///{workdir / 'pywps-logs.sqlite'}"]
        # Emu writes pywps.log into its working directory.
        process = ServerProcess("emu", argv, cwd=workdir, log_path=workdir / f"emu-{port}.log",
                                owner=None, env=dict(os.environ, NO_COLOR="1"))
        registry.append(process)
        process.start()
        caps = f"http://127.0.0.1:{port}/wps?service=WPS&request=GetCapabilities"

        def ready() -> bool:
            r = requests.get(caps, timeout=5)
            return r.status_code == 200 and b"Capabilities" in r.content

        try:
            process.wait_ready(ready, timeout=120, what="answering GetCapabilities")
        except ProcessExited:
            if attempt < 2 and "in use" in process.log_text():
                continue
            raise
        return Emu(process, port, workdir / "pywps-logs.sqlite", outputs)
    raise AssertionError("unreachable")


# --- MapProxy ---------------------------------------------------------------------------------

@dataclass
class MapProxy:
    process: ServerProcess
    port: int

    @property
    def url(self) -> str:
        """The WMS endpoint (MapProxy's `/service`), as registered in twitcher."""
        return f"http://127.0.0.1:{self.port}/service"


# One layer drawn by MapProxy's `debug` source (tile outlines and coordinates: no network, no
# data), with a static legend from a file so that the capabilities carry a LegendURL and a
# GetLegendGraphic operation as well.
MAPPROXY_YAML = """\
services:
  wms:
    versions: ['1.1.1', '1.3.0']
    srs: ['EPSG:4326', 'EPSG:3857']
    image_formats: ['image/png']
    md:
      title: Twitcher interop MapProxy
      abstract: The debug source of MapProxy, behind the twitcher under test.
layers:
  - name: debug
    title: Debug grid
    sources: [debug]
    legendurl: file://legend.png
sources:
  debug:
    type: debug
globals:
  cache:
    base_dir: ./cache
"""

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_image(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A plain-colour RGB PNG, written by hand (the tests venv has no imaging library)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, after checking the signature."""
    assert data[:8] == PNG_SIGNATURE, f"not a PNG: {data[:64]!r}"
    assert data[12:16] == b"IHDR", data[:32]
    return struct.unpack(">II", data[16:24])


def start_mapproxy(python: str, workdir: Path, registry: list[ServerProcess]) -> MapProxy:
    """MapProxy (`tests/serve_mapproxy.py` in the mapproxy venv) on a free loopback port,
    ready when its WMS GetCapabilities answers."""
    config = workdir / "mapproxy.yaml"
    config.write_text(MAPPROXY_YAML)
    (workdir / "legend.png").write_bytes(png_image(20, 10, (200, 30, 30)))
    script = Path(__file__).with_name("serve_mapproxy.py")
    for attempt in range(3):
        port = free_port()
        process = ServerProcess("mapproxy", [python, str(script), str(config), str(port)],
                                cwd=workdir, log_path=workdir / f"mapproxy-{port}.log",
                                owner=None, env=dict(os.environ, NO_COLOR="1"))
        registry.append(process)
        process.start()
        caps = f"http://127.0.0.1:{port}/service?SERVICE=WMS&REQUEST=GetCapabilities&VERSION=1.1.1"

        def ready() -> bool:
            r = requests.get(caps, timeout=5)
            return r.status_code == 200 and b"WMT_MS_Capabilities" in r.content

        try:
            process.wait_ready(ready, timeout=60, what="answering GetCapabilities")
        except ProcessExited:
            if attempt < 2 and "in use" in process.log_text():
                continue
            raise
        return MapProxy(process, port)
    raise AssertionError("unreachable")


# --- pygeoapi ---------------------------------------------------------------------------------

@dataclass
class PyGeoApi:
    process: ServerProcess
    port: int
    workdir: Path

    @property
    def url(self) -> str:
        """The landing page, as registered in twitcher (and as pygeoapi writes its links)."""
        return f"http://127.0.0.1:{self.port}"


def pygeoapi_config(port: int, workdir: Path, lakes: Path) -> str:
    """pygeoapi's configuration: its `hello-world` process, the GeoJSON collection `lakes`
    (three points, two per page), and a TinyDB job manager for asynchronous execution."""
    return f"""\
server:
  bind: {{host: 127.0.0.1, port: {port}}}
  url: http://127.0.0.1:{port}
  mimetype: application/json; charset=UTF-8
  encoding: utf-8
  language: en-US
  pretty_print: false
  limits: {{default_items: 2, max_items: 10}}
  map: {{url: 'https://tile.openstreetmap.org/{{z}}/{{x}}/{{y}}.png', attribution: OpenStreetMap}}
  manager:
    name: TinyDB
    connection: {workdir / 'jobs.db'}
    output_dir: {workdir / 'outputs'}
logging: {{level: ERROR}}
metadata:
  identification:
    title: twitcher interop pygeoapi
    description: pygeoapi behind the twitcher under test
    keywords: [twitcher]
    keywords_type: theme
    terms_of_service: https://creativecommons.org/licenses/by/4.0/
    url: https://example.org
  license: {{name: CC-BY 4.0 license, url: 'https://creativecommons.org/licenses/by/4.0/'}}
  provider: {{name: twitcher, url: 'https://example.org'}}
  contact: {{name: twitcher, position: none, address: none, city: none, stateorprovince: none,
    postalcode: none, country: none, phone: none, fax: none, email: none@example.org,
    url: 'https://example.org', hours: none, instructions: none, role: pointOfContact}}
resources:
  lakes:
    type: collection
    title: Lakes
    description: Three lakes
    keywords: [lakes]
    links: []
    extents:
      spatial: {{bbox: [-180, -90, 180, 90], crs: 'http://www.opengis.net/def/crs/OGC/1.3/CRS84'}}
    providers:
      - type: feature
        name: GeoJSON
        data: {lakes}
        id_field: id
  hello-world:
    type: process
    processor: {{name: HelloWorld}}
"""


def start_pygeoapi(python: str, workdir: Path, registry: list[ServerProcess]) -> PyGeoApi:
    """pygeoapi (`tests/serve_pygeoapi.py` in the pygeoapi venv) on a free loopback port,
    ready when its process list answers."""
    (workdir / "outputs").mkdir(exist_ok=True)
    lakes = Path(__file__).with_name("data") / "lakes.geojson"
    script = Path(__file__).with_name("serve_pygeoapi.py")
    for attempt in range(3):
        port = free_port()
        config = workdir / "pygeoapi.yml"
        config.write_text(pygeoapi_config(port, workdir, lakes))
        process = ServerProcess(
            "pygeoapi", [python, str(script), str(config), str(workdir / "openapi.yml"), str(port)],
            cwd=workdir, log_path=workdir / f"pygeoapi-{port}.log", owner=None,
            env=dict(os.environ, NO_COLOR="1"))
        registry.append(process)
        process.start()

        def ready() -> bool:
            r = requests.get(f"http://127.0.0.1:{port}/processes?f=json", timeout=5)
            return r.status_code == 200 and b"hello-world" in r.content

        try:
            process.wait_ready(ready, timeout=90, what="listing its processes")
        except ProcessExited:
            if attempt < 2 and "in use" in process.log_text():
                continue
            raise
        return PyGeoApi(process, port, workdir)
    raise AssertionError("unreachable")


# --- golden transcripts -----------------------------------------------------------------------

@dataclass
class CtlRun:
    """One recorded twitcherctl invocation."""

    command: str
    stdout: str
    stderr: str
    exit_status: int

    @property
    def args(self) -> list[str]:
        """The arguments after `twitcherctl -s URL`."""
        words = self.command.split()
        assert words[:2] == ["twitcherctl", "-s"], self.command
        return words[3:]


_SECTION = re.compile(rb"==== (?P<label>.*?) \((?P<size>\d+) bytes\) ====\n")


def transcript_sections(path: Path) -> list[tuple[str, bytes]]:
    """The `==== LABEL (N bytes) ====` sections of a transcript, each exactly N bytes."""
    data = path.read_bytes()
    sections = []
    pos = 0
    while (m := _SECTION.search(data, pos)) is not None:
        start = m.end()
        end = start + int(m["size"])
        sections.append((m["label"].decode(), data[start:end]))
        pos = end
    return sections


def golden_dir() -> Path:
    return Path(required_env("TWITCHER_INTEROP_GOLDEN")) / "v056" / "transcripts"


def ctl_runs(case: str) -> list[CtlRun]:
    """The twitcherctl runs of golden case `case` (e.g. `35-ctl-revoke`)."""
    runs: list[CtlRun] = []
    current: dict[str, str] = {}
    for label, payload in transcript_sections(golden_dir() / f"{case}.txt"):
        text = payload.decode()
        if label == "COMMAND":
            current = {"command": text.strip()}
        elif label in ("STDOUT", "STDERR"):
            current[label.lower()] = text
        elif label == "EXIT STATUS":
            runs.append(CtlRun(current["command"], current["stdout"], current["stderr"],
                               int(text.strip())))
    return runs


def recorded_run(case: str, args: list[str]) -> CtlRun:
    for run in ctl_runs(case):
        if run.args == args:
            return run
    raise LookupError(f"no run of `twitcherctl -s URL {' '.join(args)}` in case {case}")


def result_of(stderr: str):
    """The value the original twitcherctl logged as `INFO:Result: <python repr>`."""
    lines = [line for line in stderr.splitlines() if line.startswith("INFO:Result: ")]
    assert len(lines) == 1, f"expected one INFO:Result line in stderr:\n{stderr}"
    return ast.literal_eval(lines[0][len("INFO:Result: "):])


# --- command-line clients ---------------------------------------------------------------------

@dataclass
class CliRun:
    """One run of a command-line client (twitcherctl, curl)."""

    argv: list[str]
    stdout: str
    stderr: str
    exit_status: int

    def __str__(self) -> str:
        return (f"$ {' '.join(self.argv)}\nexit status {self.exit_status}\n"
                f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}")


def run_cli(argv: list[str], *, stdin: str | None = None, timeout: float = 60) -> CliRun:
    """Runs `argv` with stdin closed (or fed `stdin`), in the C locale, and captures its text."""
    env = dict(os.environ, LC_ALL="C.UTF-8", NO_COLOR="1")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                          input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL)
    return CliRun(list(argv), done.stdout, done.stderr, done.returncode)


def python_literal(text: str):
    """The one Python literal printed in `text` (our twitcherctl's stdout), checked to be
    printed exactly as Python's repr() prints it."""
    value = ast.literal_eval(text)
    assert text == repr(value) + "\n", f"not printed as Python prints it:\n{text!r}"
    return value


# --- golden transcripts of 0.6.0 ----------------------------------------------------------------

def v060_dir() -> Path:
    return Path(required_env("TWITCHER_INTEROP_GOLDEN")) / "v060" / "transcripts"


def v060_case(case: str) -> dict:
    """A recorded 0.6.0 case (`.json` twin), e.g. `09-tut-add` or `071f38c/01-tut-add`."""
    return json.loads((v060_dir() / f"{case}.json").read_text())


def v060_ctl_args(case: dict) -> list[str]:
    """The arguments after `twitcherctl -s URL` of a recorded twitcherctl run."""
    argv = case["argv"]
    assert Path(argv[0]).name == "twitcherctl" and argv[1] == "-s", argv
    return argv[3:]


def v060_ctl_result(case: dict):
    """What the 0.6.0 twitcherctl printed (a Python literal on stderr after its warning)."""
    lines = [line for line in case["stderr"].splitlines()
             if not line.startswith(("WARNING:", "ERROR:"))]
    assert len(lines) == 1, case["stderr"]
    return ast.literal_eval(lines[0])


OAUTH_DYNAMIC = {
    # 0.6.0: uuid4().hex; tokens of `twitcher.token.type = random_token`: 30 letters/digits
    "client_id": re.compile(r"^[0-9a-f]{32}$"),
    "client_secret": re.compile(r"^[0-9a-f]{32}$"),
    "access_token": re.compile(r"^[A-Za-z0-9]{30}$"),
}


def mask_oauth(value):
    """`value` with the values that differ between runs (client ids and secrets, OAuth tokens,
    `expires_at`) replaced by placeholders, after checking their form."""
    if isinstance(value, list):
        return [mask_oauth(v) for v in value]
    if isinstance(value, dict):
        masked = {}
        for key, v in value.items():
            if key in OAUTH_DYNAMIC:
                assert isinstance(v, str) and OAUTH_DYNAMIC[key].match(v), (key, v)
                v = f"<{key}>"
            elif key == "expires_at":
                assert type(v) is float, (key, v)
                v = "<expires_at>"
            masked[key] = v
        return masked
    return value


# --- OWS documents ----------------------------------------------------------------------------

def ows_exception_report(code: str, locator: str, text: str) -> bytes:
    """An exception report exactly as the original wrote it (SPEC §5)."""
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<ExceptionReport version="1.0.0"\n'
        '    xmlns="http://www.opengis.net/ows/1.1"\n'
        '    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"\n'
        '    xsi:schemaLocation="http://www.opengis.net/ows/1.1 '
        'http://schemas.opengis.net/ows/1.1.0/owsExceptionReport.xsd">\n'
        f'    <Exception exceptionCode="{code}" locator="{locator}">\n'
        f'        <ExceptionText>{text}</ExceptionText>\n'
        '    </Exception>\n'
        '</ExceptionReport>'
    ).encode()


def parse_xml(body: bytes) -> etree._Element:
    return etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))


def c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n")


def operations_hrefs(caps: etree._Element) -> list[etree._Element]:
    """Elements with an xlink:href under ows:OperationsMetadata."""
    return caps.xpath("//ows:OperationsMetadata//*[@xlink:href]", namespaces=NS)


def literal_outputs(execute_response: etree._Element) -> dict[str, str]:
    """`{output identifier: LiteralData text}` of a WPS 1.0.0 ExecuteResponse."""
    outputs = {}
    for out in execute_response.xpath("//wps:ProcessOutputs/wps:Output", namespaces=NS):
        ident = out.findtext("ows:Identifier", namespaces=NS)
        outputs[ident] = out.findtext("wps:Data/wps:LiteralData", namespaces=NS)
    return outputs


EXECUTE_HELLO_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1">
  <ows:Identifier>hello</ows:Identifier>
  <wps:DataInputs><wps:Input><ows:Identifier>name</ows:Identifier><wps:Data><wps:LiteralData>tux</wps:LiteralData></wps:Data></wps:Input></wps:DataInputs>
  <wps:ResponseForm><wps:ResponseDocument><wps:Output><ows:Identifier>output</ows:Identifier></wps:Output></wps:ResponseDocument></wps:ResponseForm>
</wps:Execute>
"""
