"""The HTTP side of polling: one client per provider, and the one place network faults are classified.

A provider's answer is not trusted further than it should be (SPEC.md, "Polling"):

- a redirect is never followed, so a credential (seven.io's ``X-Api-Key`` header, the EAPI password in a form
  body) never leaves for another origin; the 3xx itself comes back to the caller;
- a call has one total deadline, whatever the server does: a socket timeout bounds each read, not their sum,
  and a body dripping one byte a second would never trip it. A timer shuts the call's connection at the
  deadline instead, which ends any read in progress;
- an answer larger than ``MAX_ANSWER_BYTES`` is garbage (the largest real one, 50 seven.io ids, is ~5 KB).
"""

from __future__ import annotations

import codecs
import contextlib
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

import certifi
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError, NewConnectionError, ProtocolError, SSLError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from dlrwatch.observability import logger
from dlrwatch.providers.base import PollConfig, PollResult, ProviderError

MAX_ANSWER_BYTES = 1024 * 1024
# Connecting to a provider takes milliseconds; a call never spends more than this of its deadline on it.
CONNECT_MAX = 3.0
USER_AGENT = "dlrwatch/0.1 (+delivery status poller)"


@dataclass(frozen=True)
class Answer:
    """A provider's answer, read in full within the call's deadline (fits ``providers.base.HttpResponse``)."""

    status_code: int
    headers: Mapping[str, str]
    text: str


class ProviderHttp:
    """One provider's HTTP client: its connections reused across calls; retries are the poller's own.

    urllib3 itself (botocore's own HTTP library), not a client built on it: polling needs GET and POST with a
    query, a form, a header or basic auth, and nothing else is worth its import on every cold start.
    """

    def __init__(self, pool_size: int) -> None:
        self.pool = urllib3.PoolManager(num_pools=2, maxsize=max(pool_size, 1), retries=False, ca_certs=certifi.where())
        self.pool.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}

    def within(self, seconds: float) -> DeadlineSession:
        """A session whose calls all end within ``seconds`` from now."""
        return DeadlineSession(self, time.monotonic() + seconds)

    def call(
        self,
        method: str,
        url: str,
        deadline: float,
        *,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> Answer:
        """One request, its answer read in full by ``deadline`` (a ``time.monotonic`` time).

        ``params`` go in the query string, ``data`` is sent as a form, ``auth`` as HTTP basic credentials.
        """
        left = deadline - time.monotonic()
        if left <= 0:
            raise ProviderError("timeout")
        sent = {"User-Agent": USER_AGENT, **(headers or {})}
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params)
        body = None
        if data is not None:
            body = urlencode(data)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        if auth is not None:
            sent.update(urllib3.util.make_headers(basic_auth=f"{auth[0]}:{auth[1]}"))
        watch = _Watch()
        timer = threading.Timer(left, watch.expire)
        timer.daemon = True
        _watches.current = watch
        timer.start()
        try:
            response = self.pool.request(
                method,
                url,
                body=body,
                headers=sent,
                timeout=urllib3.Timeout(connect=min(CONNECT_MAX, left), read=left),
                redirect=False,
                preload_content=False,
            )
            try:
                content = _read(response)
            finally:
                response.release_conn()
            return Answer(response.status, response.headers, content.decode(_charset(response), "replace"))
        except (HTTPError, OSError):
            if watch.expired:
                raise ProviderError("timeout") from None
            raise
        finally:
            timer.cancel()
            _watches.current = None


@dataclass(frozen=True)
class DeadlineSession:
    """What a provider module calls (``providers.base.HttpSession``): GET and POST, bounded by one deadline."""

    http: ProviderHttp
    deadline: float

    def get(self, url: str, **options: Any) -> Answer:
        return self.http.call("GET", url, self.deadline, **options)

    def post(self, url: str, **options: Any) -> Answer:
        return self.http.call("POST", url, self.deadline, **options)


def fetch(
    provider: ModuleType, http: ProviderHttp, config: PollConfig, message_ids: list[str], seconds: float
) -> dict[str, PollResult]:
    """One status call, over within ``seconds``; every way it can fail comes back as a ProviderError."""
    try:
        answer: dict[str, PollResult] = provider.poll(http.within(seconds), config, message_ids)
    except ProviderError:
        raise
    except Urllib3Timeout:
        raise ProviderError("timeout") from None
    except (NewConnectionError, ProtocolError, SSLError, ConnectionError):
        raise ProviderError("connection") from None
    except (HTTPError, OSError):
        raise ProviderError("request") from None
    except Exception:
        # A parser that still fails on some answer must not fail the run for every other message: the call's
        # messages are retried later, and the log says what broke.
        logger.exception("a provider answer could not be handled", extra={"provider": provider.NAME})
        raise ProviderError("unexpected") from None
    return answer


def _read(response: urllib3.BaseHTTPResponse) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.stream(64 * 1024):
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise ProviderError("garbage")
        chunks.append(chunk)
    return b"".join(chunks)


def _charset(response: urllib3.BaseHTTPResponse) -> str:
    """The answer's declared charset if Python knows it, else UTF-8 (what the providers send)."""
    for part in response.headers.get("Content-Type", "").split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.lower() == "charset":
            with contextlib.suppress(LookupError):
                return codecs.lookup(value.strip().strip('"')).name
    return "utf-8"


# -- the deadline timer's hold on the call's connection ----------------------------------------------------


class _Watch:
    """One call in flight: the socket it uses, shut down if the call outlives its deadline.

    The socket itself is held, not the connection: when a server answers ``Connection: close``, http.client lets go
    of the connection's socket (``sock = None``) while the answer is still being read from it.
    """

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.expired = False
        self._lock = threading.Lock()

    def attach(self, sock: socket.socket | None) -> None:
        with self._lock:
            self.sock = sock
            late = self.expired
        if late:  # the deadline passed while connecting: cut now, before any answer is read
            _shut(sock)

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            sock = self.sock
        _shut(sock)


def _shut(sock: socket.socket | None) -> None:
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked read at once; close() alone would not


_watches = threading.local()


def _watched(sock: socket.socket | None) -> None:
    """Hand the socket a request just went out on to the calling thread's watch, if a call is being watched."""
    watch: _Watch | None = getattr(_watches, "current", None)
    if watch is not None:
        watch.attach(sock)


class _WatchedHTTPConnection(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        super().request(*args, **kwargs)
        _watched(self.sock)


class _WatchedHTTPSConnection(HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        super().request(*args, **kwargs)
        _watched(self.sock)


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection
