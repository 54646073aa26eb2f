"""Which callback_url may be called, and how a status callback is signed. No network: names resolve through a
table, as the forwarder's injected resolver lets them."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from dlrwatch.forwarding import (
    CheckedUrl,
    RefusedUrl,
    ResolverUnavailable,
    address_problem,
    check_url,
    signature,
    signing_keys,
    system_resolver,
)

GLOBAL_V4 = "93.184.215.14"
GLOBAL_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"


class TableResolver:
    """host -> addresses from a table; an exception in the table is raised; a name not in it does not exist."""

    def __init__(self, table: dict[str, list[str] | BaseException]) -> None:
        self.table = table
        self.asked: list[str] = []

    def __call__(self, host: str) -> list[str]:
        self.asked.append(host)
        answer = self.table.get(host, socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
        if isinstance(answer, BaseException):
            raise answer
        return answer


RESOLVE = TableResolver(
    {
        "hooks.example.com": [GLOBAL_V4, GLOBAL_V6],
        "example.internal": ["10.0.0.5"],
        "sub.example.internal": ["10.0.0.6"],
        "half.example.com": [GLOBAL_V4, "192.168.1.20"],
        "mapped.example.com": ["::ffff:10.0.0.5"],
        "metadata.example.com": ["169.254.169.254"],
        "cgnat.example.com": ["100.64.12.1"],
        "slow.example.com": TimeoutError("no answer"),
        "flaky.example.com": socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),
        "empty.example.com": [],
        "localhost": ["127.0.0.1", "::1"],
        "xn--bcher-kva.example": [GLOBAL_V4],
    }
)


def check(url: str, allowed: frozenset[str] = frozenset()) -> CheckedUrl:
    return check_url(url, allowed_hosts=allowed, resolve=RESOLVE)


def refusal(url: str, allowed: frozenset[str] = frozenset()) -> str:
    with pytest.raises(RefusedUrl) as refused:
        check(url, allowed)
    return str(refused.value)


def test_a_global_https_url_is_called_at_every_address_it_resolves_to() -> None:
    checked = check("https://Hooks.Example.com/dlr/42?token=abc&x=1")

    assert checked == CheckedUrl(
        url="https://Hooks.Example.com/dlr/42?token=abc&x=1",
        scheme="https",
        host="hooks.example.com",
        port=443,
        target="/dlr/42?token=abc&x=1",
        addresses=(GLOBAL_V4, GLOBAL_V6),
    )


def test_a_url_without_a_path_posts_to_the_root_and_keeps_its_port() -> None:
    checked = check("https://hooks.example.com:8443")

    assert (checked.port, checked.target) == (8443, "/")


def test_an_address_literal_is_checked_as_an_address_without_a_lookup() -> None:
    asked = len(RESOLVE.asked)

    assert check(f"https://{GLOBAL_V4}/cb").addresses == (GLOBAL_V4,)
    assert check(f"https://[{GLOBAL_V6}]:8443/cb").addresses == (GLOBAL_V6,)
    assert len(RESOLVE.asked) == asked


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://hooks.example.com/cb", "callback_url must be https"),
        ("ftp://hooks.example.com/cb", "callback_url must be https"),
        ("//hooks.example.com/cb", "callback_url must be an absolute https URL"),
        ("hooks.example.com/cb", "callback_url must be an absolute https URL"),
        ("https:///cb", "callback_url must name a host"),
        ("https://user:pass@hooks.example.com/cb", "user name or password"),
        ("https://hooks.example.com@evil.example/cb", "user name or password"),
        ("https://hooks.example.com/cb#frag", "callback_url must not have a fragment"),
        ("https://hooks.example.com:0/cb", "port must be a number from 1 to 65535"),
        ("https://hooks.example.com:65536/cb", "port must be a number from 1 to 65535"),
        ("https://hooks.example.com:https/cb", "port must be a number from 1 to 65535"),
        ("https://hooks.example.com/a b", "printable ASCII"),
        ("https://hooks.example.com/\x00", "printable ASCII"),
        ("https://bücher.example/cb", "printable ASCII"),
        ("https://hooks.example.com\\@evil.example/", "backslash"),
        ("https://hooks.example.com./cb", "malformed host name"),
        ("https://hooks..example.com/cb", "malformed host name"),
        ("https://-hooks.example.com/cb", "malformed host name"),
        ("https://[fe80::1%25eth0]/cb", "malformed IPv6 address"),
        ("https://[::1/cb", "malformed host"),
        ("https://hooks.example.com/" + "a" * 2048, "at most 2048 characters"),
        ("", "non-empty string"),
    ],
)
def test_a_malformed_or_ambiguous_url_is_refused_naming_the_problem(url: str, problem: str) -> None:
    assert problem in refusal(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://2130706433/",  # 127.0.0.1 as one number, to WHATWG parsers and inet_aton
        "http://2130706433/",
        "https://0177.0.0.1/",  # octal
        "https://0x7f.0.0.1/",  # hex
        "https://0x7f000001/",
        "https://127.1/",  # shortened
        "https://127.000.000.001/",
        "https://10.0.0.05/",
        "https://1.2.3.4.5/",
    ],
)
def test_a_number_that_is_not_an_ipv4_address_in_dotted_decimal_is_refused(url: str) -> None:
    assert "dotted decimal" in refusal(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/",
        "https://0.0.0.0/",
        "https://10.1.2.3/",
        "https://172.16.0.1/",
        "https://192.168.0.1/",
        "https://100.64.0.1/",  # shared address space (CGNAT)
        "https://169.254.169.254/latest/meta-data/",  # the instance metadata endpoint
        "https://169.254.1.1/",
        "https://224.0.0.1/",  # multicast
        "https://255.255.255.255/",
        "https://240.0.0.1/",
        "https://192.0.2.10/",  # documentation
        "https://[::1]/",
        "https://[::]/",
        "https://[::ffff:127.0.0.1]/",  # IPv4-mapped
        "https://[::ffff:8.8.8.8]/",  # IPv4-mapped, even of a global address
        "https://[::127.0.0.1]/",  # IPv4-compatible (deprecated)
        "https://[64:ff9b::a00:5]/",  # NAT64 of 10.0.0.5
        "https://[64:ff9b::808:808]/",  # NAT64, even of a global address
        "https://[2002:a00:5::1]/",  # 6to4 of 10.0.0.5
        "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",  # Teredo
        "https://[fd00:ec2::254]/",  # the instance metadata endpoint over IPv6
        "https://[fc00::1]/",
        "https://[fe80::1]/",
        "https://[ff02::1]/",
        "https://[2001:db8::1]/",
    ],
)
def test_an_address_that_is_not_global_is_refused(url: str) -> None:
    problem = refusal(url)

    assert "is not a global address" in problem
    assert "callback_url address" in problem


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("example.internal", "10.0.0.5"),
        ("half.example.com", "192.168.1.20"),
        ("mapped.example.com", "::ffff:10.0.0.5"),
        ("metadata.example.com", "169.254.169.254"),
        ("cgnat.example.com", "100.64.12.1"),
        ("localhost", "127.0.0.1"),
    ],
)
def test_a_name_with_any_address_that_is_not_global_is_refused_naming_host_and_address(host: str, address: str) -> None:
    problem = refusal(f"https://{host}/cb?token=sender-secret")

    assert problem == f"callback_url host {host} resolves to {address}, which is not a global address"
    assert "sender-secret" not in problem


def test_a_name_that_does_not_exist_is_refused() -> None:
    assert refusal("https://nosuch.example/cb") == "callback_url host nosuch.example does not exist"


def test_a_name_without_addresses_is_refused() -> None:
    assert refusal("https://empty.example.com/cb") == "callback_url host empty.example.com has no address"


@pytest.mark.parametrize("host", ["slow.example.com", "flaky.example.com"])
def test_dns_that_does_not_answer_is_unavailable_not_a_refusal(host: str) -> None:
    with pytest.raises(ResolverUnavailable) as unavailable:
        check(f"https://{host}/cb?token=sender-secret")

    assert host in str(unavailable.value)
    assert "sender-secret" not in str(unavailable.value)


def test_an_idn_host_in_its_xn_form_is_accepted() -> None:
    assert check("https://xn--bcher-kva.example/cb").host == "xn--bcher-kva.example"


def test_an_allowed_host_may_resolve_anywhere_and_use_http() -> None:
    allowed = frozenset({"localhost", "example.internal"})

    local = check("http://LocalHost:3000/hook", allowed)
    internal = check("https://example.internal/hook", allowed)

    assert (local.scheme, local.host, local.port, local.addresses) == ("http", "localhost", 3000, ("127.0.0.1", "::1"))
    assert internal.addresses == ("10.0.0.5",)


def test_allowed_hosts_are_exact_and_case_insensitive() -> None:
    allowed = frozenset({"Example.Internal", "127.0.0.1", "[::1]"})

    assert check("https://EXAMPLE.internal/", allowed).addresses == ("10.0.0.5",)
    assert check("http://127.0.0.1:8080/", allowed).addresses == ("127.0.0.1",)
    assert check("http://[::1]:8080/", allowed).addresses == ("::1",)
    assert "not a global address" in refusal("https://sub.example.internal/", allowed)
    assert "must be https" in refusal("http://hooks.example.com/", allowed)


def test_an_allowed_host_still_must_exist() -> None:
    assert "does not exist" in refusal("http://nosuch.example/", frozenset({"nosuch.example"}))


def test_the_explicit_lists_refuse_what_some_python_versions_call_global() -> None:
    # 3.11 and 3.13 disagree on parts of these ranges; the check does not depend on either's table.
    for address in ("100.64.0.1", "192.0.0.9", "2001:1::1", "2001:3::1", "64:ff9b:1::1", "::ffff:1.2.3.4"):
        assert address_problem(address) is not None, address
    assert address_problem(GLOBAL_V4) is None
    assert address_problem(GLOBAL_V6) is None


# -- signing ------------------------------------------------------------------------------------------------------

TIMESTAMP = 1_795_000_000
BODY = b'{"event_id":"e1","sequence":3}'
# Computed outside Python: printf '%s' '1795000000.{"event_id":"e1","sequence":3}' | openssl dgst -sha256 -hmac KEY
NEW_KEY_VECTOR = "c64232b460202f947feb6490d50c9125f5675491c9633f91aa62c6d61a0e4404"
OLD_KEY_VECTOR = "aee939f464209f285298472f9d03fdd377c15f5541b7b6bf713e58433057c7c1"


def test_the_signature_is_the_hmac_of_timestamp_dot_body() -> None:
    assert signature(signing_keys("forward-key-new"), TIMESTAMP, BODY) == f"v1={NEW_KEY_VECTOR}"


def test_while_rotating_both_keys_sign_the_new_one_first() -> None:
    keys = signing_keys("forward-key-new, forward-key-old")

    assert signature(keys, TIMESTAMP, BODY) == f"v1={NEW_KEY_VECTOR},v1={OLD_KEY_VECTOR}"


@pytest.mark.parametrize("secret", ["", ",", "a,", "a,b,c"])
def test_a_signing_secret_that_is_not_one_or_two_keys_is_refused(secret: str) -> None:
    with pytest.raises(ValueError, match="one key, or two"):
        signing_keys(secret)


# -- the system resolver --------------------------------------------------------------------------------------------


def test_the_system_resolver_answers_a_name_from_the_hosts_file() -> None:
    assert "127.0.0.1" in system_resolver()("localhost")


def test_the_system_resolver_gives_up_at_its_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    # getaddrinfo has no timeout of its own: a resolver that hangs must not hold up a registration.
    released = threading.Event()
    monkeypatch.setattr(socket, "getaddrinfo", lambda *_, **__: released.wait(30))
    started = time.monotonic()

    with pytest.raises(TimeoutError):
        system_resolver(timeout=1.0)("hooks.example.com")

    assert time.monotonic() - started < 3
    released.set()


def test_the_system_resolver_passes_on_a_name_that_does_not_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    def nxdomain(*_: object, **__: object) -> list[object]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", nxdomain)

    with pytest.raises(RefusedUrl, match="does not exist"):
        check_url("https://nosuch.example/", allowed_hosts=frozenset(), resolve=system_resolver())
