#!/usr/bin/env python3
"""The proxy benchmark of issue 9 (run it through bench/run.sh, which installs nginx, wrk,
twitcher and the original first). Starts every server on free loopback ports, checks one
answer per cell, measures with wrk (and curl for 1 GiB), prints one Markdown table, and
stops everything it started, also on Ctrl-C or SIGTERM."""

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import measure
import stack
from measure import si, ms
from stack import LOOPBACK

COLUMNS = {  # key: heading
    "backend": "backend direct",
    "nginx": "nginx proxy",
    "subfilter": "nginx + sub_filter",
    "twitcher": "twitcher",
    "original": "original 0.5.5",
}

CACHE_SECONDS = 1
EXECUTE = "service=WPS&request=Execute&version=1.0.0&identifier=hello&DataInputs=name=tux"
GETMAP = ("service=WMS&request=GetMap&version=1.3.0&layers=bench&styles=&crs=EPSG:4326"
          "&bbox=-90,-180,90,180&width=256&height=256&format=image/png")


@dataclass
class Row:
    key: str
    label: str
    service: str  # the service name, and the backend path
    query: str  # {token} is the XML-RPC token of the server measured
    columns: tuple
    check: str  # what the answer must contain: see check_answer
    expect: int = 200
    header: str = ""  # {oauth} / {jwt}: an OAuth2 token of twitcher
    baseline: str = ""  # row whose backend/nginx measurements stand for this one's
    instance: str = "twitcher"  # which twitcher serves the twitcher column
    tls: bool = False  # measured over HTTPS (nginx terminating TLS, twitcher's own listener)


ALL = tuple(COLUMNS)
ROWS = [
    Row("getcaps", "GetCapabilities (rewritten)", "wps",
        "service=WPS&request=GetCapabilities", ALL, "caps"),
    Row("getcaps_cached", f"GetCapabilities, capabilities cache {CACHE_SECONDS} s", "wps",
        "service=WPS&request=GetCapabilities", ("twitcher",), "caps", baseline="getcaps",
        instance="cached"),
    Row("describe", "DescribeProcess", "wps",
        "service=WPS&request=DescribeProcess&version=1.0.0&identifier=hello", ALL,
        "ProcessDescriptions"),
    Row("execute", "Execute, XML-RPC token", "wps", EXECUTE + "&access_token={token}", ALL,
        "Hello tux"),
    Row("public", "Execute, public service (no token)", "wpspublic", EXECUTE,
        ("twitcher", "original"), "Hello tux", baseline="execute"),
    Row("oauth", "Execute, OAuth token", "wps", EXECUTE, ("twitcher",), "Hello tux",
        header="Authorization: Bearer {oauth}", baseline="execute"),
    Row("jwt", "Execute, JWT", "wps", EXECUTE, ("twitcher",), "Hello tux",
        header="Authorization: Bearer {jwt}", baseline="execute"),
    Row("refused", "Execute refused (no token)", "wps", EXECUTE, ("twitcher", "original"),
        "ExceptionReport", expect=401, baseline="execute"),
    Row("getmap", "WMS GetMap", "wms", GETMAP + "&access_token={token}",
        ("backend", "nginx", "twitcher", "original"), "png"),
    Row("https_execute", "HTTPS: Execute, XML-RPC token", "wps", EXECUTE + "&access_token={token}",
        ("nginx", "twitcher"), "Hello tux", tls=True),
    Row("https_getcaps", "HTTPS: GetCapabilities (rewritten)", "wps",
        "service=WPS&request=GetCapabilities", ("twitcher",), "caps", tls=True),
]
BIG_ROWS = [  # 1 GiB, one stream: key, label, service, query
    ("bigwms", "1 GiB, wms branch (GetMap)", "bigwms", GETMAP + "&access_token={token}"),
    ("bigwps", "1 GiB, wps branch (Execute)", "bigwps", EXECUTE + "&access_token={token}"),
]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, prog="bench/run.sh")
    p.add_argument("--quick", action="store_true",
                   help="2 rounds of 2 s, 1 s warm-up (default: 3 rounds of 5 s, 2 s warm-up)")
    p.add_argument("--rounds", type=int, help="rounds per cell")
    p.add_argument("--duration", type=int, help="seconds per round")
    p.add_argument("--warmup", type=int, help="seconds of warm-up per cell")
    p.add_argument("--connections", default="8,64,512", help="wrk concurrencies (default 8,64,512)")
    p.add_argument("--rows", help="only these rows, comma-separated keys: "
                   + ",".join([r.key for r in ROWS] + [b[0] for b in BIG_ROWS]))
    p.add_argument("--no-big", action="store_true", help="skip the 1 GiB rows")
    p.add_argument("--no-original", action="store_true", help="skip the original Twitcher")
    p.add_argument("--original-workers", type=int,
                   help="gunicorn sync workers of the original (default 2 x server cores + 1)")
    p.add_argument("--no-pin", action="store_true",
                   help="do not pin servers and load generator to separate cores")
    p.add_argument("--output", help="also write the table (Markdown) to this file")
    p.add_argument("--keep", action="store_true", help="keep the work directory (configs, logs)")
    a = p.parse_args()
    a.rounds = a.rounds or (2 if a.quick else 3)
    a.duration = a.duration or (2 if a.quick else 5)
    a.warmup = a.warmup if a.warmup is not None else (1 if a.quick else 2)
    a.connections = [int(c) for c in a.connections.split(",")]
    a.rows = set(a.rows.split(",")) if a.rows else None
    return a


