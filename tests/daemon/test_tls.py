"""`forkd serve --tls-cert --tls-key`: https with a self-signed certificate
made here (openssl), through the Python SDK (sync and asyncio) and the CLI
(libcurl) to a real sandbox, trusting the certificate by an SSL context or by
FORKD_CA_CERT; a client that does not trust it, or speaks plain http, gets
nothing; bad key files are refused at start with the reason."""

import asyncio
import os
import socket
import ssl
import subprocess
import sys
import time

import pytest

import harness

sys.path.insert(0, os.path.join(harness.ROOT, "sdk", "python"))
import forkd  # noqa: E402


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    key, crt = str(d / "key.pem"), str(d / "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", key, "-out", crt], check=True, capture_output=True)
    os.chmod(key, 0o600)
    return crt, key


def test_https_round_trip(env, cert):
    crt, key = cert
    d = harness.Daemon(env, extra=["--tls-cert", crt, "--tls-key", key] +
                       harness.own_dirs(env, "tls")).start()
    try:
        url = "https://127.0.0.1:%d" % d.port
        ctx = ssl.create_default_context(cafile=crt)
        ctl = forkd.Controller(url, d.token, ssl_context=ctx)
        assert ctl.healthz() == {"status": "ok"}
        assert ctl.create_snapshot("tlsstub", guest="agent_stub", mem_mib=16)["state"] == \
            "creating"
        deadline = time.time() + 120
        while ctl.snapshot("tlsstub")["state"] == "creating" and time.time() < deadline:
            time.sleep(0.2)
        assert ctl.snapshot("tlsstub")["state"] == "ready"
        with forkd.Sandbox("tlsstub", controller=ctl) as sb:
            assert sb.ping()["pong"] is True

            async def amain():
                async with forkd.AsyncController(url, d.token, ssl_context=ctx) as actl:
                    return (await actl.ping(sb.id))["pong"]
            assert asyncio.run(amain()) is True
            # The CLI over https (libcurl), trusting the certificate through
            # FORKD_CA_CERT; and the SDK the same way.
            cli_env = dict(env.env(), FORKD_URL=url, FORKD_TOKEN=d.token, FORKD_CA_CERT=crt)
            r = subprocess.run([harness.forkd_bin(), "ping", "--sandbox", sb.id], capture_output=True,
                               text=True, env=cli_env, timeout=60)
            assert r.returncode == 0 and "pong" in r.stdout, r.stdout + r.stderr
            r = subprocess.run([harness.forkd_bin(), "ls", "--json"], capture_output=True,
                               text=True, env=cli_env, timeout=60)
            assert r.returncode == 0 and sb.id in r.stdout, r.stdout + r.stderr
            cli_env.pop("FORKD_CA_CERT")
            r = subprocess.run([harness.forkd_bin(), "ls"], capture_output=True, text=True,
                               env=cli_env, timeout=60)
            assert r.returncode != 0 and "FORKD_CA_CERT" in r.stderr, r.stdout + r.stderr
            old = os.environ.get("FORKD_CA_CERT")
            os.environ["FORKD_CA_CERT"] = crt
            try:
                assert forkd.Controller(url, d.token).ping(sb.id)["pong"] is True
            finally:
                if old is None:
                    del os.environ["FORKD_CA_CERT"]
                else:
                    os.environ["FORKD_CA_CERT"] = old
        # The system's CAs do not know this certificate.
        with pytest.raises(forkd.ConnectionFailed) as e:
            forkd.Controller(url, d.token).healthz()
        assert "CERTIFICATE_VERIFY_FAILED" in str(e.value)
        # Plain http to the https port gets no HTTP answer.
        s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        try:
            got = s.recv(4096)
        except ConnectionResetError:
            got = b""
        s.close()
        assert not got.startswith(b"HTTP/1.1 200"), got[:100]
        ctl.delete_snapshot("tlsstub")
    finally:
        rc = d.stop()
    assert rc == 0, d.stderr()[-3000:]


def test_bad_tls_files_refused(env, cert, tmp_path):
    crt, key = cert
    loose = tmp_path / "loose.pem"
    loose.write_bytes(open(key, "rb").read())
    os.chmod(loose, 0o644)
    notpem = tmp_path / "x.pem"
    notpem.write_text("hello\n")
    os.chmod(notpem, 0o600)
    cases = [
        (("--tls-cert", crt), "go together"),
        (("--tls-cert", crt, "--tls-key", str(loose)), "readable by others (mode 0644)"),
        (("--tls-cert", str(notpem), "--tls-key", key), "no PEM CERTIFICATE"),
        (("--tls-cert", crt, "--tls-key", str(tmp_path / "missing")), "No such file"),
    ]
    for extra, want in cases:
        d = harness.Daemon(env, extra=list(extra) + harness.own_dirs(env, "badtls"))
        with pytest.raises(RuntimeError) as e:
            d.start()
        assert want in str(e.value), (extra, str(e.value)[-500:])
