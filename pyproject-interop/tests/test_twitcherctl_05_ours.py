"""Our own twitcherctl (the Rust CLI) run with the 0.5 command lines recorded from the original
twitcherctl 0.5.5 against the original server (golden cases `v056/transcripts/30-…` to
`38-…`), against our twitcher.

Each result must equal the recorded one (dynamic values masked), member order included. Where
the original logged `INFO:Result: <repr>` on stderr and exited 1 (0 for False), ours prints the
same repr on stdout and exits 0, with nothing on stderr (D-CTL-OUTPUT); usage errors exit 2
(D-CTL-SYNTAX); errors are one line on stderr with exit status 1 (D-CTL-ERRORS). Without
credentials the registry commands go over XML-RPC, as 0.5 did, so structs keep XML-RPC's member
order; with -u/-p they use REST and its order (D-CTL-TRANSPORT). The server's state is checked
afterwards through xmlrpc.client.
"""

from __future__ import annotations

import re
import time

import pytest

from interop import (SERVICE_KEYS, TOKEN_RE, CliRun, Twitcher, python_literal, recorded_run,
                     result_of, run_cli)

EMU_URL = "http://127.0.0.1:15056/wps"  # the URL the recordings registered; never contacted
REST_KEYS = ["url", "name", "type", "purl", "auth", "public", "verify"]
OPTIONS = ["register", "--name", "emu_opts", "--type", "wps", "--purl", "https://example.org/emu",
           "--public", "--auth", "cert", "--verify", "false", EMU_URL]


@pytest.fixture
def ctl(twitcherctl_bin):
    """`ctl(server, *args)` runs our `twitcherctl -s URL args`."""

    def run(server: Twitcher, *args: str) -> CliRun:
        return run_cli([twitcherctl_bin, "-s", server.url, *args])

    return run


def printed(run: CliRun):
    """The result our twitcherctl printed: exit status 0, nothing on stderr, one Python
    literal on stdout (D-CTL-OUTPUT)."""
    assert (run.exit_status, run.stderr) == (0, ""), str(run)
    return python_literal(run.stdout)


def mask(value, random_names: frozenset[str] = frozenset()):
    if isinstance(value, list):
        return [mask(v, random_names) for v in value]
    if isinstance(value, dict):
        masked = {}
        for key, v in value.items():
            if key == "access_token":
                assert TOKEN_RE.match(v), v
                v = "<token>"
            elif key == "expires_at":
                assert type(v) is int, v
                v = "<expires_at>"
            elif key == "name" and v in random_names:
                v = "<random name>"
            masked[key] = v
        return masked
    return value


def recorded_random_name() -> str:
    """The name the original made up in the recordings (`amazing_snowfinch`)."""
    return result_of(recorded_run("33-ctl-register-options", ["register", EMU_URL]).stderr)["name"]


def assert_like_recording(run: CliRun, case: str, *, random_names: frozenset[str] = frozenset()):
    """Our printed result equals the recorded `INFO:Result:` (masked, as printed, so member
    order counts); the original's exit status was 1 for a result, 0 for False."""
    args = run.argv[3:]
    recorded = recorded_run(case, args)
    expected = result_of(recorded.stderr)
    ours = printed(run)
    recorded_names = frozenset({recorded_random_name()}) if random_names else frozenset()
    assert repr(mask(ours, random_names)) == repr(mask(expected, recorded_names))
    assert recorded.exit_status == (0 if expected is False else 1)
    assert recorded.stdout == ""
    return ours


def assert_expires(result, hours: int, before: float, after: float) -> None:
    assert int(before) + hours * 3600 <= result["expires_at"] <= int(after) + hours * 3600 + 1


# --- tokens (XML-RPC) -------------------------------------------------------------------------

@pytest.mark.parametrize("case, args, hours", [
    ("30-ctl-gentoken", [], 1),
    ("31-ctl-gentoken-H24", ["-H", "24"], 24),
])
def test_gentoken(server, ctl, case, args, hours):
    before = time.time()
    run = ctl(server, "gentoken", *args)
    after = time.time()
    result = assert_like_recording(run, case)
    assert list(result) == ["access_token", "expires_at"]
    assert_expires(result, hours, before, after)
    assert server.rpc().revoke_token(result["access_token"]) is True  # it was stored


def test_revoke(server, ctl):
    token = server.rpc().generate_token()["access_token"]
    run = ctl(server, "revoke", token)
    recorded = recorded_run("35-ctl-revoke", ["revoke", "f9b76083b46b467d824cd9c7284e9e7f"])
    assert printed(run) is True and result_of(recorded.stderr) is True
    assert run.stdout == "True\n"
    assert server.rpc().revoke_token(token) is False  # gone

    run = ctl(server, "revoke", "doesnotexist")
    assert_like_recording(run, "35-ctl-revoke")
    assert run.stdout == "False\n"


def test_revoke_all(server, ctl):
    rpc = server.rpc()
    tokens = [rpc.generate_token()["access_token"] for _ in range(2)]
    run = ctl(server, "revoke", "-A")
    assert assert_like_recording(run, "36-ctl-revoke-all") is True
    assert [rpc.revoke_token(t) for t in tokens] == [False, False]


