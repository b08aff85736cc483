"""Python's own `xmlrpc.client` against twitcher's /RPC2 (SPEC §6, golden cases 01–29 and
87–88): every method, the struct member order Python scripts see, faults instead of HTTP 500s,
and basic auth."""

from __future__ import annotations

import math
import time
import xmlrpc.client

import pytest
import requests

from interop import SERVICE_KEYS, TOKEN_RE

EMU_URL = "http://127.0.0.1:15056/wps"  # the recordings' URL; never contacted here


def service(name, url=EMU_URL, type="WPS", purl="", public=False, auth="token", verify=True):
    return {"url": url, "name": name, "type": type, "purl": purl, "public": public,
            "auth": auth, "verify": verify}


def assert_service_struct(value, expected):
    assert value == expected
    assert list(value.keys()) == SERVICE_KEYS, "struct members out of the original's order"


# --- tokens -----------------------------------------------------------------------------------

@pytest.mark.parametrize("args, hours", [((), 1), ((24,), 24), ((1.5,), 1.5), ((0,), 0)],
                         ids=["default", "24", "1.5", "0"])
def test_generate_token(rpc, args, hours):
    before = time.time()
    result = rpc.generate_token(*args)
    after = time.time()
    assert list(result.keys()) == ["access_token", "expires_at"]
    assert TOKEN_RE.match(result["access_token"]), result
    assert type(result["expires_at"]) is int
    # int(now + hours * 3600), now taken while the call ran
    assert math.floor(before + hours * 3600) <= result["expires_at"] <= math.floor(after + hours * 3600)


def test_generate_token_gives_a_new_token_each_time(rpc):
    tokens = {rpc.generate_token()["access_token"] for _ in range(5)}
    assert len(tokens) == 5


def test_revoke_token(rpc):
    token = rpc.generate_token()["access_token"]
    assert rpc.revoke_token(token) is True
    assert rpc.revoke_token(token) is False
    assert rpc.revoke_token("doesnotexist") is False
    assert rpc.revoke_token("") is False


def test_revoke_all_tokens(rpc):
    tokens = [rpc.generate_token()["access_token"] for _ in range(3)]
    assert rpc.revoke_all_tokens() is True
    assert [rpc.revoke_token(t) for t in tokens] == [False, False, False]
    assert rpc.revoke_all_tokens() is True  # also with nothing left


# --- register_service -------------------------------------------------------------------------

def test_register_service_with_empty_data(rpc):
    result = rpc.register_service("emu", EMU_URL, {})
    assert_service_struct(result, service("emu"))  # case 07: type defaults to 'WPS'
    assert_service_struct(rpc.get_service_by_name("emu"), service("emu"))


def test_register_service_with_two_args(rpc):
    result = rpc.register_service("emu_two", EMU_URL)
    assert_service_struct(result, service("emu_two"))  # case 09
    assert rpc.list_services() == [service("emu_two")]


@pytest.mark.parametrize("data, expected", [
    # case 08: the data twitcherctl sends, verify as the string 'true'
    ({"type": "wps", "purl": "", "public": False, "auth": "token", "verify": "true"},
     dict(type="wps")),
    ({"type": "wps", "purl": "https://example.org/emu", "public": True, "auth": "cert",
      "verify": "false"},
     dict(type="wps", purl="https://example.org/emu", public=True, auth="cert", verify=False)),
    ({"type": "WMS", "public": "true", "verify": "no"}, dict(type="WMS", public=True, verify=False)),
    ({"public": "yes", "verify": "0"}, dict(public=True, verify=False)),
    ({"verify": False, "public": 1}, dict(verify=False, public=True)),
    ({"type": "", "auth": ""}, dict()),  # empty type/auth fall back to the defaults
    ({"name": "other", "url": "http://other/wps", "unknown": "ignored"}, dict()),
], ids=["case08-verify-string", "all-fields", "wms-strings", "asbool-words", "native-bool-int",
        "empty-defaults", "name-url-keys-ignored"])
def test_register_service_data(rpc, data, expected):
    result = rpc.register_service("emu", EMU_URL, data)
    assert_service_struct(result, service("emu", **expected))
    assert_service_struct(rpc.get_service_by_name("emu"), service("emu", **expected))


@pytest.mark.parametrize("given, stored", [
    ("My Emu-1", "my_emu_1"),
    ("  padded  ", "padded"),
    ("1abc", "_1abc"),
    ("a.b/c d", "a_b_c_d"),
    ("Vögel Dienst", "vögel_dienst"),
    ("x" * 30, "x" * 25),
    ("EMU", "emu"),
])
def test_register_service_sanitizes_the_name(rpc, given, stored):
    result = rpc.register_service(given, EMU_URL, {})
    assert_service_struct(result, service(stored))
    assert_service_struct(rpc.get_service_by_name(stored), service(stored))
    assert [s["name"] for s in rpc.list_services()] == [stored]


