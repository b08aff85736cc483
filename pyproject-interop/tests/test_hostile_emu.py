"""Hostile requests against the real Emu WPS: tokenless requests that try to make pywps run a
protected operation (Execute of `hello`) by exploiting a difference between twitcher's reading
of a request and pywps's own (pywps 4.6 parses every request itself).

Each case is sent three ways:
- through twitcher without a token: refused with the expected status and ExceptionReport, and
  Emu never ran an Execute;
- straight to Emu, bypassing twitcher (the control that the request is dangerous): pywps runs
  the Execute (or, for the few it cannot read, does not), so the observable can fail;
- through twitcher with a token, where the request is a readable Execute: it runs.

The observable is pywps's request log (`emu.executions()`): pywps writes a `pywps_requests` row
for every Execute it has parsed, before running it, into the database Emu is started with
(`--database sqlite:///…`). Emu's outputs directory is no observable: `hello` returns its
output inline and writes no file there."""

from __future__ import annotations

import gzip
import http.client
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from interop import EXECUTE_HELLO_XML, NS, literal_outputs, ows_exception_report, parse_xml

EXECUTE = "service=WPS&request=Execute&version=1.0.0&identifier=hello&DataInputs=name=tux"
TOKEN_REQUIRED = ows_exception_report(
    "NoApplicableCode", "AccessForbidden", "Access token is required to access this service.")
OWS_ERROR_TYPE = "text/xml; charset=UTF-8"
# The public service is one file of Emu's outputs directory: harmless by itself (Emu serves the
# file whatever the query says), but pywps answers on every other path of Emu's server, so a
# path that leaves the file reaches pywps.
PUBLIC_FILE = "public.xml"
PUBLIC_DOC = b'<?xml version="1.0" encoding="UTF-8"?>\n<public>nothing to run here</public>\n'
WPS_NS = NS["wps"]
XML_TYPE = {"Content-Type": "text/xml"}
FORM_TYPE = {"Content-Type": "application/x-www-form-urlencoded"}
BOM_UTF8 = b"\xef\xbb\xbf"
EXECUTE_NO_DECLARATION = EXECUTE_HELLO_XML.split(b"?>\n", 1)[1]
EXECUTE_UTF16 = EXECUTE_HELLO_XML.decode().replace('encoding="UTF-8"', 'encoding="UTF-16"')
GETCAPS_ELEMENT = (f'<wps:GetCapabilities service="WPS" version="1.0.0" '
                   f'xmlns:wps="{WPS_NS}"/>')


def xml_with_prolog(between: str) -> bytes:
    """The Execute document with `between` inserted after its XML declaration."""
    declaration, rest = EXECUTE_HELLO_XML.split(b"?>\n", 1)
    return declaration + b"?>\n" + between.encode() + b"\n" + rest


@dataclass(frozen=True)
class Case:
    """One hostile request and what should become of it."""

    id: str
    status: int  # twitcher's answer without a token
    code: str | None = None  # the report's exceptionCode/locator, when pinned down
    locator: str | None = None
    exact: bytes | None = None  # the whole report, when pinned down
    service: str = "emu"  # the twitcher service it is sent to
    extra: str = ""  # raw path after /ows/proxy/<service>
    query: str = ""
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    runs_on_emu: bool = True  # sent straight to Emu, pywps runs the Execute
    runs_with_token: bool = False  # through twitcher with a token, it runs

    def __str__(self) -> str:
        return self.id


def duplicate(id: str, query: str, locator: str, runs_on_emu: bool = True) -> Case:
    return Case(id, 400, "InvalidParameterValue", locator, query=query, runs_on_emu=runs_on_emu)


