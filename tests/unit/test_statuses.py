"""Every raw provider status lands on the normalized status the spec's table and the provider docs give it."""

from __future__ import annotations

import pytest

from dlrwatch.domain.status import Status
from dlrwatch.providers import PROVIDERS, bulksms, bulksms_eapi, sevenio

PENDING, SENT, BUFFERED, UNKNOWN = Status.PENDING, Status.SENT, Status.BUFFERED, Status.UNKNOWN
DELIVERED, FAILED, EXPIRED, REJECTED = Status.DELIVERED, Status.FAILED, Status.EXPIRED, Status.REJECTED

# providers/sevenio.md, "Statuses"
SEVENIO = [
    ("ACCEPTED", SENT),
    ("TRANSMITTED", SENT),
    ("BUFFERED", BUFFERED),
    ("DELIVERED", DELIVERED),
    ("NOTDELIVERED", FAILED),
    ("EXPIRED", EXPIRED),
    ("REJECTED", REJECTED),
    ("FAILED", FAILED),
    ("UNKNOWN", UNKNOWN),
]

# providers/bulksms.md, "Per-recipient status codes": every code of the table.
EAPI = [
    ("0", PENDING),
    ("10", SENT),
    ("11", DELIVERED),
    ("12", SENT),
    ("22", FAILED),
    ("23", FAILED),
    ("24", FAILED),
    ("25", FAILED),
    ("26", FAILED),
    ("27", FAILED),
    ("28", FAILED),
    ("29", FAILED),
    ("31", REJECTED),
    ("32", REJECTED),
    ("33", REJECTED),
    ("40", BUFFERED),
    ("50", FAILED),
    ("51", FAILED),
    ("52", FAILED),
    ("53", EXPIRED),
    ("54", FAILED),
    ("55", REJECTED),
    ("56", REJECTED),
    ("57", FAILED),
    ("60", SENT),
    ("61", SENT),
    ("62", SENT),
    ("63", BUFFERED),
    ("64", BUFFERED),
    ("70", UNKNOWN),
]

# providers/bulksms.md, "JSON API": status.type, and "TYPE.SUBTYPE" for FAILED.
JSON_API = [
    ("ACCEPTED", PENDING),
    ("SCHEDULED", PENDING),
    ("SENT", SENT),
    ("DELIVERED", DELIVERED),
    ("UNKNOWN", UNKNOWN),
    ("FAILED", FAILED),
    ("FAILED.EXPIRED", EXPIRED),
    ("FAILED.HANDSET_ERROR", FAILED),
    ("FAILED.BLOCKED", REJECTED),
    ("FAILED.NOT_SENT", FAILED),
]


@pytest.mark.parametrize(("raw", "expected"), SEVENIO)
def test_sevenio_status_maps_to_its_normalized_status(raw: str, expected: Status) -> None:
    assert sevenio.normalize(raw) is expected


@pytest.mark.parametrize(("raw", "expected"), [("delivered", DELIVERED), (" Buffered ", BUFFERED)])
def test_sevenio_status_is_read_whatever_its_case_and_padding(raw: str, expected: Status) -> None:
    assert sevenio.normalize(raw) is expected


@pytest.mark.parametrize(("raw", "expected"), EAPI)
def test_bulksms_eapi_code_maps_to_its_normalized_status(raw: str, expected: Status) -> None:
    assert bulksms_eapi.normalize(raw) is expected


@pytest.mark.parametrize(("raw", "expected"), JSON_API)
def test_bulksms_json_status_maps_to_its_normalized_status(raw: str, expected: Status) -> None:
    assert bulksms.normalize(raw) is expected


@pytest.mark.parametrize(
    ("module", "raw", "expected"),
    [
        (sevenio, "WEIRD", UNKNOWN),
        (sevenio, "", UNKNOWN),
        (bulksms_eapi, "99", UNKNOWN),
        (bulksms_eapi, "1", UNKNOWN),
        (bulksms_eapi, "30", UNKNOWN),
        (bulksms_eapi, "58", UNKNOWN),
        (bulksms_eapi, "abc", UNKNOWN),
        (bulksms, "FAILED.NEW_SUBTYPE", FAILED),
        (bulksms, "SOMETHING", UNKNOWN),
        (bulksms, "SOMETHING.ELSE", UNKNOWN),
        (bulksms, "", UNKNOWN),
    ],
    ids=lambda v: getattr(v, "NAME", None) or repr(v),
)
def test_unlisted_raw_status_never_crashes(module: object, raw: str, expected: Status) -> None:
    assert module.normalize(raw) is expected  # type: ignore[attr-defined]


def test_the_eapi_table_lists_exactly_the_documented_codes() -> None:
    """An undocumented code must stay raw and unknown rather than be silently given a meaning."""
    assert set(bulksms_eapi.STATUSES) == {raw for raw, _ in EAPI}


def test_every_provider_is_registered_under_its_name() -> None:
    assert set(PROVIDERS) == {"sevenio", "bulksms-eapi", "bulksms"}


def test_normalized_values_are_the_public_contract() -> None:
    assert [str(s) for s in Status] == [
        "pending",
        "sent",
        "buffered",
        "unknown",
        "delivered",
        "failed",
        "expired",
        "rejected",
    ]


@pytest.mark.parametrize(
    ("status", "final"),
    [
        (PENDING, False),
        (SENT, False),
        (BUFFERED, False),
        (UNKNOWN, False),  # final only through our own give-up after the last poll
        (DELIVERED, True),
        (FAILED, True),
        (EXPIRED, True),
        (REJECTED, True),
    ],
)
def test_final_statuses_are_those_of_the_spec(status: Status, final: bool) -> None:
    assert status.final is final


def test_non_final_ranks_follow_how_far_the_message_got() -> None:
    assert PENDING.rank < UNKNOWN.rank < SENT.rank < BUFFERED.rank


def test_a_delivery_receipt_outranks_every_other_final() -> None:
    assert all(DELIVERED.rank > s.rank for s in (FAILED, EXPIRED, REJECTED))


def test_ranks_are_distinct_and_fit_the_two_digit_key() -> None:
    ranks = [s.rank for s in Status]
    assert len(set(ranks)) == len(ranks)
    assert all(0 <= r <= 99 for r in ranks)
