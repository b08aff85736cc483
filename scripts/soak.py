#!/usr/bin/env python3
"""The soak test behind scripts/soak.sh: twitcher under minutes of mixed load, on SQLite
(one instance) and on PostgreSQL (two instances, requests alternating between them), with
nginx as the static backend (bench/stack.py). Every answer is checked; the run fails when
any was wrong. Only 127.0.0.1 is contacted, and every loop ends when its time is up.

Each client thread repeats, choosing by weight:
  caps      GetCapabilities of `emu` (anonymous), rewritten to the proxy's URL   45 %
  execute   Execute with a long-lived XML-RPC token                              35 %
  lifecycle generate_token on one instance, Execute with it on the next, revoke it
            on the next, Execute on the next must be refused (401)              15 %
  register  register_service of one of 20 names (an update after the first
            time) on one instance, its GetCapabilities on the next              5 %
"""

import argparse
import http.client
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
import xmlrpc.client
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import stack  # noqa: E402  (bench/stack.py: processes, nginx backend, free ports)

INI = """\
[app:main]
sqlalchemy.url = {db}
twitcher.url = http://{addr}
twitcher.username =
twitcher.password =
twitcher.store_cache_seconds = 1

[server:main]
listen = {addr}
"""

WEIGHTS = [("caps", 45), ("execute", 35), ("lifecycle", 15), ("register", 5)]


def say(text):
    print(text, flush=True)


class Results:
    """Latencies per operation and every wrong answer, shared by the client threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.latencies = {}  # operation -> [seconds]
        self.errors = []  # (operation, what)
        self.window = []  # latencies since the last progress line

    def ok(self, operation, seconds):
        with self.lock:
            self.latencies.setdefault(operation, []).append(seconds)
            self.window.append(seconds)

    def error(self, operation, what):
        with self.lock:
            self.errors.append((operation, what))

    def take_window(self):
        with self.lock:
            window, self.window = self.window, []
            return window

    def count(self):
        with self.lock:
            return sum(len(v) for v in self.latencies.values()) + len(self.errors)


def brief(body):
    """An answer in one short line: an exception report's code, locator and text."""
    text = body.decode("utf-8", "replace")
    if "<ExceptionReport" in text and "<Exception " in text:
        exception = text[text.index("<Exception "):]
        return " ".join(exception.split())[:300]
    return repr(body[:200])


