"""A real OGC API server behind the proxy: pygeoapi 0.21.0 (its `hello-world` process and a
GeoJSON collection `lakes` from `tests/data`, no network) registered over XML-RPC as an
`ogcapi` service, driven with OWSLib's OGC API classes (`Processes`, `Features`) and plain
`requests`.

The landing page, conformance, API document, process list and descriptions, and collection
metadata need no token; execution (sync and async), jobs and items are refused without one
(401 `application/problem+json`, `WWW-Authenticate: Bearer`) and answered with one; an async
job is created, polled and its results fetched through the proxy by following the links it
hands out; and no answer names pygeoapi's own URL. Hostile requests (method overrides,
encoded slashes, dot segments, case and trailing-slash variants of the execution path) leave
pygeoapi's job list untouched."""

from __future__ import annotations

import http.client
import json
import time
from contextlib import contextmanager

import owslib.ogcapi
import pytest
import requests
from owslib.ogcapi.features import Features
from owslib.ogcapi.processes import Processes

NAME = "pygeoapi"
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def proxy(module_twitcher, pygeoapi):
    """A twitcher with pygeoapi registered as `pygeoapi` (type ogcapi, token protected)."""
    server = module_twitcher()
    registered = server.rpc().register_service(NAME, pygeoapi.url, {"type": "ogcapi"})
    assert registered["type"] == "ogcapi" and registered["public"] is False
    return server


@pytest.fixture(scope="module")
def token(proxy) -> str:
    return proxy.rpc().generate_token()["access_token"]


@contextmanager
def owslib_headers():
    """OWSLib's OGC API classes update one module-level header dict with the headers they
    are given: keep a token from leaking into the next, anonymous client."""
    saved = dict(owslib.ogcapi.REQUEST_HEADERS)
    try:
        yield
    finally:
        owslib.ogcapi.REQUEST_HEADERS.clear()
        owslib.ogcapi.REQUEST_HEADERS.update(saved)


