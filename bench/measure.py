"""Measuring: wrk runs and 1 GiB transfers, what they print parsed into numbers, and the
summary over rounds (median, min, max)."""

import re
import statistics
import subprocess
from dataclasses import dataclass, field

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@dataclass
class WrkRun:
    requests: int = 0
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    non2xx: int = 0
    socket_errors: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)  # found around the run (by the caller)


def latency_ms(text):
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * UNITS[unit]


def parse_wrk(out):
    run = WrkRun()
    run.requests = int(re.search(r"(\d+) requests in", out).group(1))
    run.rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    run.p50_ms = latency_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    run.p99_ms = latency_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    run.non2xx = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        run.socket_errors = {k: int(v) for k, v in zip(("connect", "read", "write", "timeout"),
                                                       m.groups()) if int(v)}
    return run


def wrk(url, connections, seconds, threads, cpus=None, headers=()):
    """One bounded wrk run (its own -d, and a hard stop a little later)."""
    argv = ["wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{seconds}s",
            # Long enough for the original's queue at 512 connections to show as latency
            # rather than as timeouts; still bounded.
            "--timeout", "10s", "--latency"]
    for h in headers:
        argv += ["-H", h]
    if cpus:
        argv = ["taskset", "-c", cpus, *argv]
    done = subprocess.run([*argv, url], capture_output=True, text=True, timeout=seconds + 30)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()[:300]}")
    return parse_wrk(done.stdout)


def curl_big(url, cpus=None, max_seconds=300):
    """Downloads url once to nowhere: (HTTP status, bytes received, MiB/s)."""
    argv = ["curl", "-sS", "-o", "/dev/null", "--max-time", str(max_seconds),
            "-w", "%{http_code} %{size_download} %{speed_download}", url]
    if cpus:
        argv = ["taskset", "-c", cpus, *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=max_seconds + 30)
    status, size, speed = (done.stdout.split() + ["0", "0", "0"])[:3]
    return int(status), int(size), float(speed) / (1 << 20)


@dataclass
class Summary:
    """One measured cell over its rounds."""
    median: float
    low: float
    high: float
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    problems: list = field(default_factory=list)
    rss_mib: float = 0.0  # 1 GiB rows: peak RSS of the proxy process


def summarize(runs, expect_2xx):
    """Median and range of req/s over rounds; p50/p99 as the medians of each round's.
    A run with socket errors, or non-2xx answers where 2xx was expected (or 2xx where a
    refusal was), gets its cell flagged."""
    problems = []
    for run in runs:
        problems += run.problems
        if expect_2xx and run.non2xx:
            problems.append(f"{run.non2xx} of {run.requests} answers not 2xx")
        if not expect_2xx and run.non2xx != run.requests:
            problems.append(f"{run.requests - run.non2xx} of {run.requests} answers were 2xx/3xx")
        if run.socket_errors:
            problems.append("socket errors " + ", ".join(f"{k} {v}" for k, v in
                                                        run.socket_errors.items()))
    rps = [r.rps for r in runs]
    return Summary(statistics.median(rps), min(rps), max(rps),
                   statistics.median(r.p50_ms for r in runs),
                   statistics.median(r.p99_ms for r in runs), problems)


def si(value):
    """12345 -> '12.3k'."""
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:.0f}"


def ms(value):
    return f"{value:.2f}" if value < 10 else f"{value:.0f}"
