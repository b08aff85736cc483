"""End to end: the real Emu WPS registered through XML-RPC and used through twitcher's OWS
proxy, with plain HTTP (requests) and with OWSLib (SPEC §3–§5, golden cases 41–57)."""

from __future__ import annotations

import time

import owslib.util
import pytest
import requests
from owslib.wps import SYNC, WebProcessingService

from interop import (EXECUTE_HELLO_XML, NS, XLINK_HREF, c14n, literal_outputs, operations_hrefs,
                     ows_exception_report, parse_xml)

GETCAPS = "service=WPS&request=GetCapabilities"
DESCRIBE = "service=WPS&request=DescribeProcess&version=1.0.0&identifier=hello"
EXECUTE = "service=WPS&request=Execute&version=1.0.0&identifier=hello&DataInputs=name=tux"

TOKEN_REQUIRED = ows_exception_report(
    "NoApplicableCode", "AccessForbidden", "Access token is required to access this service.")
TOKEN_EXPIRED = ows_exception_report("NoApplicableCode", "AccessForbidden", "Access token is expired.")
OWS_ERROR_TYPE = "text/xml; charset=UTF-8"
PURL = "https://example.org/ows/emu"


@pytest.fixture(scope="module")
def proxy(module_twitcher, emu):
    """A twitcher with Emu registered as `emu` (token protected) and `emu_purl` (public URL set),
    both through XML-RPC as in the recordings (case 40)."""
    server = module_twitcher()
    rpc = server.rpc()
    registered = rpc.register_service(
        "emu", emu.url, {"type": "wps", "public": False, "auth": "token", "verify": "true"})
    assert registered == {"url": emu.url, "name": "emu", "type": "wps", "purl": "",
                          "public": False, "auth": "token", "verify": True}
    rpc.register_service("emu_purl", emu.url, {"type": "wps", "purl": PURL})
    return server


@pytest.fixture
def token(proxy):
    return proxy.rpc().generate_token()["access_token"]


def media_type(response: requests.Response) -> str:
    return response.headers.get("Content-Type", "").split(";")[0].strip()


def assert_token_required(response: requests.Response, body: bytes = TOKEN_REQUIRED) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["Content-Type"] == OWS_ERROR_TYPE
    assert response.content == body


def assert_hello_tux(response: requests.Response, proxy_url: str, emu_url: str) -> None:
    assert response.status_code == 200, response.text
    assert media_type(response) == "text/xml"
    doc = parse_xml(response.content)
    assert doc.tag == f"{{{NS['wps']}}}ExecuteResponse"
    assert doc.find("wps:Status/wps:ProcessSucceeded", NS) is not None
    assert literal_outputs(doc) == {"output": "Hello tux"}
    # D-REWRITE-ALL-XML: the backend URL does not leak, serviceInstance names the proxy
    assert doc.get("serviceInstance", "").startswith(proxy_url + "?")
    assert emu_url.encode() not in response.content


# --- GetCapabilities / DescribeProcess (public) -----------------------------------------------

@pytest.mark.parametrize("name, public_url", [("emu", None), ("emu_purl", PURL)])
def test_getcapabilities_through_the_proxy(proxy, emu, name, public_url):
    public_url = public_url or proxy.proxy_url(name)
    direct = requests.get(f"{emu.url}?{GETCAPS}")
    proxied = requests.get(f"{proxy.proxy_url(name)}?{GETCAPS}")
    assert direct.status_code == 200 and proxied.status_code == 200, proxied.text
    assert media_type(proxied) == media_type(direct) == "text/xml"

    expected = parse_xml(direct.content)
    got = parse_xml(proxied.content)
    hrefs = operations_hrefs(got)
    assert len(hrefs) == len(operations_hrefs(expected)) >= 3  # GetCapabilities, Describe, Execute
    assert {e.get(XLINK_HREF) for e in hrefs} == {public_url}
    # everything else is Emu's document unchanged
    for element in operations_hrefs(expected):
        element.set(XLINK_HREF, public_url)
    assert c14n(got) == c14n(expected)


