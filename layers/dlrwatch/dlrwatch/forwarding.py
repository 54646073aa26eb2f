"""Status callbacks to senders: which callback_url may be called, how a POST is signed, and one delivery attempt.

A callback_url comes from a sender and is called from inside AWS, so it is checked like any server-side request
to a user's URL (SSRF): https only, and every address its host resolves to must be a global one, checked here by
explicit lists beside ``ipaddress.is_global`` so that the answer does not depend on the Python version's table.
The attempt then connects to an address that was checked, never to a second lookup's answer (DNS rebinding).

Decisions:
- The URL is parsed here by a strict grammar, not by ``urllib.parse``: a URL that two parsers read differently
  (``http://2130706433/``, ``0177.0.0.1``, a backslash, ``user@host``) is refused, never interpreted.
- Only printable ASCII without spaces: an internationalised host is registered in its ``xn--`` form.
- A fragment is refused (it is never sent to the server, so a URL carrying one is not the URL that is called).
- A host that ends in a dot is refused (``example.com.`` would sidestep an exact FORWARD_ALLOWED_HOSTS entry's
  meaning and some TLS stacks' name checks).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import http.client
import ipaddress
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import certifi
import urllib3.exceptions
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError
from urllib3.util.ssl_ import create_urllib3_context
from urllib3.util.ssl_match_hostname import CertificateError

from dlrwatch.errors import BadInput

MAX_URL_LENGTH = 2048


class RefusedUrl(BadInput):
    """A callback_url that is never called (400). The message names the problem and at most the host."""


class ResolverUnavailable(RuntimeError):
    """DNS did not answer in time: the registration is answered 503, to be retried later."""


# host -> its addresses as strings. Raises socket.gaierror when the name does not exist, TimeoutError when DNS
# does not answer in time.
Resolver = Callable[[str], Sequence[str]]


@dataclass(frozen=True)
class CheckedUrl:
    url: str
    scheme: str
    # Lower case; an IPv6 literal without its brackets.
    host: str
    port: int
    # Path and query, as sent in the request line.
    target: str
    # The addresses to connect to, in the resolver's order; every one passed the check (or the host is allowed).
    addresses: tuple[str, ...]


def system_resolver(timeout: float = 2.0) -> Resolver:
    """``getaddrinfo`` with a deadline: it has none of its own (the system resolver may retry for 10 s or more),
    so it runs in a daemon thread and is abandoned, still running, once the deadline passes."""

    def resolve(host: str) -> Sequence[str]:
        outcome: list[Sequence[str] | BaseException] = []
        done = threading.Event()

        def lookup() -> None:
            try:
                infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
                outcome.append(list(dict.fromkeys(str(info[4][0]) for info in infos)))
            except BaseException as exc:  # handed over to the caller's thread
                outcome.append(exc)
            done.set()

        threading.Thread(target=lookup, name="resolve", daemon=True).start()
        if not done.wait(timeout):
            raise TimeoutError(f"no answer for {host} within {timeout:g} s")
        result = outcome[0]
        if isinstance(result, BaseException):
            raise result
        return result

    return resolve


_URL = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<authority>[^/?#]*)(?P<path>/[^?#]*)?(?:\?(?P<query>[^#]*))?"
    r"(?P<fragment>#.*)?",
    re.DOTALL,
)
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_NUMERIC_LABEL = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)")
_PORT = re.compile(r"[0-9]{1,5}")

# Refused whatever is_global says: the forms that embed or reach an IPv4 address, the metadata endpoints, and the
# ranges whose is_global answer changed between Python versions.
_REFUSED_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",  # shared address space (CGNAT)
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, with the metadata endpoint 169.254.169.254
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, with the broadcast address
        "::/96",  # unspecified, loopback and the deprecated IPv4-compatible form
        "::ffff:0:0/96",  # IPv4-mapped
        "::ffff:0:0:0/96",  # IPv4-translated
        "64:ff9b::/96",  # NAT64
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard
        "2001::/23",  # IETF protocol assignments, with Teredo (2001::/32); 3.13 calls parts of it global, 3.11 none
        "2001:db8::/32",  # documentation
        "2002::/16",  # 6to4
        "3fff::/20",  # documentation
        "fc00::/7",  # unique local, with the metadata endpoint fd00:ec2::254
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local
        "ff00::/8",  # multicast
    )
)


def check_url(url: str, *, allowed_hosts: frozenset[str], resolve: Resolver) -> CheckedUrl:
    """The callback_url as it will be called, or RefusedUrl naming why not (never the whole URL: it may carry a
    sender's token). ResolverUnavailable when DNS did not answer in time."""
    if not isinstance(url, str) or not url:
        raise RefusedUrl("callback_url must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise RefusedUrl(f"callback_url must be at most {MAX_URL_LENGTH} characters")
    if any(not "\x21" <= ch <= "\x7e" for ch in url):
        raise RefusedUrl("callback_url must be printable ASCII without spaces (an international host in xn-- form)")
    if "\\" in url:
        raise RefusedUrl("callback_url must not contain a backslash")
    parts = _URL.fullmatch(url)
    if parts is None:
        raise RefusedUrl("callback_url must be an absolute https URL")
    if parts["fragment"] is not None:
        raise RefusedUrl("callback_url must not have a fragment")
    host, port = _authority(parts["authority"], default_port=443 if parts["scheme"].lower() == "https" else 80)
    scheme = parts["scheme"].lower()
    allowed = _is_allowed(host, allowed_hosts)
    if scheme != "https" and not (scheme == "http" and allowed):
        raise RefusedUrl("callback_url must be https")
    target = (parts["path"] or "/") + (f"?{parts['query']}" if parts["query"] is not None else "")
    addresses = _addresses(host, resolve)
    if not allowed:
        for address in addresses:
            problem = address_problem(address)
            if problem and address == host:
                raise RefusedUrl(f"callback_url address {host} is {problem}")
            if problem:
                raise RefusedUrl(f"callback_url host {host} resolves to {address}, which is {problem}")
    return CheckedUrl(url=url, scheme=scheme, host=host, port=port, target=target, addresses=addresses)


def _is_allowed(host: str, allowed_hosts: frozenset[str]) -> bool:
    """Whether FORWARD_ALLOWED_HOSTS lists the host: exact and case-insensitive; an IPv6 address with or without
    its brackets."""
    allowed = {h.lower() for h in allowed_hosts}
    return host in allowed or f"[{host}]" in allowed


def _authority(authority: str, *, default_port: int) -> tuple[str, int]:
    """(host, port) of ``host[:port]``; the host lower case, an IPv6 literal without its brackets."""
    if "@" in authority:
        raise RefusedUrl("callback_url must not carry a user name or password")
    if authority.startswith("["):
        literal, sep, rest = authority[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise RefusedUrl("callback_url has a malformed host")
        if "%" in literal:
            raise RefusedUrl("callback_url has a malformed IPv6 address (zone ids are refused)")
        try:
            host = str(ipaddress.IPv6Address(literal))
        except ValueError:
            raise RefusedUrl("callback_url has a malformed IPv6 address (zone ids are refused)") from None
        port_text = rest[1:] if rest else None
    else:
        host, sep, port_text_ = authority.partition(":")
        port_text = port_text_ if sep else None
        host = host.lower()
        _check_host_name(host)
    if port_text is None:
        return host, default_port
    if not _PORT.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
        raise RefusedUrl("callback_url port must be a number from 1 to 65535")
    return host, int(port_text)


def _check_host_name(host: str) -> None:
    """A DNS name of letters, digits, hyphens (and underscores), or an IPv4 address in its canonical dotted form.
    A host whose last label is numeric is an IPv4 address to URL parsers (WHATWG), which also read
    ``2130706433``, ``0x7f.1`` and ``0177.0.0.1`` as 127.0.0.1: anything but the canonical form is refused."""
    if not host:
        raise RefusedUrl("callback_url must name a host")
    if len(host) > 253:
        raise RefusedUrl("callback_url host is longer than 253 characters")
    labels = host.split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        try:
            canonical = str(ipaddress.IPv4Address(host))
        except ValueError:
            canonical = ""
        if canonical != host:
            raise RefusedUrl("callback_url host is a number but not an IPv4 address in dotted decimal form")
        return
    if not all(_LABEL.fullmatch(label) for label in labels):
        raise RefusedUrl("callback_url has a malformed host name")


def _addresses(host: str, resolve: Resolver) -> tuple[str, ...]:
    try:
        return (str(ipaddress.ip_address(host)),)
    except ValueError:
        pass
    try:
        found = resolve(host)
    except TimeoutError:
        raise ResolverUnavailable(f"no DNS answer for the callback_url host {host} in time") from None
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_AGAIN:
            raise ResolverUnavailable(f"DNS failed for the callback_url host {host}, retry later") from None
        raise RefusedUrl(f"callback_url host {host} does not exist") from None
    except OSError:
        raise ResolverUnavailable(f"DNS failed for the callback_url host {host}, retry later") from None
    addresses = tuple(dict.fromkeys(str(a) for a in found))
    if not addresses:
        raise RefusedUrl(f"callback_url host {host} has no address")
    return addresses


def address_problem(address: str) -> str | None:
    """Why an address may not be called (e.g. "not a global address"), or None for a global unicast address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        return "a scoped (link-local) address"
    if any(ip in net for net in _REFUSED_NETWORKS if net.version == ip.version):
        return "not a global address"
    if not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified:
        return "not a global address"
    return None


# -- signing ---------------------------------------------------------------------------------------------------


def signing_keys(secret: str) -> list[bytes]:
    """The keys in the FORWARD_SIGNING_KEY secret: one, or two separated by a comma while rotating (new first)."""
    keys = [part.strip() for part in secret.split(",")]
    if not 1 <= len(keys) <= 2 or not all(keys):
        raise ValueError("FORWARD_SIGNING_KEY must hold one key, or two separated by a comma while rotating")
    return [key.encode("utf-8") for key in keys]


def signature(keys: Sequence[bytes], timestamp: int, body: bytes) -> str:
    """``X-Dlrwatch-Signature``: ``v1=<hex HMAC-SHA256 of "{timestamp}.{body}">`` per key, comma-separated."""
    signed = f"{timestamp}.".encode() + body
    return ",".join(f"v1={hmac.new(key, signed, hashlib.sha256).hexdigest()}" for key in keys)


# -- one delivery attempt ----------------------------------------------------------------------------------------

# What is read of an answer's body: nothing in it is used, and a sender's endpoint may answer with megabytes.
MAX_ANSWER_BYTES = 4096


@dataclass(frozen=True)
class Attempt:
    status: int | None  # the answer's HTTP status; None when there was no answer
    outcome: Literal["delivered", "retry", "refused"]
    reason: str  # for a log line: never the URL, never the body


def outcome_of(status: int) -> Literal["delivered", "retry", "refused"]:
    """2xx delivered; 429 and 5xx retried; 3xx (never followed) and every other 4xx refused."""
    if 200 <= status <= 299:
        return "delivered"
    if status == 429 or 500 <= status <= 599:
        return "retry"
    return "refused"


def post(
    checked: CheckedUrl,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout: float = 5.0,
    ca_certs: str | None = None,
) -> Attempt:
    """POST ``body`` to a checked URL, connecting to its checked addresses in turn (the next one only when a
    connection could not be made), within ``timeout`` in all.

    A socket timeout bounds each read, not the attempt: an endpoint that drips its answer a byte at a time would
    stretch it for ever. So a watchdog shuts the connection's socket down when the time is up, whatever phase the
    attempt is in (connect, TLS handshake, request, headers, body). Redirects are not followed and nothing is
    retried here: the forward queue retries on the schedule.
    """
    deadline = _Deadline(timeout)
    host_header = f"[{checked.host}]" if ":" in checked.host else checked.host
    if checked.port != (443 if checked.scheme == "https" else 80):
        host_header += f":{checked.port}"
    sent = {"Host": host_header, "User-Agent": "dlrwatch", **headers}
    failure = Attempt(None, "retry", "no address to connect to")
    _current.deadline = deadline
    try:
        for address in checked.addresses:
            left = deadline.left()
            if left <= 0:
                return Attempt(None, "retry", f"no answer within {timeout:g} s")
            connection = _connection(checked, address, left, ca_certs)
            try:
                try:
                    connection.connect()
                except NewConnectionError as exc:
                    failure = Attempt(None, "retry", f"connection failed: {_errno_text(exc)}")
                    continue
                return _exchange(connection, checked.target, body, sent, deadline)
            except Exception as exc:
                return _failed(exc, deadline, timeout)
            finally:
                connection.close()
        return failure
    finally:
        _current.deadline = None
        deadline.cancel()


def _exchange(
    connection: HTTPConnection, target: str, body: bytes, headers: Mapping[str, str], deadline: _Deadline
) -> Attempt:
    connection.request("POST", target, body=body, headers=headers, preload_content=False, decode_content=False)
    answer = connection.getresponse()
    status = answer.status
    # Read a little of the body, so a short answer ends cleanly; the outcome is decided already.
    with contextlib.suppress(Exception):
        if deadline.left() > 0:
            answer.read(MAX_ANSWER_BYTES)
    outcome = outcome_of(status)
    if 300 <= status <= 399:
        return Attempt(status, outcome, f"HTTP {status}: redirect not followed")
    return Attempt(status, outcome, f"HTTP {status}")


def _failed(exc: Exception, deadline: _Deadline, timeout: float) -> Attempt:
    """An attempt that got no answer: retried, whatever the cause (a certificate the sender will renew as well)."""
    if deadline.expired or isinstance(exc, TimeoutError | ConnectTimeoutError | ReadTimeoutError):
        return Attempt(None, "retry", f"no answer within {timeout:g} s")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return Attempt(None, "retry", f"TLS certificate refused: {exc.verify_message}")
    if isinstance(exc, CertificateError):
        return Attempt(None, "retry", "TLS certificate refused: not valid for the host")
    if isinstance(exc, ssl.SSLError | urllib3.exceptions.SSLError):
        return Attempt(None, "retry", "TLS failed")
    if isinstance(exc, http.client.HTTPException | urllib3.exceptions.ProtocolError):
        return Attempt(None, "retry", f"malformed or missing answer ({type(exc).__name__})")
    if isinstance(exc, OSError | urllib3.exceptions.HTTPError):
        return Attempt(None, "retry", f"connection failed: {_errno_text(exc)}")
    raise exc


def _errno_text(exc: BaseException) -> str:
    """What went wrong in a connection, without the text of exceptions that may carry a URL."""
    while exc.__cause__ is not None and not isinstance(exc, OSError):
        exc = exc.__cause__
    if isinstance(exc, OSError) and exc.errno is not None:
        return os.strerror(exc.errno)
    return type(exc).__name__


class _Deadline:
    """Shuts down every socket it watches once ``seconds`` have passed."""

    def __init__(self, seconds: float) -> None:
        self._at = time.monotonic() + seconds
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.expired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def left(self) -> float:
        return max(self._at - time.monotonic(), 0.0)

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def cancel(self) -> None:
        self._timer.cancel()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    """End a socket's use from another thread. shutdown() wakes a read blocked on it (close() does not), but Linux
    still hands over bytes that arrive after it, so a dripping peer would keep a read loop going: the socket's
    timeout, which each wait reads anew, is cut too, and the next wait for a byte fails at once."""
    with contextlib.suppress(OSError):
        sock.settimeout(0.001)
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the TCP socket's, also under TLS


# The deadline of the attempt a thread is making: the sockets it opens find it here, however deep in urllib3 and
# ssl they are made.
_current = threading.local()


def _watch(sock: socket.socket) -> None:
    deadline: _Deadline | None = getattr(_current, "deadline", None)
    if deadline is not None:
        deadline.watch(sock)


class _WatchedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _watch(sock)
        return sock


class _WatchedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _watch(sock)
        return sock


class _WatchedSSLSocket(ssl.SSLSocket):
    """Wrapping a socket in TLS makes a new socket object (the TCP one is detached): this one is watched from
    its handshake on, so a handshake dripped a byte at a time is cut off too."""

    def do_handshake(self, block: bool = False) -> None:
        _watch(self)
        super().do_handshake(block)


@functools.cache
def _tls_context(ca_certs: str) -> ssl.SSLContext:
    """Certificates verified against ``ca_certs`` (certifi's bundle on AWS); made once, its CA file read once."""
    context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
    # urllib3 matches the name itself (assert_hostname) and sets this on every connection anyway: set once here,
    # a context shared by a batch's threads is never changed while one of them is handshaking.
    context.check_hostname = False
    context.load_verify_locations(cafile=ca_certs)
    context.sslsocket_class = _WatchedSSLSocket
    return context


def _connection(checked: CheckedUrl, address: str, timeout: float, ca_certs: str | None) -> HTTPConnection:
    """A connection to ``address``; under TLS the certificate is checked for the URL's host (SNI too)."""
    if checked.scheme == "https":
        return _WatchedHTTPSConnection(
            address,
            checked.port,
            timeout=timeout,
            ssl_context=_tls_context(ca_certs or certifi.where()),
            cert_reqs="CERT_REQUIRED",
            server_hostname=checked.host,
            assert_hostname=checked.host,
        )
    return _WatchedHTTPConnection(address, checked.port, timeout=timeout)
