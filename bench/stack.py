"""What the benchmark runs against: the generated data, the configs, and the processes
(backend nginx, proxy nginx, twitcher, the original Twitcher), each started in its own
process group on a free loopback port and stopped by that group's id."""

import http.client
import ssl
import json
import os
import signal
import socket
import struct
import subprocess
import time
import urllib.parse
import urllib.request
import xmlrpc.client
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LOOPBACK = "127.0.0.1"
BIG_SIZE = 1 << 30


def free_port():
    """A port that was free a moment ago (the kernel picks it; the small race is harmless
    here: nothing else on this machine binds loopback ports at random)."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


class Processes:
    """Every process the bench started, stopped in reverse order by process group id."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.started = []

    def start(self, name, argv, cpus=None, cwd=None, env=None):
        if cpus:
            # taskset execs the program: the pid we keep is the server's own.
            argv = ["taskset", "-c", cpus, *argv]
        log = open(self.workdir / f"{name}.log", "wb")
        # A session of its own: Ctrl-C in the terminal reaches only the bench, which then
        # stops its servers in order (and so does any other way out of bench.py).
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                start_new_session=True)
        log.close()
        self.started.append((name, proc))
        return proc

    def stop(self, proc, timeout=10):
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
            except ProcessLookupError:
                pass
        # Workers (nginx, gunicorn) left behind by a master that died first.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.started = [(n, p) for n, p in self.started if p is not proc]

    def stop_all(self):
        for _, proc in reversed(list(self.started)):
            self.stop(proc)

    def log_tail(self, name, lines=15):
        path = self.workdir / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def wait_http(proc, url, name, procs, timeout=30):
    """Waits until url answers at all (any status); fails if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{procs.log_tail(name)}")
        try:
            request(url, timeout=2)
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{name} did not answer {url} within {timeout} s:\n{procs.log_tail(name)}")


def request(url, headers=None, data=None, timeout=30):
    """One HTTP request: (status, headers, body). No redirects, no exceptions for 4xx/5xx."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        # The bench's own self-signed certificate.
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout,
                                           context=ssl._create_unverified_context())
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request("POST" if data is not None else "GET", target, body=data,
                     headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


# --- data ----------------------------------------------------------------------------------

def png(width=256, height=256):
    """A small RGB gradient PNG, the size of a real map tile."""
    rows = [b"".join(bytes((x & 0xFF, y & 0xFF, ((x + y) // 2) & 0xFF)) for x in range(width))
            for y in range(height)]
    # PNG filter 2 ("Up": each byte minus the one above) makes a gradient compress well.
    raw = b"".join(
        b"\2" + bytes((a - b) & 0xFF for a, b in zip(row, prev))
        for row, prev in zip(rows, [bytes(len(rows[0]))] + rows[:-1]))

    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def write_data(www, backend_wps_url):
    """The backend's documents. The Emu capabilities, DescribeProcess and Execute answers
    name the backend's own URL, as a real Emu behind the proxy would."""
    www.mkdir(parents=True, exist_ok=True)
    caps = (ROOT / "fixtures/capabilities/emu-getcaps.xml").read_text()
    assert "http://127.0.0.1:15060/wps" in caps
    (www / "getcaps.xml").write_text(caps.replace("http://127.0.0.1:15060/wps", backend_wps_url))
    (www / "describeprocess.xml").write_bytes((HERE / "data/describeprocess.xml").read_bytes())
    execute = (HERE / "data/execute.xml").read_text()
    (www / "execute.xml").write_text(execute.replace("@BACKEND_WPS@", backend_wps_url))
    (www / "map.png").write_bytes(png())
    big = www / "1g.bin"
    if not big.exists() or big.stat().st_size != BIG_SIZE:
        # Sparse: no disk space, served from memory; the proxies are measured, not the disk.
        with open(big, "wb") as f:
            f.truncate(BIG_SIZE)


# --- nginx ---------------------------------------------------------------------------------

NGINX_COMMON = """\
daemon off;
worker_processes {workers};
pid {work}/{name}.pid;
error_log {work}/{name}.error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {work}/tmp/{name}-body;
    proxy_temp_path {work}/tmp/{name}-proxy;
    fastcgi_temp_path {work}/tmp/{name}-fastcgi;
    uwsgi_temp_path {work}/tmp/{name}-uwsgi;
    scgi_temp_path {work}/tmp/{name}-scgi;
    # wrk keeps its connections for the whole run: never close them after N requests.
    keepalive_requests 100000000;
{body}
}}
"""

BACKEND = """\
    sendfile on;
    tcp_nopush on;
    types {{ text/xml xml; image/png png; }}
    # A WPS answers by its request parameter; the answers are static copies of Emu's.
    map $arg_request $wps_answer {{
        ~*^getcapabilities$ /getcaps.xml;
        ~*^describeprocess$ /describeprocess.xml;
        ~*^execute$         /execute.xml;
        default             /no-such-answer;
    }}
    server {{
        listen {addr} backlog=4096;
        root {www};
        location = /wps {{ try_files $wps_answer =404; }}
        location = /wms {{ try_files /map.png =404; }}
        # 1 GiB as image/png: a type the wps branch allows and does not rewrite.
        location ~ ^/big(wps|wms)$ {{ types {{ }} default_type image/png; try_files /1g.bin =404; }}
        # Request counter: the refused row checks that no request reached the backend.
        location = /nginx_status {{ stub_status; }}
    }}
"""

PROXIES = """\
    upstream backend {{
        server {backend};
        # Reused upstream connections, as twitcher's client pool does.
        keepalive 256;
    }}
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    # Stream large answers through memory buffers instead of spooling them to a temp file.
    proxy_max_temp_file_size 0;
    server {{
        listen {plain} backlog=4096;
        location /ows/proxy/ {{ proxy_pass http://backend/; }}
    }}
    # nginx terminating TLS in front of the backend: the anchor of the HTTPS rows.
    server {{
        listen {tls} ssl backlog=4096;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location /ows/proxy/ {{ proxy_pass http://backend/; }}
    }}
    # nginx doing twitcher's job for capabilities: the backend's URL rewritten to the one the
    # client used, in every XML answer.
    server {{
        listen {subfilter} backlog=4096;
        location /ows/proxy/ {{
            proxy_pass http://backend/;
            # sub_filter cannot rewrite a compressed body. A proxy_set_header here replaces
            # every inherited one: repeat the empty Connection, or upstream keep-alive is lost.
            proxy_set_header Accept-Encoding "";
            proxy_set_header Connection "";
            sub_filter_types text/xml;
            sub_filter_once off;
            sub_filter '{backend_wps}' '$scheme://$http_host/ows/proxy/wps';
        }}
    }}
"""


def nginx_config(work, name, workers, body):
    (work / "tmp").mkdir(exist_ok=True)
    path = work / f"{name}.conf"
    path.write_text(NGINX_COMMON.format(work=work, name=name, workers=workers, body=body))
    return path


# --- twitcher ------------------------------------------------------------------------------

TWITCHER_INI = """\
[app:main]
use = egg:pyramid_twitcher
sqlalchemy.url = sqlite:///{db}
twitcher.url = http://{addr}
twitcher.rpcinterface = true
twitcher.username =
twitcher.password =
twitcher.ows_security = true
twitcher.ows_proxy = true
twitcher.oauth = true
twitcher.token.type = {token_type}
twitcher.token.keyfile = {keys}/test-signing-key.pem
twitcher.token.certfile = {keys}/test-signing-cert.pem
twitcher.token.expires_in = 86400
twitcher.token.issuer = twitcher
# Like the nginx servers here (access_log off): the proxy path, not log writing, is measured.
twitcher.access_log = false
{extra}

[server:main]
listen = {addr}
{server_extra}
"""

ORIGINAL_INI = """\
[app:main]
use = egg:pyramid_twitcher
pyramid.reload_templates = false
pyramid.debug_authorization = false
pyramid.debug_notfound = false
pyramid.debug_routematch = false
pyramid.default_locale_name = en
sqlalchemy.url = sqlite:///{db}
retry.attempts = 3
twitcher.url = http://{addr}
twitcher.adapter = default
twitcher.rpcinterface = true
twitcher.username =
twitcher.password =
twitcher.ows_security = true
twitcher.ows_proxy = true
twitcher.ows_proxy_delegate = false
twitcher.ows_proxy_protected_path = /ows

[alembic]
script_location = twitcher:alembic

[server:main]
use = egg:gunicorn#main
host = 127.0.0.1
port = {port}
workers = {workers}
# The 1 GiB rows take longer than gunicorn's default 30 s per request.
timeout = 600

# INFO for all, like twitcher's default log level (development.ini's DEBUG logs each request).
[loggers]
keys = root
[handlers]
keys = console
[formatters]
keys = generic
[logger_root]
level = INFO
handlers = console
[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic
[formatter_generic]
format = %(asctime)s %(levelname)-5.5s [%(name)s] %(message)s
"""

SERVICES = [  # name, backend path, type, public (no token needed for any request)
    ("wps", "/wps", "wps", False),
    ("wpspublic", "/wps", "wps", True),
    ("wms", "/wms", "wms", False),
    ("bigwps", "/bigwps", "wps", False),
    ("bigwms", "/bigwms", "wms", False),
]


def register(base_url, backend):
    """Registers the services and returns an XML-RPC token (0.5 interface, both servers)."""
    rpc = xmlrpc.client.ServerProxy(f"{base_url}/RPC2")
    for name, path, kind, public in SERVICES:
        rpc.register_service(name, f"http://{backend}{path}", {"type": kind, "public": public})
    token = rpc.generate_token(24)["access_token"]
    assert len(token) == 32, token
    return token


def oauth_client(base_url):
    status, _, body = request(f"{base_url}/oauth/client", data=b"name=bench",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    if status != 200:
        raise RuntimeError(f"/oauth/client answered {status}: {body[:300]!r}")
    client = json.loads(body)
    return client["client_id"], client["client_secret"]


def oauth_token(base_url, client):
    form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": client[0],
                                   "client_secret": client[1], "scope": "compute"})
    status, _, body = request(f"{base_url}/oauth/token", data=form.encode(),
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    if status != 200:
        raise RuntimeError(f"/oauth/token answered {status}: {body[:300]!r}")
    return json.loads(body)["access_token"]


def twitcher_ini(work, name, port, token_type, extra="", server_extra=""):
    path = work / f"{name}.ini"
    path.write_text(TWITCHER_INI.format(db=work / "twitcher.sqlite", addr=f"{LOOPBACK}:{port}",
                                        token_type=token_type, keys=ROOT / "fixtures/keys",
                                        extra=extra, server_extra=server_extra))
    return path


def tls_certificate(work):
    """A self-signed RSA 2048 certificate for 127.0.0.1 (openssl): (cert, key) paths."""
    cert, key = work / "tls-cert.pem", work / "tls-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    key.chmod(0o644)  # nginx workers run as www-data
    return cert, key


def original_ini(work, port, workers):
    path = work / "original.ini"
    path.write_text(ORIGINAL_INI.format(db=work / "original.sqlite", addr=f"{LOOPBACK}:{port}",
                                        port=port, workers=workers))
    return path


def rss_peak(pid):
    """Peak resident set of pid and its children (gunicorn workers), in KiB."""
    peak = 0
    for p in [pid, *children(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            pass
    return peak


def reset_rss_peak(pid):
    """Resets VmHWM (Linux >= 4.0, as root or owner); False where it cannot."""
    ok = True
    for p in [pid, *children(pid)]:
        try:
            Path(f"/proc/{p}/clear_refs").write_text("5")
        except OSError:
            ok = False
    return ok


def children(pid):
    found = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return found


def backend_counters(backend):
    """The backend nginx's connections accepted and requests served (stub_status),
    counting this request (on its own connection) too."""
    _, _, body = request(f"http://{backend}/nginx_status")
    # Third line holds "accepts handled requests".
    accepts, _, requests = body.decode().splitlines()[2].split()
    return int(accepts), int(requests)


def backend_requests(backend):
    """The backend nginx's request counter (stub_status), counting this request too."""
    return backend_counters(backend)[1]