def test_register_service_same_name_updates_in_place(rpc):
    rpc.register_service("first", "http://h/first", {})
    first = rpc.register_service("dup", EMU_URL, {"type": "wps", "public": False})
    assert_service_struct(first, service("dup", type="wps"))
    rpc.register_service("last", "http://h/last", {})
    # case 14: the second registration replaces every field (type back to the default)
    second = rpc.register_service("dup", "http://127.0.0.1:15056/other",
                                  {"public": True, "purl": "http://p/wps"})
    expected = service("dup", url="http://127.0.0.1:15056/other", purl="http://p/wps", public=True)
    assert_service_struct(second, expected)
    assert_service_struct(rpc.get_service_by_name("dup"), expected)
    listed = rpc.list_services()
    assert [s["name"] for s in listed] == ["first", "dup", "last"]
    assert listed[1] == expected


@pytest.mark.parametrize("url", ["ftp://example.org/wps", "not a url", "http://", "/relative/wps"])
def test_register_service_refuses_bad_urls_with_an_empty_struct(rpc, url):
    assert rpc.register_service("badurl", url, {}) == {}  # case 12
    assert rpc.get_service_by_name("badurl") == {}
    assert rpc.list_services() == []


def test_register_service_answers_the_url_as_given_but_stores_scheme_host_path(rpc):
    result = rpc.register_service("qs", "http://h:8080/wps?service=WPS#frag", {})
    assert result["url"] == "http://h:8080/wps?service=WPS#frag"
    assert rpc.get_service_by_name("qs")["url"] == "http://h:8080/wps"
    assert rpc.get_service_by_url("http://h:8080/wps")["name"] == "qs"


# --- lookups, listing, removal ----------------------------------------------------------------

def test_get_service_by_name(rpc):
    rpc.register_service("emu", EMU_URL, {"type": "wps"})
    assert_service_struct(rpc.get_service_by_name("emu"), service("emu", type="wps"))  # case 15
    assert rpc.get_service_by_name("nosuch") == {}  # case 16
    assert rpc.get_service_by_name("EMU") == {}  # names are stored sanitized; lookup is exact


def test_get_service_by_url(rpc):
    rpc.register_service("emu", EMU_URL, {})
    rpc.register_service("emu_two", EMU_URL, {"type": "wps"})
    # exact match on the stored URL, the first registered wins
    assert_service_struct(rpc.get_service_by_url(EMU_URL), service("emu"))
    assert rpc.get_service_by_url("http://nowhere/wps") == {}  # case 18
    assert rpc.get_service_by_url(EMU_URL + "/") == {}


def test_list_services_in_insertion_order_with_ordered_members(rpc):
    assert rpc.list_services() == []
    names = ["zeta", "alpha", "mid"]
    for i, name in enumerate(names):
        rpc.register_service(name, f"http://h/{i}", {"public": i % 2 == 1})
    listed = rpc.list_services()
    assert [s["name"] for s in listed] == names
    for i, entry in enumerate(listed):
        assert_service_struct(entry, service(names[i], url=f"http://h/{i}", public=i % 2 == 1))


def test_unregister_service(rpc):
    rpc.register_service("emu", EMU_URL, {})
    rpc.register_service("keep", EMU_URL, {})
    assert rpc.unregister_service("emu") is True  # case 20
    assert rpc.unregister_service("emu") is False
    assert rpc.unregister_service("nosuch") is False  # case 21
    assert rpc.get_service_by_name("emu") == {}
    assert [s["name"] for s in rpc.list_services()] == ["keep"]


def test_clear_services(rpc):
    for name in ("one", "two", "three"):
        rpc.register_service(name, EMU_URL, {})
    token = rpc.generate_token()["access_token"]
    assert rpc.clear_services() is True  # case 22
    assert rpc.list_services() == []
    assert rpc.clear_services() is True
    assert rpc.revoke_token(token) is True  # tokens are not services


def test_state_survives_a_restart(twitcher):
    """The registry and the tokens live in the SQLite file named by sqlalchemy.url."""
    server = twitcher()
    rpc = server.rpc()
    rpc.register_service("emu", EMU_URL, {"public": True})
    token = rpc.generate_token()["access_token"]
    rpc = twitcher.restart(server).rpc()
    assert_service_struct(rpc.get_service_by_name("emu"), service("emu", public=True))
    assert rpc.revoke_token(token) is True


# --- faults -----------------------------------------------------------------------------------

def fault_of(call, *args) -> xmlrpc.client.Fault:
    with pytest.raises(xmlrpc.client.Fault) as info:
        call(*args)
    return info.value


@pytest.mark.parametrize("method", ["nosuch_method", "system.listMethods"])
def test_unknown_method_is_fault_32601(rpc, method):
    assert fault_of(getattr(rpc, method)).faultCode == -32601