def test_describeprocess_through_the_proxy(proxy, emu):
    direct = requests.get(f"{emu.url}?{DESCRIBE}")
    proxied = requests.get(f"{proxy.proxy_url('emu')}?{DESCRIBE}")
    assert proxied.status_code == 200, proxied.text
    assert media_type(proxied) == media_type(direct) == "text/xml"
    assert c14n(parse_xml(proxied.content)) == c14n(parse_xml(direct.content))
    assert parse_xml(proxied.content).findtext(".//ows:Identifier", namespaces=NS) == "hello"


# --- Execute (token protected) ----------------------------------------------------------------

def test_execute_without_token_is_refused(proxy):
    assert_token_required(requests.get(f"{proxy.proxy_url('emu')}?{EXECUTE}"))


def with_token(proxy, where: str, token: str) -> tuple[str, dict[str, str]]:
    """URL and headers of an Execute request carrying `token` in place `where`."""
    base = proxy.proxy_url("emu")
    if where == "access_token":
        return f"{base}?{EXECUTE}&access_token={token}", {}
    if where == "token":
        return f"{base}?{EXECUTE}&token={token}", {}
    if where == "Access-Token":
        return f"{base}?{EXECUTE}", {"Access-Token": token}
    if where == "Bearer":
        return f"{base}?{EXECUTE}", {"Authorization": f"Bearer {token}"}
    if where == "path":
        return f"{base}/{token}?{EXECUTE}", {}
    raise ValueError(where)


TOKEN_PLACES = ["access_token", "token", "Access-Token", "Bearer", "path"]


@pytest.mark.parametrize("where", TOKEN_PLACES)
def test_execute_with_token_then_revoked(proxy, emu, where):
    token = proxy.rpc().generate_token()["access_token"]
    url, headers = with_token(proxy, where, token)
    assert_hello_tux(requests.get(url, headers=headers), proxy.proxy_url("emu"), emu.url)

    assert proxy.rpc().revoke_token(token) is True
    assert_token_required(requests.get(url, headers=headers))


@pytest.mark.parametrize("where", ["access_token", "Access-Token"])
def test_execute_with_wrong_or_expired_token(proxy, where):
    url, headers = with_token(proxy, where, "0" * 32)
    assert_token_required(requests.get(url, headers=headers))

    expired = proxy.rpc().generate_token(0)["access_token"]
    url, headers = with_token(proxy, where, expired)
    assert_token_required(requests.get(url, headers=headers), TOKEN_EXPIRED)


def test_execute_tokens_from_revoke_all_tokens_are_gone(proxy):
    tokens = [proxy.rpc().generate_token()["access_token"] for _ in range(2)]
    assert proxy.rpc().revoke_all_tokens() is True
    for token in tokens:
        url, headers = with_token(proxy, "access_token", token)
        assert_token_required(requests.get(url, headers=headers))


def test_post_execute(proxy, emu, token):
    url = proxy.proxy_url("emu")
    xml = {"Content-Type": "text/xml"}
    assert_token_required(requests.post(url, data=EXECUTE_HELLO_XML, headers=xml))  # case 56
    assert_hello_tux(requests.post(url, data=EXECUTE_HELLO_XML, headers={**xml, "Access-Token": token}),
                     url, emu.url)
    assert_hello_tux(requests.post(f"{url}?access_token={token}", data=EXECUTE_HELLO_XML, headers=xml),
                     url, emu.url)


def test_unregistered_service_is_gone_from_the_proxy(twitcher, emu):
    server = twitcher()
    rpc = server.rpc()
    rpc.register_service("emu", emu.url, {"type": "wps"})
    assert requests.get(f"{server.proxy_url('emu')}?{GETCAPS}").status_code == 200
    assert rpc.unregister_service("emu") is True
    response = requests.get(f"{server.proxy_url('emu')}?{GETCAPS}")
    assert response.status_code == 404
    assert response.content == ows_exception_report("InvalidParameterValue", "service",
                                                    "Service not found")


def test_public_service_needs_no_token(twitcher, emu):
    server = twitcher()
    server.rpc().register_service("emu_public", emu.url, {"type": "wps", "public": True})
    response = requests.get(f"{server.proxy_url('emu_public')}?{EXECUTE}")
    assert_hello_tux(response, server.proxy_url("emu_public"), emu.url)