# 1. A decision key given twice: pywps takes the first value of a key and, for keys differing
# in case, the last key (`_get_get_param`); twitcher must not guess, whichever it would take.
DUPLICATE_KEYS = [
    duplicate("request-twice",
              "service=WPS&request=Execute&request=GetCapabilities&version=1.0.0"
              "&identifier=hello&DataInputs=name=tux", "request"),
    duplicate("request-twice-getcapabilities-first",
              "service=WPS&request=GetCapabilities&request=Execute&version=1.0.0"
              "&identifier=hello&DataInputs=name=tux", "request", runs_on_emu=False),
    duplicate("REQUEST-upper-first",
              "service=WPS&REQUEST=GetCapabilities&request=Execute&version=1.0.0"
              "&identifier=hello&DataInputs=name=tux", "request"),
    duplicate("REQUEST-upper-last",
              "service=WPS&request=Execute&REQUEST=GetCapabilities&version=1.0.0"
              "&identifier=hello&DataInputs=name=tux", "request", runs_on_emu=False),
    duplicate("service-twice", f"service=WPS&service=WMS&{EXECUTE[len('service=WPS&'):]}",
              "service"),
    duplicate("SERVICE-upper-last", f"service=WMS&SERVICE=WPS&{EXECUTE[len('service=WPS&'):]}",
              "service"),
    duplicate("version-twice", f"{EXECUTE}&version=2.0.0", "version"),
    duplicate("Version-mixed-case", f"{EXECUTE}&Version=2.0.0", "version"),  # a WPS 2.0.0 Execute
    duplicate("identifier-twice", f"{EXECUTE}&identifier=sleep", "identifier"),
    duplicate("IDENTIFIER-upper-first",
              "service=WPS&request=Execute&version=1.0.0&IDENTIFIER=sleep&identifier=hello"
              "&DataInputs=name=tux", "identifier"),
]

# 2. Paths that leave the public service's URL (one file of Emu's) for pywps on the same server.
INVALID_PATH = ows_exception_report("NoApplicableCode", "NoApplicableCode",
                                    "The request path is not valid.")


def path_trick(id: str, extra: str) -> Case:
    return Case(id, 400, "NoApplicableCode", "NoApplicableCode", exact=INVALID_PATH,
                service="pub", extra=extra, query=EXECUTE)


PATH_TRICKS = [
    path_trick("dot-dot-raw", "/../wps"),
    path_trick("dot-dot-encoded-slash", "/..%2Fwps"),
    path_trick("encoded-dots", "/%2e%2e/wps"),
    path_trick("encoded-dots-upper", "/%2E%2E/wps"),
    path_trick("half-encoded-dots", "/.%2e/wps"),
    path_trick("double-encoded-dots", "/%252e%252e/wps"),
    path_trick("dot-dot-encoded-backslash", "/..%5Cwps"),
    path_trick("dot-dot-backslash", "/..\\wps"),
    path_trick("backslash-segments", "/a\\..\\..\\wps"),
]

# 3. Bodies whose kind or encoding a reader could get wrong.
BODIES = [
    Case("xml-as-form", 401, exact=TOKEN_REQUIRED, method="POST", headers=FORM_TYPE,
         body=EXECUTE_HELLO_XML, runs_with_token=True),
    Case("xml-as-form-utf8-bom", 401, exact=TOKEN_REQUIRED, method="POST", headers=FORM_TYPE,
         body=BOM_UTF8 + EXECUTE_HELLO_XML, runs_with_token=True),
    Case("xml-as-form-leading-whitespace", 401, exact=TOKEN_REQUIRED, method="POST",
         headers=FORM_TYPE, body=b" \r\n\t " + EXECUTE_NO_DECLARATION, runs_with_token=True),
    Case("utf-16-le-bom", 401, exact=TOKEN_REQUIRED, method="POST", headers=XML_TYPE,
         body=b"\xff\xfe" + EXECUTE_UTF16.encode("utf-16-le"), runs_with_token=True),
    Case("utf-16-be-bom", 401, exact=TOKEN_REQUIRED, method="POST", headers=XML_TYPE,
         body=b"\xfe\xff" + EXECUTE_UTF16.encode("utf-16-be"), runs_with_token=True),
    # pywps does not inflate request bodies: the control shows it cannot run this one.
    Case("gzip", 415, method="POST", headers={**XML_TYPE, "Content-Encoding": "gzip"},
         body=gzip.compress(EXECUTE_HELLO_XML), runs_on_emu=False),
]

