"""One delivery attempt (forwarding.post) against loopback receivers: TLS to the checked address under the
URL's name, no redirects, and a total deadline that neither silence nor a dripped answer stretches."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from support.receivers import NAME, Answer, CallbackCA, CountingResolver, Receiver, make_callback_ca

from dlrwatch.forwarding import Attempt, CheckedUrl, check_url, post

ALLOWED = frozenset({NAME})
BODY = b'{"event_id":"e1","sequence":1,"status":"delivered"}'
HEADERS = {"Content-Type": "application/json", "X-Dlrwatch-Event-Id": "e1"}


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> CallbackCA:
    return make_callback_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def https_receiver(test_ca: CallbackCA) -> Iterator[Receiver]:
    with Receiver(tls=test_ca) as receiver:
        yield receiver


@pytest.fixture
def http_receiver() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


def checked(receiver: Receiver, resolver: CountingResolver | None = None) -> CheckedUrl:
    return check_url(receiver.url(), allowed_hosts=ALLOWED, resolve=resolver or receiver.resolver())


def timed_post(target: CheckedUrl, ca: CallbackCA | None = None) -> tuple[Attempt, float]:
    started = time.monotonic()
    attempt = post(target, BODY, HEADERS, ca_certs=str(ca.ca_file) if ca else None)
    return attempt, time.monotonic() - started


def test_https_reaches_the_checked_address_under_the_urls_name_with_one_lookup(
    https_receiver: Receiver, test_ca: CallbackCA
) -> None:
    # callback.test exists only in this resolver: had post() looked the name up again, it could not connect.
    resolver = https_receiver.resolver()
    target = checked(https_receiver, resolver)

    attempt, _ = timed_post(target, test_ca)

    assert attempt == Attempt(200, "delivered", "HTTP 200")
    assert resolver.lookups == [NAME]
    [request] = https_receiver.requests
    assert (request.method, request.path, request.body) == ("POST", "/hook?token=sender-secret", BODY)
    assert request.headers["host"] == f"{NAME}:{https_receiver.port}"
    assert request.headers["x-dlrwatch-event-id"] == "e1"


def test_a_certificate_for_another_name_is_refused_and_retried(https_receiver: Receiver, test_ca: CallbackCA) -> None:
    # The same server and address, reached under a name its certificate does not carry.
    resolver = CountingResolver({"other.test": ["127.0.0.1"]})
    target = check_url(
        f"https://other.test:{https_receiver.port}/hook", allowed_hosts=frozenset({"other.test"}), resolve=resolver
    )

    attempt, _ = timed_post(target, test_ca)

    assert (attempt.status, attempt.outcome) == (None, "retry")
    assert "TLS" in attempt.reason
    assert https_receiver.requests == []


def test_a_certificate_from_an_unknown_ca_is_refused_and_retried(https_receiver: Receiver) -> None:
    attempt, _ = timed_post(checked(https_receiver))  # certifi's CAs, which never signed the test CA's certificate

    assert (attempt.status, attempt.outcome) == (None, "retry")
    assert "TLS certificate refused" in attempt.reason
    assert https_receiver.requests == []


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, "delivered"), (204, "delivered"), (429, "retry"), (500, "retry"), (503, "retry"), (404, "refused")],
)
def test_the_answer_decides_the_outcome(http_receiver: Receiver, status: int, outcome: str) -> None:
    http_receiver.answer(Answer(status))

    attempt, _ = timed_post(checked(http_receiver))

    assert (attempt.status, attempt.outcome) == (status, outcome)


def test_a_redirect_is_not_followed(http_receiver: Receiver) -> None:
    http_receiver.answer(Answer(301, {"Location": http_receiver.url("/elsewhere")}))

    attempt, _ = timed_post(checked(http_receiver))

    assert attempt == Attempt(301, "refused", "HTTP 301: redirect not followed")
    assert [r.path for r in http_receiver.requests] == ["/hook?token=sender-secret"]


def test_an_address_that_refuses_connections_is_skipped_for_the_next_checked_one(http_receiver: Receiver) -> None:
    # The receiver listens on 127.0.0.1 only: 127.0.0.2 refuses the connection at once.
    resolver = CountingResolver({NAME: ["127.0.0.2", "127.0.0.1"]})

    attempt, _ = timed_post(checked(http_receiver, resolver))

    assert attempt.outcome == "delivered"
    assert len(http_receiver.requests) == 1


def test_no_address_accepting_is_a_connection_failure_to_retry(http_receiver: Receiver) -> None:
    resolver = CountingResolver({NAME: ["127.0.0.2"]})

    attempt, elapsed = timed_post(checked(http_receiver, resolver))

    assert (attempt.status, attempt.outcome) == (None, "retry")
    assert attempt.reason.startswith("connection failed")
    assert elapsed < 4


def test_a_receiver_that_never_answers_is_given_up_at_the_deadline(
    https_receiver: Receiver, test_ca: CallbackCA
) -> None:
    https_receiver.answer(Answer(behaviour="hang"))

    attempt, elapsed = timed_post(checked(https_receiver), test_ca)

    assert attempt == Attempt(None, "retry", "no answer within 5 s")
    assert 4 < elapsed < 8


def test_headers_dripped_a_byte_at_a_time_do_not_stretch_the_attempt(
    https_receiver: Receiver, test_ca: CallbackCA
) -> None:
    https_receiver.answer(Answer(behaviour="headers"))

    attempt, elapsed = timed_post(checked(https_receiver), test_ca)

    assert attempt == Attempt(None, "retry", "no answer within 5 s")
    assert elapsed < 8


def test_a_body_dripped_a_byte_at_a_time_does_not_stretch_the_attempt(http_receiver: Receiver) -> None:
    # The status arrived in time: the answer counts, and the endless body is cut off at the deadline.
    http_receiver.answer(Answer(200, behaviour="body"))

    attempt, elapsed = timed_post(checked(http_receiver))

    assert attempt.outcome == "delivered"
    assert elapsed < 8