def say(text):
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def on_signal(signum, _frame):
    # SIGTERM/SIGHUP take the same way out as Ctrl-C: through the finally that stops servers.
    raise KeyboardInterrupt(f"signal {signum}")


class Bench:
    def __init__(self, args, work):
        self.args = args
        self.work = work
        self.procs = stack.Processes(work)
        cores = os.cpu_count() or 1
        # Two cores: the servers (backend and proxy) share core 0, wrk/curl get core 1, so
        # the load generator never takes CPU from the server side it measures.
        if cores >= 2 and not args.no_pin:
            self.server_cpus = "0" if cores == 2 else f"0-{cores - 2}"
            self.load_cpus = str(cores - 1)
            self.server_cores, self.load_cores = cores - 1, 1
        else:
            self.server_cpus = self.load_cpus = None
            self.server_cores = self.load_cores = cores
        self.port = {k: stack.free_port() for k in ("backend", "nginx", "subfilter",
                                                    "twitcher", "helper", "cached", "original",
                                                    "nginx_tls", "twitcher_tls")}
        self.addr = {k: f"{LOOPBACK}:{p}" for k, p in self.port.items()}
        self.tokens = {}  # column -> XML-RPC token
        self.oauth = self.jwt = ""
        self.skipped = {}  # column -> why it has no numbers
        self.twitcher_proc = self.original_proc = None
        self.no_cache = ""  # why the cached instance does not run, if it does not
        self.results = {}  # (row key, column, connections) -> Summary or str (why not)
        self.connects = {}  # (row key, column, connections) -> [connects per 10k requests]
        self.notes = []

    # --- servers ---------------------------------------------------------------------------

    def start_nginx(self):
        backend_wps = f"http://{self.addr['backend']}/wps"
        stack.write_data(self.work / "www", backend_wps)
        workers = self.server_cores
        backend = stack.nginx_config(self.work, "backend", workers, stack.BACKEND.format(
            addr=self.addr["backend"], www=self.work / "www"))
        self.tls_cert, self.tls_key = stack.tls_certificate(self.work)
        proxies = stack.nginx_config(self.work, "proxies", workers, stack.PROXIES.format(
            backend=self.addr["backend"], plain=self.addr["nginx"],
            subfilter=self.addr["subfilter"], backend_wps=backend_wps,
            tls=self.addr["nginx_tls"], cert=self.tls_cert, key=self.tls_key))
        for name, conf, check in (("backend", backend, f"{self.addr['backend']}/nginx_status"),
                                  ("proxies", proxies, f"{self.addr['nginx']}/")):
            proc = self.procs.start(name, ["nginx", "-c", str(conf), "-p", str(self.work)],
                                    cpus=self.server_cpus)
            stack.wait_http(proc, f"http://{check}", name, self.procs)

    def start_twitcher(self):
        binary = os.environ["TWITCHER_BIN"]
        # A second config on the same database with random (stored) OAuth tokens issues the
        # OAuth token; the measured one issues and checks RS256 JWTs (signed_token) and finds
        # stored tokens, XML-RPC or OAuth, in the database.
        helper_ini = stack.twitcher_ini(self.work, "helper", self.port["helper"], "random_token")
        helper = self.procs.start("helper", [binary, "serve", str(helper_ini)])
        url = f"http://{self.addr['helper']}"
        stack.wait_http(helper, f"{url}/health", "helper", self.procs)
        client = stack.oauth_client(url)
        self.oauth = stack.oauth_token(url, client)
        self.procs.stop(helper)

        https = (f"https_listen = {self.addr['twitcher_tls']}\ncertfile = {self.tls_cert}\n"
                 f"keyfile = {self.tls_key}")
        ini = stack.twitcher_ini(self.work, "twitcher", self.port["twitcher"], "signed_token",
                                 server_extra=https)
        self.twitcher_proc = self.procs.start("twitcher", [binary, "serve", str(ini)],
                                              cpus=self.server_cpus)
        url = f"http://{self.addr['twitcher']}"
        stack.wait_http(self.twitcher_proc, f"{url}/health", "twitcher", self.procs)
        self.tokens["twitcher"] = stack.register(url, self.addr["backend"])
        self.jwt = stack.oauth_token(url, client)
        if self.jwt.count(".") != 2 or len(self.oauth) > 40:
            raise RuntimeError(f"expected a random OAuth token and a JWT, got "
                               f"{self.oauth[:20]}… and {self.jwt[:20]}…")
        if any(r.instance == "cached" for r in self.selected_rows()):
            self.start_cached(binary)

    def start_cached(self, binary):
        """A third instance on the same database with the opt-in GetCapabilities cache."""
        key = "twitcher.ows_proxy_capabilities_cache"
        ini = stack.twitcher_ini(self.work, "cached", self.port["cached"], "signed_token",
                                 extra=f"{key} = {CACHE_SECONDS}")
        proc = self.procs.start("cached", [binary, "serve", str(ini)], cpus=self.server_cpus)
        stack.wait_http(proc, f"http://{self.addr['cached']}/health", "cached", self.procs)
        if f"unknown key {key}" in (self.work / "cached.log").read_text(errors="replace"):
            # An older twitcher ignores the key: its numbers would be the uncached ones.
            self.procs.stop(proc)
            self.no_cache = f"this twitcher has no {key}"

    def start_original(self):
        venv = os.environ.get("ORIGINAL_VENV", "")
        if self.args.no_original:
            self.skipped["original"] = "--no-original"
            return
        if not venv:
            self.skipped["original"] = "not installed (bench/run.sh said why)"
            return
        workers = self.args.original_workers or 2 * self.server_cores + 1
        ini = stack.original_ini(self.work, self.port["original"], workers)
        try:
            # The original creates its tables with alembic, not on start.
            done = subprocess.run([f"{venv}/bin/alembic", "-c", str(ini), "upgrade", "head"],
                                  capture_output=True, text=True, timeout=120, cwd=self.work)
            if done.returncode:
                raise RuntimeError(f"alembic upgrade head failed: {done.stderr[-500:]}")
            self.original_proc = self.procs.start(
                "original", [f"{venv}/bin/pserve", str(ini)], cpus=self.server_cpus,
                cwd=self.work)
            url = f"http://{self.addr['original']}"
            stack.wait_http(self.original_proc, f"{url}/", "original", self.procs, timeout=60)
            self.tokens["original"] = stack.register(url, self.addr["backend"])
            self.notes.append(f"original: pyramid-twitcher 0.5.5 on gunicorn, {workers} sync "
                              "workers (default: 2 × server cores + 1, gunicorn's advice).")
        except Exception as e:  # noqa: BLE001 - any failure only drops the column
            why = str(e).strip().splitlines()
            self.skipped["original"] = f"could not serve: {why[-1] if why else e}"
            say(f"original: {e}")
            if self.original_proc:
                self.procs.stop(self.original_proc)
                self.original_proc = None

    # --- cells -----------------------------------------------------------------------------

    def server(self, column, row=None):
        """The address measured in a column (the twitcher column: the row's instance)."""
        if row and row.tls:
            return self.addr[f"{column}_tls"]
        return self.addr[row.instance if row and column == "twitcher" else column]

    def url(self, column, service, query, row=None):
        query = query.format(token=self.tokens.get(column, self.tokens["twitcher"]))
        if column == "backend":
            return f"http://{self.addr['backend']}/{service}?{query}"
        scheme = "https" if row and row.tls else "http"
        return f"{scheme}://{self.server(column, row)}/ows/proxy/{service}?{query}"

    def header(self, row):
        return row.header.format(oauth=self.oauth, jwt=self.jwt) if row.header else ""

    def check_answer(self, row, column, url):
        """One request before measuring: the expected status and content, else why not."""
        header = self.header(row)
        headers = dict([header.split(": ", 1)]) if header else {}
        status, _, body = stack.request(url, headers=headers)
        if status != row.expect:
            return f"answered {status}, not {row.expect}: {body[:200]!r}"
        if row.check == "png":
            return None if body.startswith(b"\x89PNG") else "not a PNG"
        if row.check == "caps":
            backend_url = f"http://{self.addr['backend']}/wps".encode()
            if column in ("backend", "nginx"):
                wanted = backend_url  # no rewriting there
            else:
                scheme = "https" if row.tls else "http"
                wanted = f"{scheme}://{self.server(column, row)}/ows/proxy/wps".encode()
            if b"wps:Capabilities" not in body or wanted not in body:
                return f"capabilities without {wanted.decode()}"
            if column not in ("backend", "nginx") and backend_url in body:
                return "capabilities still name the backend"
            return None
        return None if row.check.encode() in body else f"answer without {row.check!r}"

    def measure_row(self, row):
        columns = [c for c in row.columns if c not in self.skipped]
        urls = {}
        for column in columns:
            url = self.url(column, row.service, row.query, row)
            try:
                problem = self.check_answer(row, column, url)
            except OSError as e:
                problem = f"no answer: {e}"
            if row.instance == "cached" and self.no_cache:
                problem = self.no_cache
            if problem:
                say(f"{row.key} / {column}: check FAILED, not measured: {problem}")
                for c in self.args.connections:
                    self.results[(row.key, column, c)] = f"FAILED: {problem}"
            else:
                urls[column] = url
        headers = [self.header(row)] if row.header else []
        for conns in self.args.connections:
            runs = {column: [] for column in urls}
            for column, url in urls.items():
                measure.wrk(url, conns, self.args.warmup, self.load_cores, self.load_cpus,
                            headers)
            # Rounds go round the columns, so a slow spell (another build on the machine)
            # hits every column alike instead of one.
            for rnd in range(self.args.rounds):
                for column, url in urls.items():
                    counted = stack.backend_counters(self.addr["backend"])
                    before = counted[1]
                    run = measure.wrk(url, conns, self.args.duration, self.load_cores,
                                      self.load_cpus, headers)
                    self.count_connects(row, column, conns, counted)
                    if row.expect != 200:
                        # stub_status counts its own request: 1 means nothing else came.
                        reached = stack.backend_requests(self.addr["backend"]) - before - 1
                        if reached:
                            run.problems.append(f"{reached} requests reached the backend")
                    runs[column].append(run)
                    say(f"{row.key} c={conns} round {rnd + 1} {column}: {run.rps:.0f} req/s, "
                        f"p99 {run.p99_ms:.2f} ms")
            for column, col_runs in runs.items():
                self.results[(row.key, column, conns)] = measure.summarize(
                    col_runs, row.expect < 300)

    def count_connects(self, row, column, conns, before):
        """Records the connections the proxy in `column` opened to the backend per 10 000
        requests it sent there since `before` (the backend's counters)."""
        if row.expect != 200 or column == "backend":
            return
        accepts, requests = stack.backend_counters(self.addr["backend"])
        # Both counters include the one stub_status request that read them.
        opened, served = accepts - before[0] - 1, requests - before[1] - 1
        if served > 0:
            self.connects.setdefault((row.key, column, conns), []).append(
                10_000 * opened / served)

    def connects_table(self):
        """Upstream connections opened per 10 000 proxied requests, median over rounds."""
        columns = ["nginx", "subfilter", "twitcher", "original"]
        lines = ["| row | conn | " + " | ".join(COLUMNS[c] for c in columns) + " |",
                 "|---|---|" + "---|" * len(columns)]
        for row in self.selected_rows():
            for conns in self.args.connections:
                cells = []
                for column in columns:
                    got = sorted(self.connects.get((row.key, column, conns), []))
                    cells.append(f"{got[len(got) // 2]:.1f}" if got else "—")
                if any(c != "—" for c in cells):
                    lines.append(f"| {row.label} | {conns} | " + " | ".join(cells) + " |")
        return lines if len(lines) > 2 else []

    def measure_big(self, key, service, query):
        columns = [c for c in ("backend", "nginx", "twitcher", "original")
                   if c not in self.skipped]
        for column in columns:
            url = self.url(column, service, query)
            proc = {"twitcher": self.twitcher_proc, "original": self.original_proc}.get(column)
            speeds, peaks, problems = [], [], []
            for rnd in range(self.args.rounds):
                if proc and not stack.reset_rss_peak(proc.pid):
                    problems.append("peak RSS not resettable: it includes the wrk rows")
                status, size, speed = measure.curl_big(url, self.load_cpus)
                if status != 200 or size != stack.BIG_SIZE:
                    problems.append(f"answered {status} with {size} bytes")
                    break
                speeds.append(speed)
                if proc:
                    peaks.append(stack.rss_peak(proc.pid))
                say(f"{key} round {rnd + 1} {column}: {speed:.0f} MiB/s"
                    + (f", peak RSS {peaks[-1] / 1024:.0f} MiB" if proc else ""))
            if not speeds:
                self.results[(key, column, 1)] = f"FAILED: {problems[0]}"
                continue
            summary = measure.Summary(sorted(speeds)[len(speeds) // 2], min(speeds), max(speeds),
                                      problems=problems)
            summary.rss_mib = max(peaks) / 1024 if peaks else 0.0
            self.results[(key, column, 1)] = summary

    # --- the table -------------------------------------------------------------------------

    def cell(self, key, column, conns):
        result = self.results.get((key, column, conns))
        if result is None:
            return "—"
        if isinstance(result, str):
            # Cut, and without what would break the Markdown table; the full text is below it.
            return "**" + result[:60].replace("|", "/").replace("\n", " ") + "**"
        flag = " ⚠" if result.problems else ""
        rng = f"({si(result.low)}–{si(result.high)})"
        if conns == 1:  # a 1 GiB row: MiB/s
            rss = f" · {result.rss_mib:.0f} MiB RSS" if result.rss_mib else ""
            return f"{result.median:.0f} MiB/s ({result.low:.0f}–{result.high:.0f}){rss}{flag}"
        return f"{si(result.median)} {rng} · {ms(result.p50_ms)}/{ms(result.p99_ms)}{flag}"

    def ratio(self, key, conns, column, baseline_key):
        tw = self.results.get((key, "twitcher", conns))
        base = self.results.get((baseline_key, column, conns))
        if not isinstance(tw, measure.Summary) or not isinstance(base, measure.Summary):
            return "—"
        return f"{tw.median / base.median:.2f}"

    def table(self):
        heads = ["row", "conn", *COLUMNS.values(), "tw ÷ nginx", "tw ÷ sub_filter", "tw ÷ direct"]
        lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
        for row in self.selected_rows():
            base = row.baseline or row.key
            for conns in self.args.connections:
                cells = []
                for column in COLUMNS:
                    if column in self.skipped and column in row.columns:
                        cells.append("skipped")
                    elif column in row.columns:
                        cells.append(self.cell(row.key, column, conns))
                    elif column == "original" and row.key in ("oauth", "jwt"):
                        cells.append("n/a (no OAuth in 0.5)")
                    elif row.baseline and column in self.anchors(row):
                        text = self.cell(base, column, conns)
                        cells.append(f"= {text}" if text != "—" else text)
                    else:
                        cells.append("—")
                sub = (self.ratio(row.key, conns, "subfilter", base)
                       if "subfilter" in self.anchors(row) else "—")
                lines.append("| " + " | ".join([row.label, str(conns), *cells,
                             self.ratio(row.key, conns, "nginx", base), sub,
                             self.ratio(row.key, conns, "backend", base)]) + " |")
        for key, label, _, _ in self.selected_big():
            cells = [self.cell(key, c, 1) if c != "subfilter" else "—" for c in COLUMNS]
            lines.append("| " + " | ".join([label, "1", *cells, self.ratio(key, 1, "nginx", key),
                                            "—", self.ratio(key, 1, "backend", key)]) + " |")
        return "\n".join(lines)

    @staticmethod
    def anchors(row):
        """Columns of the baseline row shown in a row that reuses them."""
        rewrites = row.key in ("getcaps", "getcaps_cached", "describe", "execute", "public",
                               "oauth", "jwt")
        return ("backend", "nginx", "subfilter") if rewrites else ("backend", "nginx")

    def selected_rows(self):
        return [r for r in ROWS if not self.args.rows or r.key in self.args.rows]

    def selected_big(self):
        if self.args.no_big:
            return []
        return [b for b in BIG_ROWS if not self.args.rows or b[0] in self.args.rows]

    def report(self, started):
        a = self.args
        out = [self.table(), ""]
        out.append(f"Cells: requests/s, median (min–max) of {a.rounds} rounds of {a.duration} s "
                   f"after a {a.warmup} s warm-up · p50/p99 latency in ms (medians over rounds); "
                   "1 GiB rows: MiB/s of one curl download, median (min–max) of "
                   f"{a.rounds}, peak RSS (VmHWM) of the proxy process during it. "
                   "`= …`: the measurement of the row this one stands in for: Execute's "
                   "(backend and nginx ignore tokens; a refusal's fair anchor is nginx proxying "
                   "the request), GetCapabilities' for the cached row. "
                   "⚠: see the problems below; **FAILED**: not measured.")
        problems = [f"- {key} / {col} / c={conns}: " + "; ".join(dict.fromkeys(r.problems))
                    for (key, col, conns), r in self.results.items()
                    if isinstance(r, measure.Summary) and r.problems]
        problems += [f"- {key} / {col}: {r}" for (key, col, _), r in self.results.items()
                     if isinstance(r, str)]
        if problems:
            out += ["", "Problems:", *sorted(set(problems))]
        connects = self.connects_table()
        if connects:
            out += ["", "Connections to the backend opened per 10 000 requests sent to it "
                    "(nginx's stub_status counters around each round; median of rounds; "
                    "both nginx proxies keep up to 256 idle upstream connections, as twitcher's pool does):",
                    "", *connects]
        for column, why in self.skipped.items():
            out.append(f"- column {COLUMNS[column]} skipped: {why}")
        out += ["", *self.machine(), *[f"- {n}" for n in self.notes],
                f"- total time {time.monotonic() - started:.0f} s"]
        return "\n".join(out)

    def machine(self):
        def first_line(argv):
            try:
                done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
                return (done.stdout or done.stderr).strip().splitlines()[0]
            except (OSError, IndexError, subprocess.TimeoutExpired):
                return "?"
        model = "?"
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        cores = os.cpu_count()
        pin = (f"servers (backend, proxies) on CPU {self.server_cpus}, wrk/curl on CPU "
               f"{self.load_cpus}" if self.server_cpus else "no pinning (--no-pin or 1 core)")
        rss = stack.rss_peak(self.twitcher_proc.pid) / 1024 if self.twitcher_proc else 0
        return [
            f"- machine: {cores} cores ({model}), {platform.system()} {platform.release()}; "
            f"{time.strftime('%Y-%m-%d %H:%M %Z')}",
            f"- {cores} cores shared by proxy, backend and load generator: {pin}",
            f"- {first_line([os.environ['TWITCHER_BIN'], '--version'])} "
            f"({os.environ['TWITCHER_BIN']}; work tree at "
            f"{first_line(['git', '-C', str(stack.ROOT), 'describe', '--always', '--dirty'])}), "
            f"{first_line(['nginx', '-v'])}, {first_line(['wrk', '--version']).split(' Copyright')[0]}",
            f"- twitcher peak RSS over the whole run: {rss:.0f} MiB",
        ]


def main():
    args = parse_args()
    # Also SIGINT: a shell starting the bench in the background leaves it ignored.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="twitcher-bench-"))
    # nginx workers run as an unprivileged user (www-data) and must read the documents.
    work.chmod(0o755)
    bench = Bench(args, work)
    ok = False
    try:
        say(f"work directory {work}; ports {bench.port}")
        bench.start_nginx()
        bench.start_twitcher()
        bench.start_original()
        # 1 GiB first, on fresh processes: afterwards their resident memory holds what the
        # wrk rows left (allocator caches), and a peak during streaming could not be seen.
        if bench.selected_big():
            # The first read of the (sparse) 1 GiB file fills the page cache: not measured.
            measure.curl_big(f"http://{bench.addr['backend']}/bigwps", bench.load_cpus)
        for key, _, service, query in bench.selected_big():
            bench.measure_big(key, service, query)
        for row in bench.selected_rows():
            bench.measure_row(row)
        report = bench.report(started)
        print(report)
        if args.output:
            Path(args.output).write_text(report + "\n")
        ok = True
    except KeyboardInterrupt:
        say("interrupted: stopping the servers")
    finally:
        bench.procs.stop_all()
        if ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            say(f"configs and logs kept in {work}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