# 4. Markup before or after the Execute root that a naive reader could take for the root.
ROOT_TRICKS = [
    Case("doctype-entity", 400, method="POST", headers=XML_TYPE,
         body=xml_with_prolog(f'<!DOCTYPE x [<!ENTITY e "{GETCAPS_ELEMENT.replace(chr(34), chr(39))}">]>')),
    Case("comment-before-root", 401, exact=TOKEN_REQUIRED, method="POST", headers=XML_TYPE,
         body=xml_with_prolog(f"<!-- {GETCAPS_ELEMENT} -->"), runs_with_token=True),
    Case("processing-instruction-before-root", 401, exact=TOKEN_REQUIRED, method="POST",
         headers=XML_TYPE, body=xml_with_prolog(f"<?wps {GETCAPS_ELEMENT}?>"),
         runs_with_token=True),
    # Not well-formed (two roots): pywps refuses it, so the control runs nothing.
    Case("second-root-after-execute", 401, exact=TOKEN_REQUIRED, method="POST",
         headers=XML_TYPE, body=EXECUTE_HELLO_XML + GETCAPS_ELEMENT.encode() + b"\n",
         runs_on_emu=False),
]

CASES = DUPLICATE_KEYS + PATH_TRICKS + BODIES + ROOT_TRICKS


# --- fixtures and helpers ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def proxy(module_twitcher, emu):
    """A twitcher with Emu as `emu` (token protected) and one file of Emu's outputs as the
    public service `pub`."""
    (emu.outputs / PUBLIC_FILE).write_bytes(PUBLIC_DOC)
    server = module_twitcher()
    rpc = server.rpc()
    rpc.register_service("emu", emu.url, {"type": "wps"})
    rpc.register_service("pub", public_url(emu), {"type": "wps", "public": True})
    return server


@pytest.fixture
def token(proxy):
    return proxy.rpc().generate_token()["access_token"]


def public_url(emu) -> str:
    return f"http://127.0.0.1:{emu.port}/outputs/{PUBLIC_FILE}"


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes

    def __str__(self) -> str:
        return f"{self.status} {self.content_type}\n{self.body[:2000].decode(errors='replace')}"


