"""The original Twitcher 0.5.5 and 0.6.0 on PostgreSQL, then twitcher on the same database
(SPEC §2). The original creates the schema with its own alembic migrations and writes a
service and a token (0.5.5: an XML-RPC token; 0.6.0: an OAuth client and its token) with
its own stores and models (`tests/original_db.py`, run in the original's virtualenv with
psycopg2); twitcher then serves that service with that token to the real Emu, writes its
own service, token and client, and the original reads all of them back. Skipped with a
reason when `TWITCHER_TEST_POSTGRES` (scripts/test-all.sh's throwaway cluster) is unset."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest
import requests

from interop import required_env

HERE = Path(__file__).resolve().parent

# What the original's `pyramid.paster.bootstrap` needs to load its app (both releases).
ORIGINAL_INI = """\
[app:main]
use = egg:pyramid_twitcher
sqlalchemy.url = {url}
twitcher.url = http://127.0.0.1:1
twitcher.rpcinterface = true
twitcher.username =
twitcher.password =
twitcher.ows_security = true
twitcher.ows_proxy = true
twitcher.ows_proxy_protected_path = /ows
twitcher.oauth = true
twitcher.token.type = random_token
twitcher.token.expires_in = 3600

[alembic]
script_location = twitcher:alembic
"""


@pytest.fixture(scope="module")
def postgres() -> str:
    url = os.environ.get("TWITCHER_TEST_POSTGRES")
    if not url:
        pytest.skip("needs PostgreSQL: set TWITCHER_TEST_POSTGRES "
                    "(scripts/test-all.sh starts one with scripts/postgres.sh)")
    return url


def new_database(admin_url: str) -> str:
    name = f"interop_{uuid.uuid4().hex[:12]}"
    subprocess.run(["psql", admin_url, "-qc", f"CREATE DATABASE {name}"], check=True,
                   timeout=60)
    return urllib.parse.urlsplit(admin_url)._replace(path=f"/{name}").geturl()


class Original:
    """The original release whose twitcherctl the suite installed, on one database."""

    def __init__(self, twitcherctl: str, url: str, workdir: Path):
        self.bin = Path(twitcherctl).parent
        self.ini = workdir / "original.ini"
        self.ini.write_text(ORIGINAL_INI.format(url=url))

    def run(self, *argv: str) -> str:
        done = subprocess.run([*argv], cwd=self.ini.parent, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, f"{argv[0]} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def alembic_upgrade(self) -> None:
        self.run(str(self.bin / "alembic"), "-c", str(self.ini), "upgrade", "head")

    def alembic_current(self) -> str:
        return self.run(str(self.bin / "alembic"), "-c", str(self.ini), "current")

    def db(self, command: str, spec: dict) -> dict:
        out = self.run(str(self.bin / "python"), str(HERE / "original_db.py"), str(self.ini),
                       command, json.dumps(spec))
        return json.loads(out.strip().splitlines()[-1])


def execute(url: str, **auth) -> requests.Response:
    params = {"service": "WPS", "request": "Execute", "version": "1.0.0",
              "identifier": "hello", "DataInputs": "name=tux"}
    params.update(auth.get("params", {}))
    return requests.get(url, params=params, headers=auth.get("headers", {}), timeout=60)


def test_original_05_database_on_postgresql(postgres, emu, twitcher, tmp_path):
    url = new_database(postgres)
    original = Original(required_env("TWITCHER_INTEROP_TWITCHERCTL_05"), url, tmp_path)
    original.alembic_upgrade()
    token = uuid.uuid4().hex
    original.db("write", {
        "services": [{"name": "emu", "url": emu.url, "type": "wps", "public": False,
                      "auth": "token", "verify": True, "purl": ""}],
        "tokens": [{"token": token, "expires_at": int(time.time()) + 3600}]})

    ours = twitcher(sqlalchemy__url=url)
    rpc = ours.rpc()
    assert rpc.get_service_by_name("emu") == {
        "url": emu.url, "name": "emu", "type": "wps", "purl": "", "public": False,
        "auth": "token", "verify": True}
    assert execute(ours.proxy_url("emu")).status_code == 401
    answer = execute(ours.proxy_url("emu"), params={"access_token": token})
    assert answer.status_code == 200, answer.text
    assert "Hello tux" in answer.text

    # Written by twitcher, read by the original.
    rpc.register_service("ours", emu.url, {"public": True, "type": "WPS"})
    new = rpc.generate_token(2)
    state = original.db("read", {"tokens": [token, new["access_token"]]})
    assert state["version"] == "0.5.5"
    assert {s["name"]: (s["url"], s["type"], s["public"], s["verify"], s["auth"])
            for s in state["services"]} == {
        "emu": (emu.url, "wps", 0, 1, "token"),
        "ours": (emu.url, "WPS", 1, 1, "token")}
    assert state["tokens"][new["access_token"]] == {
        "token": new["access_token"], "expires_at": new["expires_at"]}
    assert state["tokens"][token]["token"] == token
    # The original's alembic still finds its own revision: nothing was stamped over it.
    assert "d39766e64a84" in original.alembic_current()


def test_original_06_database_on_postgresql(postgres, emu, twitcher, tmp_path):
    ctl = os.environ.get("TWITCHER_INTEROP_TWITCHERCTL_06")
    if not ctl:
        pytest.skip("TWITCHER_INTEROP_SKIP_06=1: no 0.6.0 virtualenv")
    url = new_database(postgres)
    original = Original(ctl, url, tmp_path)
    original.alembic_upgrade()
    bearer = uuid.uuid4().hex[:30]
    original.db("write", {
        "services": [{"name": "emu", "url": emu.url, "type": "wps", "auth": "token",
                      "verify": True, "purl": ""}],
        "clients": [{"client_id": "c" * 32, "client_secret": "s" * 32, "name": "theirs",
                     "default_scope": "compute", "_redirect_uris": ""}],
        "oauth_tokens": [{"client_id": "c" * 32, "token_type": "Bearer",
                          "access_token": bearer, "expires_in": 3600, "scope": "compute"}]})

    ours = twitcher(sqlalchemy__url=url)
    assert ours.rpc().get_service_by_name("emu")["url"] == emu.url
    answer = execute(ours.proxy_url("emu"), headers={"Authorization": f"Bearer {bearer}"})
    assert answer.status_code == 200, answer.text
    assert "Hello tux" in answer.text
    # The original's client gets new tokens from twitcher with its stored secret.
    issued = requests.post(f"{ours.url}/oauth/token", data={
        "grant_type": "client_credentials", "client_id": "c" * 32,
        "client_secret": "s" * 32, "scope": "compute"}, timeout=30)
    assert issued.status_code == 200, issued.text

    # Written by twitcher, read by the original.
    ours.rpc().register_service("ours", emu.url, {"type": "wms", "auth": "cert"})
    client = requests.get(f"{ours.url}/oauth/client", params={"name": "ours"}, timeout=30).json()
    token = requests.post(f"{ours.url}/oauth/token", data={
        "grant_type": "client_credentials", "client_id": client["client_id"],
        "client_secret": client["client_secret"], "scope": "compute"}, timeout=30).json()
    assert re.fullmatch(r"[A-Za-z0-9]{30,}", token["access_token"]), token
    state = original.db("read", {"clients": [client["client_id"]],
                                 "oauth_tokens": [token["access_token"], bearer]})
    assert state["version"] == "0.6.0"
    assert {s["name"]: (s["url"], s["type"], s["auth"], s["verify"])
            for s in state["services"]} == {
        "emu": (emu.url, "wps", "token", True),
        "ours": (emu.url, "wms", "cert", True)}
    assert state["clients"][client["client_id"]] == {
        "client_secret": client["client_secret"], "name": "ours",
        "default_scopes": ["compute", "register"], "redirect_uris": []}
    assert state["oauth_tokens"][token["access_token"]]["client_id"] == client["client_id"]
    assert state["oauth_tokens"][token["access_token"]]["scopes"] == ["compute"]
    assert state["oauth_tokens"][bearer]["client_id"] == "c" * 32
    assert "d9cff565b8db" in original.alembic_current()