def client(cls, url: str, token: str | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token else None
    with owslib_headers():
        api = cls(url, headers=headers)
        api.headers = dict(api.headers)
    return api


def strings(value):
    """Every string in a JSON value (keys included)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)
    elif isinstance(value, str):
        yield value


def assert_through_proxy(doc, proxy_url: str, pygeoapi) -> list[str]:
    """No string names pygeoapi; returns the links (`href`s) into the proxy."""
    leaked = [s for s in strings(doc) if f"127.0.0.1:{pygeoapi.port}" in s]
    assert not leaked, leaked
    return [s for s in strings(doc) if s.startswith(proxy_url)]


def assert_problem(response: requests.Response, status: int, detail: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == PROBLEM
    doc = response.json()
    assert doc["status"] == status and doc["detail"] == detail, doc
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith('Bearer realm="twitcher"')


def job_count(pygeoapi) -> int:
    """Jobs pygeoapi's manager has recorded (its TinyDB file: the job list is paged).
    A running async job rewrites the file in place: a read that catches it half written
    is tried again."""
    path = pygeoapi.workdir / "jobs.db"
    deadline = time.monotonic() + 10
    while True:
        if not path.exists():
            return 0
        try:
            return sum(len(table) for table in json.loads(path.read_text() or "{}").values())
        except json.JSONDecodeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_landing_page_and_processes_are_public(proxy, pygeoapi):
    url = proxy.proxy_url(NAME)
    api = client(Processes, url)
    assert any(link["href"].startswith(url) for link in api.links)
    assert_through_proxy(api.response, url, pygeoapi)
    processes = api.processes()
    assert [p["id"] for p in processes] == ["hello-world"]
    assert_through_proxy(processes, url, pygeoapi)
    process = api.process("hello-world")
    assert process["id"] == "hello-world"
    assert f"{url}/processes/hello-world?f=json" in assert_through_proxy(process, url, pygeoapi)
    assert "conformsTo" in api.conformance()
    for path in ["conformance", "openapi?f=json", "collections", "collections/lakes"]:
        r = requests.get(f"{url}/{path}", timeout=30)
        assert r.status_code == 200, (path, r.text[:200])
        assert_through_proxy(r.json(), url, pygeoapi)
    # The API document's server is the proxy too.
    servers = requests.get(f"{url}/openapi?f=json", timeout=30).json()["servers"]
    assert servers[0]["url"] == url


def test_execution_is_refused_without_a_token(proxy, pygeoapi):
    url = proxy.proxy_url(NAME)
    before = job_count(pygeoapi)
    api = client(Processes, url)
    with pytest.raises(RuntimeError) as refused:
        api.execute("hello-world", inputs={"name": "tux"})
    assert json.loads(str(refused.value))["detail"] == "Access token is required to access this service."
    r = requests.post(f"{url}/processes/hello-world/execution", json={"inputs": {"name": "tux"}},
                      headers={"Prefer": "respond-async"}, timeout=30)
    assert_problem(r, 401, "Access token is required to access this service.")
    r = requests.post(f"{url}/processes/hello-world/execution", json={"inputs": {"name": "tux"}},
                      headers={"Authorization": "Bearer not-a-token"}, timeout=30)
    assert_problem(r, 401, "Access token is required to access this service.")
    assert job_count(pygeoapi) == before


def test_sync_execution_with_a_token(proxy, pygeoapi, token):
    url = proxy.proxy_url(NAME)
    api = client(Processes, url, token)
    result = api.execute("hello-world", inputs={"name": "tux"})
    assert result == {"outputs": [{"id": "echo", "value": "Hello tux!"}]}
    r = requests.post(f"{url}/processes/hello-world/execution?access_token={token}",
                      json={"inputs": {"name": "tux", "message": "hi"}, "response": "document"},
                      timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["value"] == "Hello tux! hi"


def test_async_job_created_polled_and_fetched_through_the_proxy(proxy, pygeoapi, token):
    url = proxy.proxy_url(NAME)
    api = client(Processes, url, token)
    api.execute("hello-world", inputs={"name": "tux"}, async_=True)
    location = api.response_headers["Location"]
    assert location.startswith(f"{url}/jobs/"), location
    auth = {"Authorization": f"Bearer {token}"}
    # Without the token the job is closed; with it, poll until it is done.
    assert_problem(requests.get(location, timeout=30), 401,
                   "Access token is required to access this service.")
    deadline = time.monotonic() + 60
    while True:
        r = requests.get(location, params={"f": "json"}, headers=auth, timeout=30)
        assert r.status_code == 200, r.text
        status = r.json()
        links = assert_through_proxy(status, url, pygeoapi)
        if status["status"] == "successful":
            break
        assert status["status"] in ("accepted", "running"), status
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    results = [link["href"] for link in status["links"]
               if link["rel"].endswith("/results") and link["type"] == "application/json"]
    assert results and results[0] in links, status["links"]
    assert_problem(requests.get(results[0], timeout=30), 401,
                   "Access token is required to access this service.")
    r = requests.get(results[0], headers=auth, timeout=30)
    assert r.status_code == 200, r.text
    assert_through_proxy(r.json(), url, pygeoapi)
    assert "Hello tux!" in r.text
    # The job list is protected, and lists the job through the proxy.
    assert_problem(requests.get(f"{url}/jobs", timeout=30), 401,
                   "Access token is required to access this service.")
    jobs = requests.get(f"{url}/jobs?f=json", headers=auth, timeout=30)
    assert jobs.status_code == 200
    assert_through_proxy(jobs.json(), url, pygeoapi)


def test_collection_metadata_is_public_and_items_need_a_token(proxy, pygeoapi, token):
    url = proxy.proxy_url(NAME)
    api = client(Features, url)
    assert [c["id"] for c in api.collections()["collections"]] == ["lakes"]
    assert api.collection("lakes")["id"] == "lakes"
    with pytest.raises(RuntimeError) as refused:
        api.collection_items("lakes")
    assert json.loads(str(refused.value))["status"] == 401
    api = client(Features, url, token)
    page = api.collection_items("lakes")
    assert [f["properties"]["name"] for f in page["features"]] == ["Lake Superior", "Lake Victoria"]
    assert_through_proxy(page, url, pygeoapi)
    following = [link["href"] for link in page["links"] if link["rel"] == "next"]
    assert following and following[0].startswith(url), page["links"]
    r = requests.get(following[0], headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 200
    assert [f["properties"]["name"] for f in r.json()["features"]] == ["Lake Baikal"]
    item = api.collection_item("lakes", "2")
    assert item["properties"]["name"] == "Lake Victoria"
    assert_through_proxy(item, url, pygeoapi)


def raw(proxy, method: str, target: str, headers: dict[str, str], body: bytes = b"") -> int:
    """One request with its target sent exactly as written."""
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for k, v in {"Content-Length": str(len(body)), **headers}.items():
            conn.putheader(k, v)
        conn.endheaders(body)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_hostile_requests_never_run_the_process(proxy, pygeoapi):
    before = job_count(pygeoapi)
    body = json.dumps({"inputs": {"name": "mallory"}}).encode()
    json_type = {"Content-Type": "application/json"}
    base = f"/ows/proxy/{NAME}"
    attempts = [
        # A GET the gate would admit as public, which a framework would run as a POST.
        ("GET", f"{base}/processes/hello-world/execution",
         {**json_type, "X-HTTP-Method-Override": "POST"}, 400),
        ("GET", f"{base}/processes?_method=POST", {}, 400),
        ("POST", f"{base}/processes/hello-world%2Fexecution", json_type, 400),
        ("POST", f"{base}/processes/x/..%2Fhello-world/execution", json_type, 400),
        ("POST", f"{base}/processes/x/../hello-world/execution", json_type, 400),
        ("POST", f"{base}/processes/x/%2e%2e/hello-world/execution", json_type, 400),
        ("POST", f"{base}/processes/hello-world/execution/", json_type, 401),
        ("POST", f"{base}/PROCESSES/hello-world/execution", json_type, 401),
        ("POST", f"{base}/processes//hello-world/execution", json_type, 401),
        ("POST", f"{base}/processes/hello-world;x/execution", json_type, 401),
        ("POST", f"{base}/processes/hello-world/jobs", json_type, 401),
        ("PUT", f"{base}/processes/hello-world/execution", json_type, 401),
        ("TRACE", f"{base}/processes", {}, 405),
    ]
    for method, target, headers, status in attempts:
        assert raw(proxy, method, target, headers, body) == status, (method, target)
    assert job_count(pygeoapi) == before
    # Control: the same body with a method pygeoapi runs, straight to pygeoapi, makes a job.
    r = requests.post(f"{pygeoapi.url}/processes/hello-world/execution", data=body,
                      headers={**json_type, "Prefer": "respond-async"}, timeout=30)
    assert r.status_code == 201, r.text
    assert job_count(pygeoapi) == before + 1
