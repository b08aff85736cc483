"""Native HTTPS with client certificates (issue 11, SPEC §8), driven with curl (OpenSSL) and the
real Emu behind an `auth = cert` service.

Certificates are made with the `openssl` command line at test time: a CA, a server
certificate, a user (end-entity) certificate and RFC 3820 proxy certificates (the
`proxyCertInfo` extension as OpenSSL writes it), each proxy stored the way grid tools store
them: proxy certificate, its key, then the user certificate, in one PEM file. A valid proxy
runs Execute on Emu; every broken chain gets the 401 OWS report and never reaches Emu.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from interop import ServerProcess, Twitcher, free_port, twitcher_ini

EXECUTE = ("/ows/proxy/emu?service=WPS&request=Execute&version=1.0.0&identifier=hello"
           "&DataInputs=name=tux")
CERT_NEEDED = "A valid X.509 client certificate is needed."


# --- a PKI made with openssl -------------------------------------------------------------------

def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def when(delta: timedelta) -> str:
    """A date as `openssl ca -startdate/-enddate` takes it."""
    return (datetime.now(timezone.utc) + delta).strftime("%Y%m%d%H%M%SZ")


@dataclass
class Cert:
    pem: Path  # the certificate
    key: Path  # its private key
    subject: str  # as `openssl req -subj` writes it


class Pki:
    """A throw-away CA in a directory, and `openssl ca` to issue with any validity."""

    def __init__(self, root: Path):
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.serial = 0
        self.ca = self.self_signed("ca", "/O=ESGF/CN=Interop Test CA", ca=True)

    def key(self, name: str) -> Path:
        path = self.root / f"{name}.key"
        openssl("genrsa", "-out", str(path), "2048", cwd=self.root)
        return path

    def self_signed(self, name: str, subject: str, *, ca: bool = False) -> Cert:
        key = self.key(name)
        pem = self.root / f"{name}.pem"
        ext = ["-addext", "basicConstraints=critical,CA:TRUE",
               "-addext", "keyUsage=critical,keyCertSign,cRLSign"] if ca else [
            "-addext", "basicConstraints=critical,CA:FALSE",
            "-addext", "keyUsage=critical,digitalSignature,keyEncipherment",
            "-addext", "extendedKeyUsage=clientAuth"]
        openssl("req", "-x509", "-new", "-key", str(key), "-subj", subject, "-days", "30",
                "-out", str(pem), *ext, cwd=self.root)
        return Cert(pem, key, subject)

    def issue(self, name: str, subject: str, issuer: Cert, extensions: list[str], *,
              start: timedelta = timedelta(minutes=-5), end: timedelta = timedelta(days=1),
              key: Path | None = None) -> Cert:
        """A certificate for `subject` signed by `issuer`, valid from now+start to now+end."""
        key = key or self.key(name)
        csr = self.root / f"{name}.csr"
        openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr),
                cwd=self.root)
        work = self.root / f"ca-{name}"
        (work / "new").mkdir(parents=True)
        (work / "index.txt").write_text("")
        self.serial += 1
        (work / "serial").write_text(f"{self.serial:04X}\n")
        config = work / "ca.cnf"
        config.write_text("\n".join([
            "[ca]", "default_ca = tw", "[tw]",
            f"database = {work / 'index.txt'}", f"new_certs_dir = {work / 'new'}",
            f"serial = {work / 'serial'}", "default_md = sha256", "policy = anything",
            "unique_subject = no", "copy_extensions = none",
            "[anything]", "countryName = optional", "organizationName = optional",
            "organizationalUnitName = optional", "commonName = optional",
            "[ext]", *extensions, ""]))
        pem = self.root / f"{name}.pem"
        openssl("ca", "-batch", "-config", str(config), "-cert", str(issuer.pem),
                "-keyfile", str(issuer.key), "-in", str(csr), "-out", str(pem), "-notext",
                "-preserveDN", "-extensions", "ext", "-startdate", when(start),
                "-enddate", when(end), cwd=self.root)
        return Cert(pem, key, subject)

    def user(self, name: str, subject: str, *, end: timedelta = timedelta(days=2)) -> Cert:
        return self.issue(name, subject, self.ca, [
            "basicConstraints = critical, CA:FALSE",
            "keyUsage = critical, digitalSignature, keyEncipherment",
            "extendedKeyUsage = clientAuth"], start=timedelta(days=-1), end=end)

    def proxy(self, name: str, issuer: Cert, *, subject: str | None = None,
              path_len: int | None = None, **validity) -> Cert:
        """An RFC 3820 inheritAll proxy of `issuer` (subject: the issuer's plus a CN)."""
        info = "critical, language:id-ppl-inheritAll"
        if path_len is not None:
            info += f", pathlen:{path_len}"
        # A proxy must not outlive its issuer: each one made here ends a minute before the
        # one made before it (as grid-proxy-init shortens a proxy to its issuer's life), so
        # a second boundary crossed between two issues cannot make a chain invalid.
        validity.setdefault("end", timedelta(hours=12) - timedelta(minutes=self.serial))
        return self.issue(name, subject or f"{issuer.subject}/CN={self.serial + 1000}", issuer,
                          ["keyUsage = critical, digitalSignature, keyEncipherment",
                           f"proxyCertInfo = {info}"], **validity)

    def server(self) -> Cert:
        return self.issue("server", "/CN=localhost", self.ca, [
            "basicConstraints = critical, CA:FALSE",
            "subjectAltName = DNS:localhost, IP:127.0.0.1",
            "extendedKeyUsage = serverAuth"], end=timedelta(days=2))


def credential(name: str, root: Path, leaf: Cert, *chain: Cert) -> Path:
    """A grid-style proxy file: leaf certificate, its key, then the rest of the chain."""
    path = root / f"{name}.credential.pem"
    parts = [leaf.pem.read_text(), leaf.key.read_text()] + [c.pem.read_text() for c in chain]
    path.write_text("".join(parts))
    return path


def tampered(cert: Cert, root: Path) -> Cert:
    """The certificate with the last byte of its signature changed."""
    body = re.sub(r"-----[^-]+-----|\s", "", cert.pem.read_text())
    der = bytearray(base64.b64decode(body))
    der[-1] ^= 0x01
    b64 = base64.b64encode(bytes(der)).decode()
    lines = "\n".join(b64[i:i + 64] for i in range(0, len(b64), 64))
    pem = root / f"tampered-{cert.pem.name}"
    pem.write_text(f"-----BEGIN CERTIFICATE-----\n{lines}\n-----END CERTIFICATE-----\n")
    return Cert(pem, cert.key, cert.subject)


# --- twitcher with an HTTPS listener -----------------------------------------------------------

@dataclass
class HttpsTwitcher:
    server: Twitcher
    https_port: int

    def https(self, path: str) -> str:
        return f"https://localhost:{self.https_port}{path}"


def start_https_twitcher(binary: str, workdir: Path, pki_dir: Path, server: Cert,
                         verify: str, processes: list[ServerProcess]) -> HttpsTwitcher:
    for attempt in range(3):
        port, https_port = free_port(), free_port()
        ini = twitcher_ini(port, username=None, password=None, listen_style="host_port",
                           extra={"twitcher.ows_proxy_forward_client_dn": "X-Client-DN"})
        # [server:main] is the INI's last section: these keys go into it.
        ini += "\n".join([f"https_listen = 127.0.0.1:{https_port}",
                          f"certfile = {server.pem}", f"keyfile = {server.key}",
                          f"client_ca = {pki_dir / 'ca.pem'}", f"client_verify = {verify}",
                          ""])
        (workdir / "twitcher.ini").write_text(ini)
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"), NO_COLOR="1")
        process = ServerProcess("twitcher", [binary, "serve", str(workdir / "twitcher.ini")],
                                cwd=workdir, log_path=workdir / f"twitcher-{port}.log",
                                env=env)
        processes.append(process)
        process.start()
        try:
            process.wait_ready(
                lambda: requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok,
                timeout=30, what="GET /health = 200")
        except Exception:
            process.stop()
            if attempt < 2 and "in use" in process.log_text():
                continue
            raise
        twitcher = HttpsTwitcher(Twitcher(process, port, workdir), https_port)
        twitcher.server.rpc().register_service("emu", EMU_URL[0], {"type": "wps",
                                                                  "auth": "cert"})
        return twitcher
    raise AssertionError("unreachable")


EMU_URL: list[str] = []


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def servers(pki, twitcher_bin, emu, tmp_path_factory):
    """One twitcher with client_verify = optional and one with required."""
    EMU_URL[:] = [emu.url]
    processes: list[ServerProcess] = []
    cert = pki.server()
    started = {verify: start_https_twitcher(twitcher_bin, tmp_path_factory.mktemp(verify),
                                            pki.root, cert, verify, processes)
               for verify in ("optional", "required")}
    yield started
    for process in processes:
        assert process.stop() == 0, process.log_text(tail=40)


def curl(url: str, ca: Cert, credential_file: Path | None) -> tuple[int, int, str]:
    """curl's exit status, the HTTP status (0: none) and the body."""
    args = ["curl", "-sS", "--max-time", "60", "--cacert", str(ca.pem), "-w", "\n%{http_code}"]
    if credential_file is not None:
        args += ["--cert", str(credential_file), "--key", str(credential_file)]
    done = subprocess.run(args + [url], capture_output=True, text=True, timeout=90)
    body, _, status = done.stdout.rpartition("\n")
    return done.returncode, int(status or 0), body


def test_a_proxy_certificate_runs_execute_as_its_user(pki, servers, emu):
    alice = pki.user("alice", "/C=DE/O=ESGF/OU=ESGF.ORG/CN=alice")
    proxy = pki.proxy("alice-proxy", alice)
    file = credential("alice-proxy", pki.root, proxy, alice)
    for verify, server in servers.items():
        before = emu.executions()
        code, status, body = curl(server.https(EXECUTE), pki.ca, file)
        assert (code, status) == (0, 200), f"{verify}: {body}"
        assert "ProcessSucceeded" in body and "Hello tux" in body, body
        assert emu.executions() == before + 1
        log = server.server.process.log_text()
        assert "client certificate verified" in log and "CN=alice,OU=ESGF.ORG,O=ESGF,C=DE" in log


def test_a_proxy_of_a_proxy_runs_execute(pki, servers, emu):
    bob = pki.user("bob", "/C=DE/O=ESGF/OU=bob")
    first = pki.proxy("bob-1", bob, path_len=1)
    second = pki.proxy("bob-2", first)
    code, status, body = curl(servers["optional"].https(EXECUTE), pki.ca,
                              credential("bob-2", pki.root, second, first, bob))
    assert (code, status) == (0, 200), body


@pytest.fixture(scope="module")
def broken_chains(pki) -> dict[str, Path]:
    """Each way a chain can be broken, as a credential file."""
    root = pki.root
    carol = pki.user("carol", "/C=DE/O=ESGF/OU=ESGF.ORG/CN=carol")
    impostor = pki.self_signed("impostor", carol.subject)  # carol's name, another key
    dave = pki.user("dave", "/C=DE/O=ESGF/OU=dave")
    limited = pki.proxy("dave-limited", dave, path_len=0)
    lone = pki.self_signed("lone", "/C=DE/O=ESGF/CN=lone")
    other_ca = Pki(root / "other")
    stranger = other_ca.user("stranger", "/C=DE/O=ESGF/CN=stranger")
    valid = pki.proxy("carol-valid", carol)
    return {
        "expired proxy": credential("expired", root, pki.proxy(
            "expired", carol, start=timedelta(hours=-3), end=timedelta(hours=-1)), carol),
        "proxy not yet valid": credential("early", root, pki.proxy(
            "early", carol, start=timedelta(hours=1), end=timedelta(hours=2)), carol),
        "proxy outliving its user": credential("outliving", root, pki.proxy(
            "outliving", carol, end=timedelta(days=5)), carol),
        "proxy signed by another key": credential("forged", root, pki.proxy(
            "forged", impostor), carol),
        "tampered proxy": credential("tampered", root, tampered(valid, root), carol),
        "subject not extending the user's": credential("renamed", root, pki.proxy(
            "renamed", carol, subject="/C=DE/O=ESGF/OU=ESGF.ORG/CN=root/CN=1"), carol),
        "path length exceeded": credential("too-deep", root, pki.proxy(
            "too-deep", limited), limited, dave),
        "self-signed user certificate": credential("lone", root, lone),
        "user certificate of another CA": credential("stranger", root, stranger),
    }


def test_each_broken_chain_gets_a_401_report(pki, servers, emu, broken_chains):
    server = servers["optional"]
    before = emu.executions()
    for case, file in broken_chains.items():
        code, status, body = curl(server.https(EXECUTE), pki.ca, file)
        assert (code, status) == (0, 401), f"{case}: curl {code}, {body}"
        assert "ExceptionReport" in body and CERT_NEEDED in body, f"{case}: {body}"
    code, status, body = curl(server.https(EXECUTE), pki.ca, None)
    assert (code, status) == (0, 401) and CERT_NEEDED in body, body
    assert emu.executions() == before
    # Public operations need no certificate.
    code, status, body = curl(
        server.https("/ows/proxy/emu?service=WPS&request=GetCapabilities"), pki.ca, None)
    assert (code, status) == (0, 200), body


def test_required_refuses_broken_chains_in_the_handshake(pki, servers, emu, broken_chains):
    server = servers["required"]
    before = emu.executions()
    for case, file in [*broken_chains.items(), ("no certificate", None)]:
        code, status, body = curl(server.https(EXECUTE), pki.ca, file)
        assert code != 0 and status == 0, f"{case}: curl {code}, HTTP {status}: {body}"
    assert emu.executions() == before
    assert "client certificate refused" in server.server.process.log_text()