def test_basic_auth_guards_only_rpc2(twitcher, emu):
    """With twitcher.username set, /RPC2 needs the credentials but the OWS proxy does not
    (case 90): tokens stay the only key to Execute."""
    server = twitcher(username="admin", password="s3cret")
    rpc = server.rpc("admin", "s3cret")
    rpc.register_service("emu", emu.url, {"type": "wps"})
    token = rpc.generate_token()["access_token"]
    url = server.proxy_url("emu")
    assert requests.get(f"{url}?{GETCAPS}").status_code == 200
    assert_token_required(requests.get(f"{url}?{EXECUTE}"))
    assert_hello_tux(requests.get(f"{url}?{EXECUTE}", headers={"Access-Token": token}), url, emu.url)


# --- OWSLib -----------------------------------------------------------------------------------

def owslib_wps(url: str, **kwargs) -> WebProcessingService:
    return WebProcessingService(url, timeout=60, **kwargs)


def test_owslib_getcapabilities(proxy, token):
    proxy_url = proxy.proxy_url("emu")
    wps = owslib_wps(proxy_url, headers={"Access-Token": token})  # reads the capabilities
    assert wps.identification.title == "Emu"
    assert "hello" in [p.identifier for p in wps.processes]
    assert {op.name for op in wps.operations} >= {"GetCapabilities", "DescribeProcess", "Execute"}
    urls = {m["url"] for op in wps.operations for m in op.methods}
    assert urls == {proxy_url}

    again = owslib_wps(proxy_url, skip_caps=True)
    assert again.processes == []
    again.getcapabilities()
    assert [p.identifier for p in again.processes] == [p.identifier for p in wps.processes]


def test_owslib_describeprocess(proxy, token):
    wps = owslib_wps(proxy.proxy_url("emu"), headers={"Access-Token": token}, skip_caps=True)
    process = wps.describeprocess("hello")
    assert process.identifier == "hello"
    assert process.title == "Say Hello"
    assert [i.identifier for i in process.dataInputs] == ["name"]
    assert [o.identifier for o in process.processOutputs] == ["output"]


@pytest.mark.parametrize("where", ["Access-Token", "access_token"])
def test_owslib_execute_sync(proxy, token, where):
    if where == "Access-Token":
        wps = owslib_wps(proxy.proxy_url("emu"), headers={"Access-Token": token}, skip_caps=True)
    else:  # the token in the service URL, as users paste it
        wps = owslib_wps(f"{proxy.proxy_url('emu')}?access_token={token}", skip_caps=True)
    execution = wps.execute("hello", [("name", "tux")], mode=SYNC)
    assert execution.isSucceeded(), execution.errors
    assert [(o.identifier, o.data) for o in execution.processOutputs] == [("output", ["Hello tux"])]


def test_owslib_execute_default_mode(proxy, token):
    """OWSLib's default request (mode=ASYNC, status=true). Emu's hello does not store
    status, so the answer is final at once; poll in case a later Emu does."""
    wps = owslib_wps(proxy.proxy_url("emu"), headers={"Access-Token": token}, skip_caps=True)
    execution = wps.execute("hello", [("name", "tux")])
    deadline = time.monotonic() + 60
    while not execution.isComplete():
        assert time.monotonic() < deadline, f"still {execution.status} after 60 s"
        execution.checkStatus(sleepSecs=0.2)
    assert execution.isSucceeded(), execution.errors
    assert [(o.identifier, o.data) for o in execution.processOutputs] == [("output", ["Hello tux"])]


@pytest.mark.parametrize("headers", [None, {"Access-Token": "0" * 32}], ids=["no-token", "unknown"])
def test_owslib_execute_without_valid_token_is_refused(proxy, headers):
    wps = owslib_wps(proxy.proxy_url("emu"), headers=headers)  # capabilities are public
    assert "hello" in [p.identifier for p in wps.processes]
    with pytest.raises(owslib.util.ServiceException) as info:
        wps.execute("hello", [("name", "tux")], mode=SYNC)
    assert "Access token is required to access this service." in str(info.value)
