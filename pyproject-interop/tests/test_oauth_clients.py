"""A standard OAuth2 client library, requests-oauthlib (`BackendApplicationClient` +
`OAuth2Session`, the client-credentials grant), against twitcher's `/oauth/token` (SPEC §7),
using its tokens on the OWS proxy with the real Emu behind it, on the REST registry and on
`/ows/verify/{name}` (SPEC §4, T08).

The client credentials go in each place RFC 6749 §2.3.1 allows and the library offers: HTTP
basic auth (its default for `fetch_token(url, client_id=…, client_secret=…)`, and an explicit
`auth=HTTPBasicAuth(…)`) and the request body (`include_client_id=True`). Errors must come back
as the RFC's JSON so that oauthlib raises its typed exceptions.
"""

from __future__ import annotations

import pytest
import requests
from oauthlib.oauth2 import BackendApplicationClient
from oauthlib.oauth2.rfc6749.errors import InvalidClientError, InvalidScopeError
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session

from interop import EXECUTE_HELLO_XML, NS, Twitcher, literal_outputs, ows_exception_report, parse_xml

EXECUTE = "service=WPS&version=1.0.0&request=Execute&identifier=hello&DataInputs=name=tux"
GETCAPS = "service=WPS&request=GetCapabilities"
TOKEN_REQUIRED = ows_exception_report(
    "NoApplicableCode", "AccessForbidden", "Access token is required to access this service.")
ALLOWED = {"description": "Access to service is allowed.", "access": True}
FORBIDDEN = {"description": "Access to service is forbidden.", "access": False}


@pytest.fixture(autouse=True)
def plain_http(monkeypatch):
    # oauthlib refuses http:// token URLs unless told that this is a test on loopback
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


@pytest.fixture(scope="module")
def server(module_twitcher, emu) -> Twitcher:
    """twitcher with management user demo/demo and the real Emu registered as `emu`."""
    server = module_twitcher(username="demo", password="demo")
    response = requests.post(f"{server.url}/services", auth=("demo", "demo"), timeout=10,
                             json={"name": "emu", "url": emu.url, "type": "wps"})
    assert response.status_code == 200, response.text
    return server


