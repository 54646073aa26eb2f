"""A sender's callback endpoint on loopback: HTTP, or HTTPS with a certificate from a test CA made at test time.

It records every request (method, path, headers, exact body) and answers as the test tells it: a status, a hang
(reads the request, never answers), or an answer dripped a byte at a time, in its status line and headers or in
its body. A test reaches it under a name (``callback.test``) that only the test's resolver knows, pinned to
127.0.0.1, so the certificate, SNI and the absence of a second lookup are all exercised.
"""

from __future__ import annotations

import contextlib
import datetime
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NAME = "callback.test"
# One byte of a dripped answer every this many seconds: well inside any read timeout, so only a total deadline
# ends it.
DRIP_EVERY = 0.5


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    # "hang": read the request, never answer; "headers"/"body": drip that part a byte at a time, never ending.
    behaviour: Literal["answer", "hang", "headers", "body"] = "answer"


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    at: float  # time.monotonic()


@dataclass(frozen=True)
class CallbackCA:
    """A CA made at test time, and a server certificate it signed for ``NAME``."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def make_callback_ca(directory: Path, names: Sequence[str] = (NAME,)) -> CallbackCA:
    """A CA and a server certificate for ``names``, written as PEM files under ``directory`` (P-256: fast)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dlrwatch test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    # For the names only, not for 127.0.0.1: a client that checked the address instead of the name would fail.
    alt_names: list[x509.GeneralName] = [x509.DNSName(name) for name in names]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = CallbackCA(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    files.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return files


class Receiver:
    """A callback endpoint on 127.0.0.1: ``with Receiver(tls=ca) as receiver: receiver.answer(Answer(500))``.

    Answers are used in the order given, one a request; once they run out, every request is answered 200.
    """

    def __init__(self, *, tls: CallbackCA | None = None, name: str = NAME) -> None:
        self.name = name
        self.requests: list[Received] = []
        self._answers: list[Answer] = []
        self._lock = threading.Lock()
        self.closed = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        if tls is not None:
            # The handshake happens in the request's thread, so a client that never completes one holds up no other.
            self._server.socket = tls.server_context().wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        self.scheme = "https" if tls is not None else "http"
        # A short poll interval: closing the receiver (every test's teardown) waits for the loop to notice.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="receiver", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/hook?token=sender-secret") -> str:
        return f"{self.scheme}://{self.name}:{self.port}{path}"

    def resolver(self) -> CountingResolver:
        """A resolver that knows this receiver's name only, pinned to 127.0.0.1."""
        return CountingResolver({self.name: ["127.0.0.1"]})

    def answer(self, *answers: Answer) -> None:
        with self._lock:
            self._answers.extend(answers)

    def next_answer(self) -> Answer:
        with self._lock:
            return self._answers.pop(0) if self._answers else Answer()

    def record(self, request: Received) -> None:
        with self._lock:
            self.requests.append(request)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.closed.set()
        self._server.shutdown()
        self._server.server_close()


class CountingResolver:
    """host -> addresses from a table, counting the lookups; a name not in it does not exist."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.lookups: list[str] = []

    def __call__(self, host: str) -> list[str]:
        self.lookups.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.table[host]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def handle(self) -> None:
            with contextlib.suppress(OSError, ssl.SSLError):
                super().handle()

        def do_POST(self) -> None:  # the name http.server dispatches on
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            receiver.record(
                Received(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic()
                )
            )
            self._send(receiver.next_answer())

        def do_GET(self) -> None:
            receiver.record(
                Received(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, b"", time.monotonic()
                )
            )
            self._send(receiver.next_answer())

        def _send(self, answer: Answer) -> None:
            if answer.behaviour == "hang":
                receiver.closed.wait()
                return
            reason = self.responses.get(answer.status, ("Answer",))[0]
            head = f"HTTP/1.1 {answer.status} {reason}\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in answer.headers.items())
            if answer.behaviour == "headers":
                self._drip(head.encode() + b"X-Padding: " + b"a" * 1_000_000)
                return
            if answer.behaviour == "body":
                head += "Content-Length: 1000000\r\nConnection: close\r\n\r\n"
                self.wfile.write(head.encode())
                self._drip(b"a" * 1_000_000)
                return
            head += f"Content-Length: {len(answer.body)}\r\nConnection: close\r\n\r\n"
            self.wfile.write(head.encode() + answer.body)  # one write: no delayed-ACK stall
            self.close_connection = True

        def _drip(self, data: bytes) -> None:
            for byte in data:
                if receiver.closed.wait(DRIP_EVERY):
                    return
                try:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                except OSError:
                    return

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

    return Handler