def send(port: int, method: str, target: str, headers: dict[str, str] | None = None,
         body: bytes | None = None) -> Answer:
    """One request with `target` sent as it is (http.client, unlike requests, leaves dot
    segments and backslashes alone)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return Answer(response.status, response.getheader("Content-Type", ""), response.read())
    finally:
        conn.close()


def through_twitcher(proxy, case: Case, headers: dict[str, str] | None = None) -> Answer:
    target = f"/ows/proxy/{case.service}{case.extra}" + (f"?{case.query}" if case.query else "")
    return send(proxy.port, case.method, target, {**case.headers, **(headers or {})}, case.body)


def straight_to_emu(emu, case: Case) -> Answer:
    """The request as twitcher would forward it: the registered URL's path plus the extra
    path and the query, verbatim."""
    path = f"/outputs/{PUBLIC_FILE}" if case.service == "pub" else "/wps"
    target = f"{path}{case.extra}" + (f"?{case.query}" if case.query else "")
    return send(emu.port, case.method, target, case.headers, case.body)


@contextmanager
def emu_runs(emu, expected: int):
    """Asserts that Emu accepted exactly `expected` Execute requests inside the block.
    Emu answers a synchronous Execute after logging it, and twitcher answers only after Emu,
    so the count is final when the response has arrived."""
    before = emu.executions()
    yield
    ran = emu.executions() - before
    assert ran == expected, f"Emu ran {ran} Execute request(s), expected {expected}"


def report(answer: Answer) -> tuple[str, str, str]:
    """(exceptionCode, locator, text) of the one Exception of an OWS ExceptionReport."""
    doc = parse_xml(answer.body)
    assert doc.tag == f"{{{NS['ows']}}}ExceptionReport", str(answer)
    [exception] = doc.findall("ows:Exception", NS)
    return (exception.get("exceptionCode"), exception.get("locator"),
            exception.findtext("ows:ExceptionText", namespaces=NS))


def assert_hello_tux(answer: Answer) -> None:
    assert answer.status == 200, str(answer)
    doc = parse_xml(answer.body)
    assert doc.tag == f"{{{NS['wps']}}}ExecuteResponse", str(answer)
    assert literal_outputs(doc) == {"output": "Hello tux"}


# --- the observable ---------------------------------------------------------------------------

def test_the_observable_counts_executions(proxy, emu, token):
    """A legitimate Execute with a token is logged by pywps; a GetCapabilities or a refused
    tokenless Execute is not an Execute."""
    with emu_runs(emu, 1):
        assert_hello_tux(send(proxy.port, "GET", f"/ows/proxy/emu?{EXECUTE}",
                              {"Access-Token": token}))
    assert emu.logged_requests()[-1] == ("execute", "hello")
    with emu_runs(emu, 0):
        answer = send(proxy.port, "GET", "/ows/proxy/emu?service=WPS&request=GetCapabilities")
        assert answer.status == 200, str(answer)
    assert emu.logged_requests()[-1] == ("getcapabilities", None)
    with emu_runs(emu, 0):
        answer = send(proxy.port, "GET", f"/ows/proxy/emu?{EXECUTE}")
        assert (answer.status, answer.body) == (401, TOKEN_REQUIRED), str(answer)


def test_the_public_file_service_runs_nothing(proxy, emu):
    """Without tricks the public service only ever gives the file."""
    with emu_runs(emu, 0):
        answer = send(proxy.port, "GET", f"/ows/proxy/pub?{EXECUTE}")
    assert answer.status == 200, str(answer)
    assert parse_xml(answer.body).tag == "public"


# --- the cases ----------------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=str)
def test_refused_without_token_and_emu_never_ran(proxy, emu, case):
    with emu_runs(emu, 0):
        answer = through_twitcher(proxy, case)
    assert answer.status == case.status, str(answer)
    assert answer.content_type == OWS_ERROR_TYPE, str(answer)
    code, locator, text = report(answer)
    if case.exact is not None:
        assert answer.body == case.exact
    if case.code is not None:
        assert (code, locator) == (case.code, case.locator), text


@pytest.mark.parametrize("case", CASES, ids=str)
def test_control_sent_straight_to_emu(emu, case):
    """What pywps makes of the request: the cases that run here are the ones twitcher must not
    let through."""
    with emu_runs(emu, 1 if case.runs_on_emu else 0):
        answer = straight_to_emu(emu, case)
    # On a path other than /wps pywps runs the process, then looks for a raw output named
    # by the last path element and fails (500): the Execute has run all the same.
    if case.runs_on_emu and not case.extra:
        assert_hello_tux(answer)


@pytest.mark.parametrize("case", [c for c in CASES if c.runs_with_token], ids=str)
def test_control_with_token_runs(proxy, emu, token, case):
    with emu_runs(emu, 1):
        answer = through_twitcher(proxy, case, {"Access-Token": token})
    assert_hello_tux(answer)


@pytest.mark.parametrize("case", [c for c in CASES if c.status != 401], ids=str)
def test_refused_with_token_too(proxy, emu, token, case):
    """What twitcher cannot read unambiguously it refuses whoever asks."""
    with emu_runs(emu, 0):
        answer = through_twitcher(proxy, case, {"Access-Token": token})
    assert answer.status == case.status, str(answer)
    code, locator, text = report(answer)
    if case.code is not None:
        assert (code, locator) == (case.code, case.locator), text