def percentile(values, fraction):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Client:
    """One load-generating thread: a kept-alive connection per instance."""

    def __init__(self, addrs, results, token, backend, deadline, seed):
        self.addrs = addrs
        self.results = results
        self.token = token
        self.backend = backend
        self.deadline = deadline
        self.random = random.Random(seed)
        self.connections = {}
        self.turn = seed

    def next_addr(self):
        self.turn += 1
        return self.addrs[self.turn % len(self.addrs)]

    def send(self, addr, method, target, body=None, headers=None):
        """(status, body) on a kept-alive connection; one reconnect when the server closed
        an idle one (that is HTTP, not an error)."""
        for attempt in (1, 2):
            conn = self.connections.get(addr)
            if conn is None:
                host, port = addr.split(":")
                conn = self.connections[addr] = http.client.HTTPConnection(host, int(port),
                                                                           timeout=30)
            try:
                conn.request(method, target, body=body, headers=headers or {})
                response = conn.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()
                del self.connections[addr]
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def rpc(self, addr, method, *params):
        body = xmlrpc.client.dumps(params, method).encode()
        status, answer = self.send(addr, "POST", "/RPC2", body, {"Content-Type": "text/xml"})
        if status != 200:
            raise RuntimeError(f"/RPC2 {method} answered {status}")
        return xmlrpc.client.loads(answer)[0][0]

    def timed(self, operation, action):
        started = time.monotonic()
        try:
            problem = action()
        except Exception as e:  # every failure is a result, not a crash of the thread
            problem = f"{type(e).__name__}: {e}"
        elapsed = time.monotonic() - started
        if problem:
            self.results.error(operation, problem)
            return False
        self.results.ok(operation, elapsed)
        return True

    def caps(self, name="emu"):
        addr = self.next_addr()

        def action():
            status, body = self.send(addr, "GET",
                                     f"/ows/proxy/{name}?service=WPS&request=GetCapabilities")
            if status != 200:
                return f"GetCapabilities {name} on {addr}: {status} {brief(body)}"
            if f"http://{addr}/ows/proxy/{name}".encode() not in body:
                return f"GetCapabilities {name} on {addr}: not rewritten to the proxy"
            return None
        return self.timed("caps", action)

    def execute(self, token, expect, operation):
        addr = self.next_addr()
        target = ("/ows/proxy/emu?service=WPS&request=Execute&version=1.0.0&identifier=hello"
                  f"&DataInputs=name=soak&access_token={token}")

        def action():
            status, body = self.send(addr, "GET", target)
            if status != expect:
                return f"Execute on {addr}: {status}, expected {expect}: {brief(body)}"
            return None
        return self.timed(operation, action)

    def lifecycle(self):
        box = {}
        addr = self.next_addr()

        def generate():
            answer = self.rpc(addr, "generate_token", 1)
            box["token"] = answer["access_token"]
            return None if len(box["token"]) == 32 else f"odd token {answer!r}"
        if not self.timed("generate_token", generate):
            return
        if not self.execute(box["token"], 200, "execute_new"):
            return
        addr = self.next_addr()

        def revoke():
            answer = self.rpc(addr, "revoke_token", box["token"])
            return None if answer is True else f"revoke_token answered {answer!r}"
        if not self.timed("revoke_token", revoke):
            return
        # The next instance must refuse it at once (on PostgreSQL: the other process).
        self.execute(box["token"], 401, "execute_revoked")

    def register(self):
        name = f"soak{self.random.randrange(20)}"
        addr = self.next_addr()

        def action():
            answer = self.rpc(addr, "register_service", name, f"http://{self.backend}/wps",
                              {"type": "wps"})
            return None if answer.get("name") == name else f"register answered {answer!r}"
        if self.timed("register_service", action):
            self.caps(name)

    def run(self):
        operations = [name for name, weight in WEIGHTS for _ in range(weight)]
        while time.monotonic() < self.deadline:
            choice = self.random.choice(operations)
            if choice == "caps":
                self.caps()
            elif choice == "execute":
                self.execute(self.token, 200, "execute")
            elif choice == "lifecycle":
                self.lifecycle()
            else:
                self.register()
        for conn in self.connections.values():
            conn.close()


def process_stats(pid):
    """(RSS in MiB, open files) of a process."""
    rss_kib = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
    return rss_kib / 1024, len(os.listdir(f"/proc/{pid}/fd"))


def stats_line(instances):
    parts = []
    for name, proc in instances:
        rss, fds = process_stats(proc.pid)
        parts.append(f"{name}: RSS {rss:.1f} MiB, {fds} open files")
    return "; ".join(parts)


def create_database(admin_url):
    name = f"soak_{uuid.uuid4().hex[:12]}"
    subprocess.run(["psql", admin_url, "-qc", f"CREATE DATABASE {name}"], check=True)
    parts = urllib.parse.urlsplit(admin_url)
    return parts._replace(path=f"/{name}").geturl()