@pytest.mark.parametrize("method, args", [
    ("revoke_token", ("a", "b")),
    ("register_service", ("a",)),
    ("register_service", ()),
    ("register_service", ("ab", "http://h/w", {}, "extra")),
    ("list_services", (1,)),
    ("generate_token", (1, 2)),
    ("unregister_service", ()),
    ("clear_services", (True,)),
], ids=lambda v: repr(v) if isinstance(v, tuple) else v)
def test_wrong_argument_count_is_fault_32602(rpc, method, args):
    assert fault_of(getattr(rpc, method), *args).faultCode == -32602


@pytest.mark.parametrize("method, args", [
    ("generate_token", ("abc",)),
    ("revoke_token", (1,)),
    ("register_service", ("ab", 5)),
    ("register_service", (["a", "b"], "http://h/w")),
    ("register_service", ("ab", "http://h/w", "not a struct")),
    ("get_service_by_name", (None,)),
], ids=lambda v: repr(v) if isinstance(v, tuple) else v)
def test_wrong_argument_type_is_fault_32602(server, method, args):
    rpc = server.rpc(allow_none=True)
    assert fault_of(getattr(rpc, method), *args).faultCode == -32602
    assert rpc.list_services() == []


@pytest.mark.parametrize("name", ["x", "  y  ", "", "   "])
def test_too_short_name_is_fault_32500(rpc, name):
    fault = fault_of(rpc.register_service, name, EMU_URL, {})  # case 11
    assert fault.faultCode == -32500
    assert fault.faultString == "name must have at least 2 chars."
    assert rpc.list_services() == []


def test_generate_token_out_of_range_is_a_fault(rpc):
    # now + 10**6 h does not fit XML-RPC's 32-bit <int>: a fault, not an unreadable answer
    fault = fault_of(rpc.generate_token, 10**6)
    assert fault.faultCode == -32602
    tokens_left = rpc.revoke_all_tokens()
    assert tokens_left is True


@pytest.mark.parametrize("body, codes", [
    (b"<methodCall><methodName>list_services</methodName>", {-32700}),
    (b"", {-32700}),
    (b"not xml at all", {-32700}),
    # well-formed, but not a call (the original said "requested method not found")
    (b"<?xml version='1.0'?><methodResponse><params><param><value><string>x</string>"
     b"</value></param></params></methodResponse>", {-32700, -32601}),
], ids=["unclosed", "empty", "not-xml", "methodResponse"])
def test_malformed_calls_are_faults_python_can_read(server, body, codes):
    response = requests.post(server.rpc_url, data=body, headers={"Content-Type": "text/xml"})
    assert response.status_code == 200
    with pytest.raises(xmlrpc.client.Fault) as info:
        xmlrpc.client.loads(response.content)
    assert info.value.faultCode in codes


# --- basic auth -------------------------------------------------------------------------------

@pytest.fixture
def auth_server(twitcher):
    return twitcher(username="admin", password="s3cret")


def test_basic_auth_right_credentials(auth_server):
    rpc = auth_server.rpc("admin", "s3cret")
    assert rpc.list_services() == []
    assert_service_struct(rpc.register_service("emu", EMU_URL, {}), service("emu"))
    assert TOKEN_RE.match(rpc.generate_token()["access_token"])
    assert [s["name"] for s in rpc.list_services()] == ["emu"]


@pytest.mark.parametrize("credentials", [None, ("admin", "wrong"), ("nouser", "nopass"),
                                         ("Admin", "s3cret"), ("admin", "")],
                         ids=["none", "wrong-password", "twitcherctl-default", "user-case",
                              "empty-password"])
@pytest.mark.parametrize("method", ["list_services", "generate_token"])
def test_basic_auth_refuses_other_credentials(auth_server, credentials, method):
    rpc = auth_server.rpc(*credentials) if credentials else auth_server.rpc()
    with pytest.raises(xmlrpc.client.ProtocolError) as info:
        getattr(rpc, method)()
    assert info.value.errcode == 401
    headers = {k.lower(): v for k, v in info.value.headers.items()}
    assert headers.get("www-authenticate", "").lower().startswith("basic ")
    # nothing happened behind the refusal
    assert auth_server.rpc("admin", "s3cret").revoke_all_tokens() is True
    assert auth_server.rpc("admin", "s3cret").list_services() == []


def test_bearer_header_does_not_pass_basic_auth(auth_server):
    body = xmlrpc.client.dumps((), "list_services")
    response = requests.post(auth_server.rpc_url, data=body,
                             headers={"Authorization": "Bearer xyz", "Content-Type": "text/xml"})
    assert response.status_code == 401


def test_without_username_no_credentials_are_needed(server):
    assert server.rpc().list_services() == []
    # any credentials are accepted too: the original twitcherctl always sends nouser:nopass
    assert server.rpc("nouser", "nopass").register_service("emu", EMU_URL, {})["name"] == "emu"
    assert [s["name"] for s in server.rpc("admin", "whatever").list_services()] == ["emu"]


def test_listen_key_in_server_section(twitcher):
    """`[server:main] listen = HOST:PORT` (waitress style) works like host + port."""
    server = twitcher(listen_style="listen")
    assert server.rpc().list_services() == []
