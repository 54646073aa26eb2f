"""The `dlrwatch` command's pieces: its arguments, its tables, the URLs it builds, the region it signs for and the
signature itself, with no network."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from botocore.credentials import ReadOnlyCredentials
from dlrwatch_cli.api import ApiError, Client, is_loopback, region_from_url
from dlrwatch_cli.main import main, parser
from dlrwatch_cli.tables import cell, key_values, table
from dlrwatch_cli.target import Target, TargetError, api_client, new_session

API = "https://abc123defg.execute-api.eu-west-1.amazonaws.com"
CREDENTIALS = ReadOnlyCredentials("AKIDEXAMPLE", "secret-example", None)


@dataclass
class Answer:
    status: int
    data: bytes


@dataclass
class RecordingHttp:
    """Stands where urllib3's pool manager does: records each request, answers each with ``answer``."""

    answer: Answer = field(default_factory=lambda: Answer(200, b"{}"))
    sent: list[dict[str, Any]] = field(default_factory=list)

    def request(
        self, method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Answer:
        self.sent.append({"method": method, "url": url, "body": body, "headers": headers or {}})
        return self.answer


def client(credentials: ReadOnlyCredentials | None = CREDENTIALS, base: str = API) -> tuple[Client, RecordingHttp]:
    http = RecordingHttp()
    return Client(base, credentials, "eu-west-1", http=http), http  # type: ignore[arg-type]


# -- arguments -------------------------------------------------------------------------------------------------


def test_target_options_mean_the_same_before_and_after_the_command() -> None:
    before = parser().parse_args(["--url", "http://127.0.0.1:3000", "--json", "status", "sevenio", "1"])
    after = parser().parse_args(["status", "sevenio", "1", "--url", "http://127.0.0.1:3000", "--json"])
    assert vars(before) == vars(after)
    assert (after.url, after.json, after.provider, after.message_id) == ("http://127.0.0.1:3000", True, "sevenio", "1")


def test_an_option_given_before_the_command_survives_the_command_s_parsing() -> None:
    args = parser().parse_args(["--stack", "dlrwatch-prod", "--region", "eu-west-1", "lookup", "+4917012", "--all"])
    assert (args.stack, args.region, args.url, args.json, args.all) == ("dlrwatch-prod", "eu-west-1", None, False, True)


@pytest.mark.parametrize(
    "argv",
    [
        [],  # no command
        ["--url", "http://127.0.0.1:1", "--stack", "s", "status", "sevenio", "1"],
        ["--url", "http://127.0.0.1:1", "status", "sevenio", "1", "--stack", "s"],  # one on each side
        ["--url", "http://127.0.0.1:1", "status", "sevenio"],  # no message id
        ["--url", "http://127.0.0.1:1", "lookup", "+4917012", "--limit", "0"],
        ["--url", "http://127.0.0.1:1", "register", "sevenio"],  # no message id, no --file
        ["--url", "http://127.0.0.1:1", "register", "sevenio", "1", "--file", "-"],  # both
        ["--url", "http://127.0.0.1:1", "register", "--file", "/nonexistent/batch.json"],
        ["--url", "http://127.0.0.1:1", "frobnicate"],
    ],
)
def test_a_usage_error_exits_2_without_a_request(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ended:
        main(argv)
    assert ended.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_forget_without_yes_refuses_when_no_one_can_answer(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # not a terminal: a script's "y" is no consent
    with pytest.raises(SystemExit) as ended:
        main(["--url", "http://127.0.0.1:9", "forget", "+491701234567"])
    assert ended.value.code == 2
    assert "--yes" in capsys.readouterr().err


def test_help_says_where_the_target_options_go(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ended:
        main(["--help"])
    assert ended.value.code == 0
    assert "go before or after the" in capsys.readouterr().out


# -- tables ----------------------------------------------------------------------------------------------------


def test_a_table_aligns_each_column_to_its_widest_cell() -> None:
    shown = table(("sent_at", "status", "final"), [["2026-11-22T10:00:00.000Z", "delivered", True], ["x", None, False]])
    assert shown.splitlines() == [
        "sent_at                   status     final",
        "2026-11-22T10:00:00.000Z  delivered  true",
        "x                         -          false",
    ]


def test_a_cell_never_breaks_its_row() -> None:
    assert cell("evil\nrow\x1b[31m") == "evil\\nrow\\x1b[31m"
    assert cell({"a": [1, 2]}) == '{"a":[1,2]}'
    assert "\n" not in table(("id",), [["a\r\nb"]]).splitlines()[1]


def test_key_values_align_values_and_leave_no_trailing_blanks() -> None:
    assert key_values({"provider": "sevenio", "next_poll_at": None, "x": ""}).splitlines() == [
        "provider      sevenio",
        "next_poll_at  -",
        "x",
    ]


# -- URLs and regions ------------------------------------------------------------------------------------------


def test_a_recipient_s_plus_is_sent_as_percent_2b() -> None:
    api, http = client()
    api.lookup("+49 170 1234567", since="2026-11-01T00:00:00+01:00", limit=10, next_token=None)
    assert http.sent[0]["url"] == (
        f"{API}/messages?recipient=%2B49%20170%201234567&since=2026-11-01T00%3A00%3A00%2B01%3A00&limit=10"
    )


def test_an_eapi_id_is_one_encoded_path_segment() -> None:
    api, http = client()
    api.read("bulksms-eapi", "4242:447700900001")
    api.read("sevenio", "../callbacks/sevenio")
    assert [sent["url"] for sent in http.sent] == [
        f"{API}/messages/bulksms-eapi/4242%3A447700900001",
        f"{API}/messages/sevenio/..%2Fcallbacks%2Fsevenio",
    ]


def test_forget_is_a_delete_of_the_recipient_s_messages() -> None:
    api, http = client(base=API + "/")
    api.forget("+491701234567")
    assert (http.sent[0]["method"], http.sent[0]["url"]) == ("DELETE", f"{API}/messages?recipient=%2B491701234567")


@pytest.mark.parametrize(
    ("url", "region"),
    [
        (API, "eu-west-1"),
        ("https://abc123.execute-api.us-gov-west-1.amazonaws.com/", "us-gov-west-1"),
        ("https://abc123.execute-api.cn-north-1.amazonaws.com.cn", "cn-north-1"),
        ("https://dlr.example.com", None),  # a custom domain says nothing
        ("https://abc123.execute-api.eu-west-1.amazonaws.com.evil.example", None),
        ("http://127.0.0.1:3000", None),
    ],
)
def test_the_region_comes_from_an_execute_api_host(url: str, region: str | None) -> None:
    assert region_from_url(url) == region


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:3000", True),
        ("http://127.1.2.3:3000", True),
        ("http://[::1]:3000", True),
        ("http://localhost:3000", True),
        ("http://10.0.0.5:3000", False),
        ("http://localhost.example.com", False),
        (API, False),
    ],
)
def test_loopback_is_this_machine_only(url: str, local: bool) -> None:
    assert is_loopback(url) is local


def test_an_explicit_region_wins_over_the_url_s() -> None:
    from dlrwatch_cli.target import resolve

    session = new_session(None)
    assert resolve(session, url=API, stack=None, region="us-east-1").region == "us-east-1"
    assert resolve(session, url=API, stack=None, region=None).region == "eu-west-1"
    assert resolve(session, url="https://dlr.example.com", stack=None, region=None).region == "eu-central-1"


# -- signing ---------------------------------------------------------------------------------------------------


def test_a_request_with_credentials_is_signed_for_execute_api_in_the_region() -> None:
    api, http = client(ReadOnlyCredentials("AKIDEXAMPLE", "secret-example", "session-token"))
    api.register({"messages": [{"provider": "sevenio", "message_id": "1"}]})
    headers = http.sent[0]["headers"]
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/execute-api/aws4_request" in headers["Authorization"]
    assert "content-type" in headers["Authorization"]  # the body's type is signed with it
    assert headers["X-Amz-Security-Token"] == "session-token"
    assert "X-Amz-Date" in headers
    assert http.sent[0]["body"] == b'{"messages": [{"provider": "sevenio", "message_id": "1"}]}'


def test_the_signature_covers_the_query_string_as_sent() -> None:
    api, http = client()
    api.lookup("+491701234567", since=None, limit=None, next_token=None)
    api.lookup("+491701234568", since=None, limit=None, next_token=None)
    first, second = (sent["headers"]["Authorization"].rsplit("Signature=", 1)[1] for sent in http.sent)
    assert first != second


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.usefixtures("no_credentials")
def test_loopback_without_credentials_is_sent_unsigned() -> None:
    api = api_client(new_session(None), Target("http://127.0.0.1:3000", None, None, None))
    assert api.credentials is None
    assert "Authorization" not in api.headers("GET", api.url("/messages/sevenio/1"), None)


@pytest.mark.usefixtures("no_credentials")
def test_aws_without_credentials_is_a_clear_error_before_any_request() -> None:
    with pytest.raises(TargetError, match="no AWS credentials found"):
        api_client(new_session(None), Target(API, "eu-west-1", None, None))


def test_loopback_with_credentials_is_signed_all_the_same() -> None:
    api = api_client(new_session(None), Target("http://127.0.0.1:3000", None, None, None))
    assert "Authorization" in api.headers("GET", api.url("/messages/sevenio/1"), None)


# -- answers ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (400, b'{"error": "recipient must be a phone number"}', "recipient must be a phone number"),
        (403, b'{"message": "Forbidden"}', "Forbidden"),  # API Gateway's own refusal
        (502, b"<html>Bad Gateway</html>", "HTTP 502"),
    ],
)
def test_a_refusal_is_an_api_error_with_its_message(status: int, body: bytes, message: str) -> None:
    api, http = client()
    http.answer = Answer(status, body)
    with pytest.raises(ApiError) as refused:
        api.read("sevenio", "1")
    assert (refused.value.status, refused.value.message) == (status, message)