def test_revoke_without_token_is_a_usage_error(server, ctl):
    """The original failed in its XML-RPC library (case 36, exit 0); ours refuses the command
    line (D-CTL-SYNTAX) and sends nothing."""
    token = server.rpc().generate_token()["access_token"]
    run = ctl(server, "revoke")
    assert run.exit_status == 2 and run.stdout == "", str(run)
    assert "usage:" in run.stderr.lower()
    assert server.rpc().revoke_token(token) is True  # nothing revoked


# --- registry (XML-RPC) -----------------------------------------------------------------------

def test_register(server, ctl):
    run = ctl(server, "register", "--name", "emu", EMU_URL)
    result = assert_like_recording(run, "32-ctl-register")
    assert list(result) == SERVICE_KEYS
    assert server.rpc().list_services() == [result]


def test_register_with_options(server, ctl):
    result = assert_like_recording(ctl(server, *OPTIONS), "33-ctl-register-options")
    assert result == {"url": EMU_URL, "name": "emu_opts", "type": "wps",
                      "purl": "https://example.org/emu", "public": True, "auth": "cert",
                      "verify": False}
    assert server.rpc().get_service_by_name("emu_opts") == result


def test_register_without_name(server, ctl):
    run = ctl(server, "register", EMU_URL)
    name = printed(run)["name"]
    assert re.fullmatch(r"[a-z]+_[a-z]+", name), name  # adjective_bird (D-CTL-NAMES)
    result = assert_like_recording(run, "33-ctl-register-options", random_names=frozenset({name}))
    assert server.rpc().get_service_by_name(name) == result


def test_list(server, ctl):
    # the recording's state: a hand-registered service (case 29), then cases 32 and 33
    server.rpc().register_service("untyped", "http://h/w")
    printed(ctl(server, "register", "--name", "emu", EMU_URL))
    printed(ctl(server, *OPTIONS))
    name = printed(ctl(server, "register", EMU_URL))["name"]
    run = ctl(server, "list")
    result = assert_like_recording(run, "34-ctl-list", random_names=frozenset({name}))
    assert result == server.rpc().list_services()
    assert all(list(entry) == SERVICE_KEYS for entry in result)


def test_unregister(server, ctl):
    server.rpc().register_service("emu", EMU_URL, {"type": "wps"})
    server.rpc().register_service("keep", EMU_URL, {"type": "wps"})
    assert assert_like_recording(ctl(server, "unregister", "emu"), "37-ctl-unregister") is True
    assert [s["name"] for s in server.rpc().list_services()] == ["keep"]
    assert assert_like_recording(ctl(server, "unregister", "nosuch"), "37-ctl-unregister") is False
    assert [s["name"] for s in server.rpc().list_services()] == ["keep"]


def test_clear_then_list(server, ctl):
    for name in ("emu", "emu_two"):
        server.rpc().register_service(name, EMU_URL, {"type": "wps"})
    assert assert_like_recording(ctl(server, "clear"), "38-ctl-clear") is True
    assert server.rpc().list_services() == []
    assert assert_like_recording(ctl(server, "list"), "38-ctl-clear") == []


# --- with twitcher.username set ---------------------------------------------------------------

@pytest.fixture
def auth_server(twitcher):
    return twitcher(username="admin", password="s3cret")


def test_with_credentials(auth_server, ctl):
    """`-u/-p` before the 0.5 command: registry over REST (its member order,
    D-CTL-TRANSPORT), tokens over XML-RPC with basic auth."""
    creds = ["-u", "admin", "-p", "s3cret"]
    result = printed(ctl(auth_server, *creds, "register", "--name", "emu", EMU_URL))
    expected = result_of(recorded_run("32-ctl-register", ["register", "--name", "emu",
                                                          EMU_URL]).stderr)
    assert result == expected and list(result) == REST_KEYS
    listed = printed(ctl(auth_server, *creds, "list"))
    assert listed == auth_server.admin_rpc().list_services() == [expected]
    token = printed(ctl(auth_server, *creds, "gentoken"))["access_token"]
    assert auth_server.admin_rpc().revoke_token(token) is True
    assert printed(ctl(auth_server, *creds, "unregister", "emu")) is True
    assert auth_server.admin_rpc().list_services() == []


def test_without_credentials_on_a_protected_server(auth_server, ctl):
    """No `nouser:nopass` (D-CTL-PROMPTS): a write without credentials is refused, one line
    on stderr, exit status 1 (D-CTL-ERRORS); reading the registry stays open (SPEC §7)."""
    run = ctl(auth_server, "register", "--name", "emu", EMU_URL)
    assert run.exit_status == 1 and run.stdout == "", str(run)
    assert len(run.stderr.splitlines()) == 1
    assert run.stderr.startswith("twitcherctl: could not register the service: ")
    assert auth_server.admin_rpc().list_services() == []
    assert printed(ctl(auth_server, "list")) == []
    run = ctl(auth_server, "-u", "admin", "-p", "wrong", "clear")
    assert run.exit_status == 1 and len(run.stderr.splitlines()) == 1, str(run)
