"""A private CA and a localhost server certificate, made with the openssl CLI.

A separate CA (rather than one self-signed leaf) keeps clients with strict X.509 checks happy:
they verify the server against `ca_file` exactly as they would against a real provider.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from pathlib import Path

OPENSSL = "openssl"
VALID_DAYS = "30"
_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class ServerCertificate:
    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


async def _openssl(*args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        OPENSSL,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {output.decode(errors='replace')}")


_SERVER_EXTENSIONS = (
    "basicConstraints=CA:FALSE\n"
    "keyUsage=digitalSignature,keyEncipherment\n"
    "extendedKeyUsage=serverAuth\n"
    "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
    "authorityKeyIdentifier=keyid,issuer\n"
    "subjectKeyIdentifier=hash\n"
)


def _prepare(directory: Path) -> tuple[ServerCertificate, bool]:
    """The certificate's paths, and whether they already exist (a reused workdir)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert = ServerCertificate(
        ca_file=directory / "ca.pem",
        cert_file=directory / "server.pem",
        key_file=directory / "server.key",
    )
    (directory / "server.ext").write_text(_SERVER_EXTENSIONS)
    return cert, all(p.exists() for p in (cert.ca_file, cert.cert_file, cert.key_file))


async def make_certificate(directory: Path) -> ServerCertificate:
    """Create (or reuse) ca.pem, server.pem and server.key in directory."""
    cert, exists = _prepare(directory)
    if exists:
        return cert
    ca_key = directory / "ca.key"
    csr = directory / "server.csr"
    await _openssl(
        "req", "-x509", *_EC, "-keyout", str(ca_key), "-out", str(cert.ca_file),
        "-days", VALID_DAYS, "-subj", "/CN=cxprobe sandbox CA",
    )  # fmt: skip
    await _openssl(
        "req", "-new", *_EC, "-keyout", str(cert.key_file), "-out", str(csr),
        "-subj", "/CN=localhost",
    )  # fmt: skip
    await _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(cert.ca_file), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert.cert_file), "-days", VALID_DAYS,
        "-extfile", str(directory / "server.ext"),
    )  # fmt: skip
    return cert