def soak(store, minutes, clients, work, procs, backend):
    binary = os.environ["TWITCHER_BIN"]
    if store == "sqlite":
        db, count = f"sqlite:///{work}/soak.sqlite", 1
    else:
        db, count = create_database(os.environ["TWITCHER_TEST_POSTGRES"]), 2
    instances, addrs = [], []
    for i in range(count):
        name = f"{store}-{i + 1}"
        addr = f"{stack.LOOPBACK}:{stack.free_port()}"
        ini = work / f"{name}.ini"
        ini.write_text(INI.format(db=db, addr=addr))
        proc = procs.start(name, [binary, "serve", str(ini)])
        stack.wait_http(proc, f"http://{addr}/health", name, procs)
        instances.append((name, proc))
        addrs.append(addr)
    rpc = xmlrpc.client.ServerProxy(f"http://{addrs[0]}/RPC2")
    rpc.register_service("emu", f"http://{backend}/wps", {"type": "wps"})
    token = rpc.generate_token(24)["access_token"]

    say(f"\n== {store}: {count} instance(s), {clients} clients, {minutes:g} min "
        f"({'alternating between instances' if count > 1 else 'one instance'})")
    say(f"idle before load:  {stats_line(instances)}")
    results = Results()
    started = time.monotonic()
    deadline = started + minutes * 60
    threads = [threading.Thread(target=Client(addrs, results, token, backend, deadline,
                                              seed=i).run, daemon=True)
               for i in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(min(10, minutes * 6))
    start_stats = stats_line(instances)
    say(f"after warm-up:     {start_stats}")
    results.take_window()
    interval = max(10.0, minutes * 6)
    last_line = time.monotonic()
    end_stats = None
    while any(t.is_alive() for t in threads):
        time.sleep(0.5)
        now = time.monotonic()
        if end_stats is None and now >= deadline - 2:
            # Still under load, like the warm-up sample it is compared with.
            end_stats = stats_line(instances)
        if now - last_line >= interval:
            window = results.take_window()
            say(f"  {(now - started) / 60:5.1f} min: {len(window) / (now - last_line):7.0f} "
                f"req/s, p99 {percentile(window, 0.99) * 1000:6.1f} ms, "
                f"errors {len(results.errors)}; {stats_line(instances)}")
            last_line = now
    elapsed = time.monotonic() - started
    end_stats = end_stats or stats_line(instances)
    for name, proc in instances:
        if proc.poll() is not None:
            results.error("process", f"{name} exited with {proc.returncode}")

    total = results.count()
    say(f"end of load:       {end_stats}")
    time.sleep(1)
    say(f"idle after load:   {stats_line(instances)}")
    say(f"{total} requests in {elapsed:.0f} s ({total / elapsed:.0f} req/s), "
        f"errors: {len(results.errors)}")
    say("| operation | requests | p50 ms | p99 ms | max ms |")
    say("|---|---:|---:|---:|---:|")
    everything = []
    for operation in ("caps", "execute", "generate_token", "execute_new", "revoke_token",
                      "execute_revoked", "register_service"):
        values = results.latencies.get(operation, [])
        everything.extend(values)
        if values:
            say(f"| {operation} | {len(values)} | {statistics.median(values) * 1000:.2f} | "
                f"{percentile(values, 0.99) * 1000:.2f} | {max(values) * 1000:.2f} |")
    say(f"| all | {len(everything)} | {statistics.median(everything) * 1000:.2f} | "
        f"{percentile(everything, 0.99) * 1000:.2f} | {max(everything) * 1000:.2f} |")
    for operation, what in results.errors[:10]:
        say(f"  ERROR {operation}: {what}")
    for _, proc in instances:
        procs.stop(proc)
    return len(results.errors)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="per store (default 10)")
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    args = parser.parse_args()
    if not 0 < args.minutes <= 240:
        parser.error("--minutes must be in (0, 240]")
    stores = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    with tempfile.TemporaryDirectory(prefix="twitcher-soak-") as tmp:
        work = Path(tmp)
        # nginx's workers run as an unprivileged user: they must reach the static answers.
        work.chmod(0o755)
        procs = stack.Processes(work)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
        try:
            backend = f"{stack.LOOPBACK}:{stack.free_port()}"
            stack.write_data(work / "www", f"http://{backend}/wps")
            conf = stack.nginx_config(work, "backend", 1, stack.BACKEND.format(
                addr=backend, www=work / "www"))
            nginx = procs.start("backend", ["nginx", "-c", str(conf), "-p", str(work)])
            stack.wait_http(nginx, f"http://{backend}/nginx_status", "backend", procs)
            say(f"twitcher {os.environ['TWITCHER_BIN']}; backend nginx on {backend}")
            errors = sum(soak(store, args.minutes, args.clients, work, procs, backend)
                         for store in stores)
        finally:
            procs.stop_all()
    say(f"\nsoak {'passed' if errors == 0 else 'FAILED'}: {errors} errors")
    sys.exit(0 if errors == 0 else 1)


if __name__ == "__main__":
    main()