@pytest.fixture(scope="module")
def app(server) -> tuple[str, str]:
    """An OAuth client (id, secret) registered at /oauth/client."""
    response = requests.get(f"{server.url}/oauth/client", params={"name": "oauthlib_app"},
                            auth=("demo", "demo"), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["client_id"], response.json()["client_secret"]


def token_url(server: Twitcher) -> str:
    return f"{server.url}/oauth/token"


def fetch(server: Twitcher, client_id: str, secret: str, *, scope: list[str] | None = None,
          placement: str = "basic") -> dict:
    """A token through requests-oauthlib, the credentials in `placement`."""
    # the client sends the scope; the session checks that the answer grants that scope
    client = BackendApplicationClient(client_id=client_id, scope=scope)
    session = OAuth2Session(client=client, scope=scope)
    if placement == "basic":  # the library turns client_id/client_secret into basic auth
        return session.fetch_token(token_url(server), client_id=client_id, client_secret=secret)
    if placement == "auth":
        return session.fetch_token(token_url(server), auth=HTTPBasicAuth(client_id, secret))
    if placement == "body":
        return session.fetch_token(token_url(server), client_id=client_id, client_secret=secret,
                                   include_client_id=True)
    raise ValueError(placement)


def assert_token(token: dict, scope: list[str]) -> None:
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 3600
    assert token["scope"] == scope
    assert isinstance(token["access_token"], str) and len(token["access_token"]) >= 20
    assert token["expires_at"] > 0


def assert_hello_tux(response: requests.Response) -> None:
    assert response.status_code == 200, response.text
    assert literal_outputs(parse_xml(response.content)) == {"output": "Hello tux"}


PLACEMENTS = ["basic", "auth", "body"]


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_compute_token_runs_execute(server, app, placement):
    client_id, secret = app
    token = fetch(server, client_id, secret, scope=["compute"], placement=placement)
    assert_token(token, ["compute"])
    session = OAuth2Session(client_id, token=token)  # sends Authorization: Bearer
    assert_hello_tux(session.get(f"{server.proxy_url('emu')}?{EXECUTE}", timeout=60))
    assert_hello_tux(session.post(server.proxy_url("emu"), data=EXECUTE_HELLO_XML, timeout=60,
                                  headers={"Content-Type": "text/xml"}))


def test_default_scope_is_compute_only(server, app):
    """Without `scope` the token gets `compute` only, as 0.6.0 gave, although the client
    may also ask for `register` (least privilege, D-OAUTH-SCOPES)."""
    client_id, secret = app
    token = fetch(server, client_id, secret)
    assert_token(token, ["compute"])
    session = OAuth2Session(client_id, token=token)
    assert_hello_tux(session.get(f"{server.proxy_url('emu')}?{EXECUTE}", timeout=60))
    response = session.post(f"{server.url}/services", timeout=10,
                            json={"name": "compute_only", "url": "http://h/w"})
    assert response.status_code == 401, response.text


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_register_token_manages_the_registry_but_not_execute(server, app, placement):
    client_id, secret = app
    token = fetch(server, client_id, secret, scope=["register"], placement=placement)
    assert_token(token, ["register"])
    session = OAuth2Session(client_id, token=token)
    name = f"svc_{placement}"
    response = session.post(f"{server.url}/services", timeout=10,
                            json={"name": name, "url": "http://127.0.0.1:9/wps", "type": "wps"})
    assert response.status_code == 200, response.text
    assert response.json() == {"url": "http://127.0.0.1:9/wps", "name": name, "type": "wps",
                               "purl": "", "auth": "token", "public": False, "verify": True}
    assert name in [s["name"] for s in requests.get(f"{server.url}/services", timeout=10).json()]
    # Execute needs scope compute
    response = session.get(f"{server.proxy_url('emu')}?{EXECUTE}", timeout=60)
    assert response.status_code == 401
    assert parse_xml(response.content).find("ows:Exception", NS).get("locator") == "AccessForbidden"
    assert session.delete(f"{server.url}/services/{name}", timeout=10).json() is True
    assert name not in [s["name"] for s in requests.get(f"{server.url}/services", timeout=10).json()]


def test_compute_token_cannot_change_the_registry(server, app):
    client_id, secret = app
    session = OAuth2Session(client_id, token=fetch(server, client_id, secret, scope=["compute"]))
    response = session.post(f"{server.url}/services", timeout=10,
                            json={"name": "not_allowed", "url": "http://h/w"})
    assert response.status_code == 401
    assert "not_allowed" not in [s["name"] for s in
                                 requests.get(f"{server.url}/services", timeout=10).json()]


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_wrong_secret_is_invalid_client(server, app, placement):
    client_id, _ = app
    with pytest.raises(InvalidClientError):
        fetch(server, client_id, "wrong", scope=["compute"], placement=placement)


@pytest.mark.parametrize("placement", ["basic", "body"])
def test_unknown_client_is_invalid_client(server, placement):
    with pytest.raises(InvalidClientError):
        fetch(server, "nobody", "nothing", placement=placement)


@pytest.mark.parametrize("scope", [["foo"], ["compute", "foo"], ["admin"]])
def test_unknown_scope_is_invalid_scope(server, app, scope):
    client_id, secret = app
    with pytest.raises(InvalidScopeError):
        fetch(server, client_id, secret, scope=scope)


# --- /ows/verify/{name} -----------------------------------------------------------------------

def verify(server: Twitcher, query: str, **kwargs) -> requests.Response:
    return requests.get(f"{server.url}/ows/verify/emu?{query}", timeout=10, **kwargs)


def assert_verdict(response: requests.Response, expected: dict) -> None:
    assert response.status_code == (200 if expected["access"] else 403), response.text
    assert response.headers["Content-Type"].split(";")[0] == "application/json"
    assert response.json() == expected
    assert list(response.json()) == ["description", "access"]


def test_verify_execute_with_and_without_token(server, app):
    client_id, secret = app
    compute = fetch(server, client_id, secret, scope=["compute"])
    register = fetch(server, client_id, secret, scope=["register"])
    assert_verdict(verify(server, EXECUTE), FORBIDDEN)
    assert_verdict(OAuth2Session(client_id, token=compute).get(
        f"{server.url}/ows/verify/emu?{EXECUTE}", timeout=10), ALLOWED)
    assert_verdict(verify(server, f"{EXECUTE}&access_token={compute['access_token']}"), ALLOWED)
    assert_verdict(verify(server, EXECUTE, headers={"Access-Token": compute["access_token"]}),
                   ALLOWED)
    assert_verdict(OAuth2Session(client_id, token=register).get(
        f"{server.url}/ows/verify/emu?{EXECUTE}", timeout=10), FORBIDDEN)
    assert_verdict(verify(server, f"{EXECUTE}&access_token={'x' * 30}"), FORBIDDEN)
    # the proxy agrees
    response = requests.get(f"{server.proxy_url('emu')}?{EXECUTE}", timeout=60)
    assert (response.status_code, response.content) == (401, TOKEN_REQUIRED)


def test_verify_public_requests_need_no_token(server):
    assert_verdict(verify(server, GETCAPS), ALLOWED)
    assert_verdict(verify(server, "service=WPS&version=1.0.0&request=DescribeProcess"
                                  "&identifier=hello"), ALLOWED)
