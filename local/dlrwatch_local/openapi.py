"""docs/openapi.json, the OpenAPI 3.1 description of the HTTP API, generated from what defines the API.

    PYTHONPATH=layers/dlrwatch:local python -m dlrwatch_local.openapi            # (re)write docs/openapi.json
    PYTHONPATH=layers/dlrwatch:local python -m dlrwatch_local.openapi --check    # exit 1 if it is out of date

The routes (path, method, AWS_IAM or not) come from template.yaml's HttpApi events; each operation is described
here, and a route the template has and this module does not describe fails the generation (so a new route cannot
go undocumented), as does a description of a route the template no longer has. Limits and names are read from the
code by name (providers, the message id pattern, batch and field bounds, the body limit, the lookup's limits, the
callback_url length), never copied; a bound whose constant does not exist (yet) is left out of the description
rather than guessed. The item's attribute schemas come from docs/schemas/item.schema.json, and the fields a message
view or a lookup shows from the code's PUBLIC_FIELDS and SUMMARY_FIELDS: each must be described there.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import importlib
import json
import re
import sys
import tomllib
from dataclasses import dataclass
from typing import Any

from dlrwatch_local.template import ROOT, http_api_events, table_definition

OUTPUT = ROOT / "docs" / "openapi.json"
ITEM_SCHEMA = ROOT / "docs" / "schemas" / "item.schema.json"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
Schema = dict[str, Any]


class UndocumentedRoute(RuntimeError):
    """template.yaml and the descriptions here disagree about which routes exist."""


# -- what the code says ---------------------------------------------------------------------------------


def constant(module: str, name: str) -> Any:
    """A constant of the code by name, or None while it does not exist (its bound is then left out)."""
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def required_constant(module: str, name: str) -> Any:
    value = constant(module, name)
    if value is None:
        raise RuntimeError(f"{module}.{name} is gone: the API description reads it")
    return value


def anchored(pattern: re.Pattern[str] | str | None) -> str | None:
    """A Python regex as a JSON Schema pattern: matched against the whole string (ECMA-262 ``^...$``)."""
    if pattern is None:
        return None
    text = pattern.pattern if isinstance(pattern, re.Pattern) else pattern
    text = re.sub(r"^(\^|\\A)", "", text)
    text = re.sub(r"(\$|\\Z|\\z)$", "", text)
    return f"^(?:{text})$"


def bounded(schema: Schema, **bounds: Any) -> Schema:
    """``schema`` with the bounds whose constants exist (None: left out)."""
    return {**schema, **{k: v for k, v in bounds.items() if v is not None}}


@dataclass(frozen=True)
class Limits:
    providers: list[str]
    message_id: str
    eapi_batch_id: str | None
    eapi_msisdn: str | None
    eapi_status: str | None
    max_batch: int
    max_recipient: int
    callback_body_bytes: int
    messages_body_bytes: int | None
    max_reports: int | None
    raw_status_max: int | None
    field_max: int | None
    foreign_id_max: int | None
    user_supplied_id_max: int | None
    sevenio_statuses: list[str]
    bulksms_statuses: list[str]
    eapi_statuses: list[str]
    registered: list[str]
    public_fields: list[str]
    summary_fields: list[str]
    lookup_limit_max: int
    lookup_limit_default: int | None
    forget_most: int | None
    recipient_text_max: int | None
    e164: str | None
    token_max: int | None
    callback_url_max: int | None
    # The recipient index's key attributes: every message a lookup lists has them.
    recipient_index_keys: list[str]

    @classmethod
    def from_code(cls) -> Limits:
        base, sevenio = "dlrwatch.providers.base", "dlrwatch.providers.sevenio"
        bulksms, eapi = "dlrwatch.providers.bulksms", "dlrwatch.providers.bulksms_eapi"
        settings: dict[str, Any] = {
            f.name: f.default for f in dataclasses.fields(required_constant("dlrwatch.config", "Settings"))
        }
        raw_field_max = constant(base, "RAW_FIELD_MAX")
        return cls(
            providers=list(required_constant("dlrwatch.providers", "PROVIDERS")),
            message_id=str(anchored(required_constant(base, "MESSAGE_ID"))),
            eapi_batch_id=anchored(constant(eapi, "_BATCH")),
            eapi_msisdn=anchored(constant(eapi, "_MSISDN")),
            eapi_status=anchored(constant(eapi, "_CODE")),
            max_batch=required_constant("dlrwatch.messages", "MAX_BATCH"),
            max_recipient=required_constant("dlrwatch.messages", "MAX_RECIPIENT"),
            callback_body_bytes=int(settings["max_body_bytes"]),
            messages_body_bytes=constant("dlrwatch.messages", "MAX_BODY_BYTES"),
            max_reports=constant("dlrwatch.callbacks", "MAX_REPORTS"),
            raw_status_max=constant(base, "RAW_STATUS_MAX"),
            field_max=constant(base, "FIELD_MAX"),
            foreign_id_max=constant(sevenio, "FOREIGN_ID_MAX") or raw_field_max,
            user_supplied_id_max=constant(bulksms, "USER_SUPPLIED_ID_MAX") or raw_field_max,
            sevenio_statuses=sorted(required_constant(sevenio, "STATUSES")),
            bulksms_statuses=sorted(required_constant(bulksms, "STATUSES")),
            eapi_statuses=sorted(required_constant(eapi, "STATUSES"), key=int),
            registered=[str(v) for v in required_constant("dlrwatch.store", "Registered")],
            public_fields=list(required_constant("dlrwatch.messages", "PUBLIC_FIELDS")),
            summary_fields=list(required_constant("dlrwatch.messages", "SUMMARY_FIELDS")),
            lookup_limit_max=required_constant("dlrwatch.messages", "LOOKUP_LIMIT_MAX"),
            lookup_limit_default=constant("dlrwatch.messages", "LOOKUP_LIMIT_DEFAULT"),
            forget_most=constant("dlrwatch.messages", "FORGET_MOST"),
            recipient_text_max=constant("dlrwatch.recipients", "TEXT_MAX"),
            e164=anchored(constant("dlrwatch.recipients", "_E164")),
            token_max=constant("dlrwatch.recipients", "TOKEN_MAX"),
            callback_url_max=constant("dlrwatch.forwarding", "MAX_URL_LENGTH"),
            recipient_index_keys=index_keys(str(required_constant("dlrwatch.store", "RECIPIENT_INDEX"))),
        )


def index_keys(name: str) -> list[str]:
    """The key attributes of the table's index ``name`` in template.yaml."""
    for index in table_definition("t")["GlobalSecondaryIndexes"]:
        if index["IndexName"] == name:
            return [key["AttributeName"] for key in index["KeySchema"]]
    raise RuntimeError(f"template.yaml's table has no index {name!r}, which the code queries")


# -- what the template says -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    method: str  # "get"
    path: str  # "/messages/{provider}/{message_id}"
    function: str
    iam: bool


def template_routes() -> list[Route]:
    found = [
        Route(
            props["Method"].lower(), props["Path"], logical_id, (props.get("Auth") or {}).get("Authorizer") == "AWS_IAM"
        )
        for logical_id, props in http_api_events()
    ]
    return sorted(found, key=lambda r: (r.path, r.method))


# -- schemas --------------------------------------------------------------------------------------------

ITEM_DEFS = {"timestamp": "Timestamp", "status": "Status", "source": "Source", "history_entry": "HistoryEntry"}


def item_schemas() -> tuple[dict[str, Schema], Schema]:
    """The item schema's shared definitions as components, and its message attributes (refs rewritten)."""
    item = json.loads(ITEM_SCHEMA.read_text())

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                name = ref.removeprefix("#/$defs/")
                if name not in ITEM_DEFS:
                    raise RuntimeError(f"{ITEM_SCHEMA.name} refers to $defs/{name}, which the API does not carry")
                return {**node, "$ref": f"#/components/schemas/{ITEM_DEFS[name]}"}
            return {k: rewrite(v) for k, v in node.items()}
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    defs = {component: rewrite(item["$defs"][name]) for name, component in ITEM_DEFS.items()}
    return defs, rewrite(item["$defs"]["message"])


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def text(limits: Limits, description: str | None = None, **extra: Any) -> Schema:
    """A provider's text field: strings (numbers are read as their digits), at most ``FIELD_MAX`` characters."""
    schema = bounded({"type": ["string", "integer"]}, maxLength=limits.field_max)
    if description:
        schema["description"] = description
    return {**schema, **extra}


def schemas(limits: Limits) -> dict[str, Schema]:
    defs, message = item_schemas()
    raw_status = limits.raw_status_max or limits.field_max
    report_fields = {
        "msg_id": text(limits, "seven.io's message id.", pattern=limits.message_id),
        "status": text(
            limits, "seven.io's status; an unlisted one is stored as `unknown`.", examples=limits.sevenio_statuses
        ),
        "timestamp": text(limits, "When seven.io learned the status: `YYYY-MM-DD hh:mm:ss[.ffffff]` or Unix seconds."),
        "status_time": text(limits, "Read when `timestamp` is absent."),
        "foreign_id": bounded(
            {"type": ["string", "integer"], "description": "The sender's own id, kept in the history."},
            maxLength=limits.foreign_id_max,
        ),
    }
    report_fields["status"] = bounded(report_fields["status"], maxLength=raw_status)
    sevenio_report = {
        "type": "object",
        "description": "One delivery report: the legacy callback's fields, or a webhook's `data`.",
        "required": ["msg_id", "status"],
        "properties": report_fields,
    }
    sevenio_webhook = {
        "type": "object",
        "description": (
            "A webhook. Only `webhook_event` `dlr` carries reports; any other event is answered 200 and stores nothing."
        ),
        "required": ["webhook_event", "data"],
        "properties": {
            "webhook_event": {"type": "string", "examples": ["dlr"]},
            "webhook_timestamp": text(limits),
            "data": {
                "anyOf": [
                    ref("SevenioReport"),
                    {"type": "array", "minItems": 1, "items": ref("SevenioReport")},
                    {"type": "string", "description": "The report object or list as JSON text."},
                ]
            },
        },
    }
    one_or_many = [ref("SevenioWebhook"), ref("SevenioReport")]
    sevenio_json = {
        "description": "A webhook, a legacy report, or a list of them"
        + (f" (at most {limits.max_reports} reports in all)." if limits.max_reports else "."),
        "anyOf": [*one_or_many, {"type": "array", "minItems": 1, "items": {"anyOf": one_or_many}}],
    }
    flat = {f"data[{name}]": schema for name, schema in report_fields.items() if name != "status_time"}
    sevenio_form = {
        "type": "object",
        "description": (
            "A legacy report's fields, or a webhook flattened as form fields (`data[msg_id]`, ...; a list as "
            "`data[0][msg_id]`, ...), or a webhook whose `data` field holds the JSON text."
        ),
        "properties": {
            **report_fields,
            "webhook_event": {"type": "string", "examples": ["dlr"]},
            "webhook_timestamp": text(limits),
            "data": {"type": "string", "description": "The report object or list as JSON text."},
            **flat,
        },
        "additionalProperties": {"type": "string"},
    }
    bulksms_message = {
        "type": "object",
        "description": (
            "A BulkSMS JSON API Message. Received (inbound) messages, `type` `RECEIVED`, carry no delivery and are "
            "skipped; every other needs `status`."
        ),
        "required": ["id"],
        "properties": {
            "id": text(limits, "BulkSMS's message id.", pattern=limits.message_id),
            "type": {"type": "string", "examples": ["SENT", "RECEIVED"]},
            "status": {
                "type": "object",
                "required": ["type"],
                "properties": {
                    "type": bounded(
                        {"type": "string", "examples": sorted({s.split(".")[0] for s in limits.bulksms_statuses})},
                        maxLength=raw_status,
                    ),
                    "subtype": bounded({"type": ["string", "null"]}, maxLength=raw_status),
                    "date": text(limits, "ISO 8601 with a zone, when BulkSMS sends one."),
                },
            },
            "userSuppliedId": bounded(
                {"type": ["string", "integer", "null"], "description": "The sender's own id, kept in the history."},
                maxLength=limits.user_supplied_id_max,
            ),
        },
    }
    bulksms_json = bounded(
        {
            "type": "array",
            "description": "BulkSMS JSON API webhook: an array of Messages; `[]` is BulkSMS's probe of the URL.",
            "items": ref("BulksmsMessage"),
        },
        maxItems=limits.max_reports,
    )
    eapi_push = {
        "type": "object",
        "description": "BulkSMS EAPI push (legacy HTTP push); other fields are ignored.",
        "required": ["msisdn", "batch_id", "status"],
        "properties": eapi_fields(limits),
        "additionalProperties": {"type": "string"},
    }
    registration = {
        "type": "object",
        "required": ["provider", "message_id"],
        "properties": {
            "provider": {"enum": limits.providers},
            "message_id": {
                "type": "string",
                "minLength": 1,
                "description": "The provider's message id; for `bulksms-eapi` `{batch_id}:{msisdn}`.",
            },
            "sent_at": {
                "type": "string",
                "format": "date-time",
                "description": "ISO 8601 with a zone; at most 15 minutes ahead; default: now.",
            },
            "recipient": {"type": "string", "minLength": 1, "maxLength": limits.max_recipient},
            "callback_url": callback_url(limits),
        },
        "allOf": [registration_id_rule(limits, p) for p in limits.providers],
    }
    return {
        "Error": {
            "type": "object",
            "description": "dlrwatch's answer to a request it refuses or cannot store: `error` names the problem.",
            "required": ["error"],
            "properties": {"error": {"type": "string"}},
        },
        "GatewayMessage": {
            "type": "object",
            "description": "API Gateway's own answer (unknown route, IAM refusal, throttling, a failed function).",
            "required": ["message"],
            "properties": {"message": {"type": "string"}},
        },
        "CallbackResult": {
            "type": "object",
            "required": ["received", "applied"],
            "properties": {
                "received": {"type": "integer", "minimum": 0, "description": "Reports in the request."},
                "applied": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Reports that changed a message (the rest were duplicates or outranked).",
                },
            },
        },
        "SevenioReport": sevenio_report,
        "SevenioWebhook": sevenio_webhook,
        "SevenioJson": sevenio_json,
        "SevenioForm": sevenio_form,
        "BulksmsMessage": bulksms_message,
        "BulksmsWebhook": bulksms_json,
        "BulksmsEapiPush": eapi_push,
        "Registration": registration,
        "RegistrationRequest": {
            "type": "object",
            "required": ["messages"],
            "properties": {
                "messages": {"type": "array", "minItems": 1, "maxItems": limits.max_batch, "items": ref("Registration")}
            },
        },
        "RegistrationResults": {
            "type": "object",
            "required": ["results"],
            "properties": {
                "results": {
                    "type": "array",
                    "description": "One result per message, in the order sent.",
                    "items": {
                        "type": "object",
                        "required": ["provider", "message_id", "result"],
                        "properties": {
                            "provider": {"enum": limits.providers},
                            "message_id": {"type": "string", "description": "As stored (EAPI ids normalized)."},
                            "result": {"enum": limits.registered},
                        },
                    },
                }
            },
        },
        "Message": message_view(limits, message),
        "MessageSummary": message_summary(limits, message),
        "LookupResult": {
            "type": "object",
            "required": ["messages", "next"],
            "properties": {
                "messages": bounded(
                    {"type": "array", "description": "Newest `sent_at` first.", "items": ref("MessageSummary")},
                    maxItems=limits.lookup_limit_max,
                ),
                "next": {
                    "anyOf": [next_token(limits), {"type": "null"}],
                    "description": "The token of the next page (pass it as `next` with the same `recipient`); null "
                    "on the last page.",
                },
            },
        },
        "ForgetResult": {
            "type": "object",
            "required": ["removed", "more"],
            "properties": {
                "removed": bounded(
                    {"type": "integer", "minimum": 0, "description": "Messages erased by this call."},
                    maximum=limits.forget_most,
                ),
                "more": {"type": "boolean", "description": "Some may be left: call again until it is false."},
            },
        },
        **defs,
    }


# The forms of callback_url the code may take: a scheme of http or https, then printable ASCII without a space, a
# backslash or a fragment's #. What it refuses beyond that (user info, odd hosts, non-global addresses) is said in
# the description: no pattern says it exactly.
CALLBACK_URL_FORM = r"^[Hh][Tt][Tt][Pp][Ss]?://[!-\"$-\[\]-~]+$"


def callback_url(limits: Limits) -> Schema:
    return bounded(
        {
            "type": "string",
            "format": "uri",
            "pattern": CALLBACK_URL_FORM,
            "description": (
                "Where dlrwatch POSTs this message's status events, signed (`X-Dlrwatch-Signature`). An absolute "
                "`https` URL (`http` only for a host listed in FORWARD_ALLOWED_HOSTS) in printable ASCII (an "
                "international host in its `xn--` form), without user name or password, fragment or backslash; "
                "an IP address host in its canonical form (dotted decimal IPv4, or a bracketed IPv6 literal "
                "without a zone id); every address the host resolves to must be global. A later registration of "
                "the message replaces it."
            ),
        },
        maxLength=limits.callback_url_max,
    )


def next_token(limits: Limits) -> Schema:
    return bounded({"type": "string", "minLength": 1, "pattern": "^[A-Za-z0-9_-]+$"}, maxLength=limits.token_max)


def nullable(schema: Schema) -> Schema:
    """``schema`` or null (as it is when it takes null already)."""
    types = schema.get("type")
    if types == "null" or (isinstance(types, list) and "null" in types):
        return schema
    if any({"type": "null"} in schema.get(key, []) for key in ("anyOf", "oneOf")):
        return schema
    return {"anyOf": [schema, {"type": "null"}]}


def eapi_fields(limits: Limits) -> dict[str, Schema]:
    return {
        "msisdn": bounded(
            {"type": "string", "description": "The recipient, digits (a leading `+` and spaces are dropped)."},
            pattern=limits.eapi_msisdn,
        ),
        "batch_id": bounded({"type": "string"}, pattern=limits.eapi_batch_id),
        "status": bounded(
            {"type": "string", "description": "EAPI status code.", "examples": limits.eapi_statuses},
            pattern=limits.eapi_status,
        ),
        "completed_time": bounded(
            {"type": "string", "description": "`yy-MM-dd HH:mm:ss` (or `yyyy-...`), South African time."},
            maxLength=limits.field_max,
        ),
    }


def registration_id_rule(limits: Limits, provider: str) -> Schema:
    """The form of ``message_id`` each provider's ids take."""
    if provider == "bulksms-eapi":
        if not (limits.eapi_batch_id and limits.eapi_msisdn):
            return {}
        batch, msisdn = (p.removeprefix("^").removesuffix("$") for p in (limits.eapi_batch_id, limits.eapi_msisdn))
        pattern = f"^{batch}:\\+?{msisdn}$"
    else:
        pattern = limits.message_id
    return {
        "if": {"properties": {"provider": {"const": provider}}, "required": ["provider"]},
        "then": {"properties": {"message_id": {"pattern": pattern}}},
    }


def item_fields(message: Schema, names: list[str], listed_in: str, *, never_null: frozenset[str]) -> dict[str, Schema]:
    """The item attributes ``names`` as the API shows them: null when unset, unless the item schema requires them
    or they are in ``never_null``."""
    properties: dict[str, Schema] = {}
    for name in names:
        if name not in message["properties"]:
            raise RuntimeError(f"{listed_in} names {name!r}, which {ITEM_SCHEMA.name} does not describe")
        schema = copy.deepcopy(message["properties"][name])
        properties[name] = schema if name in message["required"] or name in never_null else nullable(schema)
    return properties


# The view's fields that show an item attribute under another name (``messages.view``).
VIEW_RENAMED = {"sequence": "seq"}
# ``callback`` in the view: the status callbacks' state, from the item's forwarding attributes.
CALLBACK_STATE = {
    "attempts": ("fwd_attempts", "Attempts made so far (0: none yet, or no callback_url)."),
    "last_http_status": ("fwd_http_status", "The HTTP status of the last attempt; null when it got no answer."),
    "state": ("fwd_state", "Where forwarding stands; null before the first attempt."),
    "last_attempt_at": ("fwd_at", "When the last attempt was made."),
    "delivered_sequence": ("fwd_delivered_seq", "The highest `sequence` the sender has taken (answered 2xx)."),
}


def message_view(limits: Limits, message: Schema) -> Schema:
    """``GET /messages/...``: the message's public fields (null when unset), its sequence, its next poll, the state
    of its status callbacks and its history."""
    properties = item_fields(message, limits.public_fields, "PUBLIC_FIELDS", never_null=frozenset())
    for name, attribute in VIEW_RENAMED.items():
        properties[name] = item_fields(message, [attribute], "VIEW_RENAMED", never_null=frozenset())[attribute]
    properties["sequence"]["description"] = (
        "Increases with every change of the message; status events and callbacks carry it, and a receiver keeps "
        "the highest. Null for a message not changed since sequences were introduced."
    )
    properties["next_poll_at"] = {
        "anyOf": [ref("Timestamp"), {"type": "null"}],
        "description": "When it is polled next; null when it is not due.",
    }
    state: dict[str, Schema] = {}
    for name, (attribute, description) in CALLBACK_STATE.items():
        # An absent count of attempts is shown as 0; every other absent attribute as null.
        if name == "attempts":
            schema = {**copy.deepcopy(message["properties"][attribute]), "minimum": 0}
        else:
            schema = item_fields(message, [attribute], "CALLBACK_STATE", never_null=frozenset())[attribute]
        state[name] = {**schema, "description": description}
    properties["callback"] = {
        "type": "object",
        "description": "The state of the message's status callbacks to `callback_url`.",
        "required": list(state),
        "properties": state,
    }
    properties["history"] = {"type": "array", "items": ref("HistoryEntry")}
    return {"type": "object", "required": list(properties), "properties": properties}


def message_summary(limits: Limits, message: Schema) -> Schema:
    """A message as a lookup by recipient lists it: the code's SUMMARY_FIELDS (null when unset; the recipient
    index's keys never are: a message without them is not in the index)."""
    properties = item_fields(
        message, limits.summary_fields, "SUMMARY_FIELDS", never_null=frozenset(limits.recipient_index_keys)
    )
    return {"type": "object", "required": list(properties), "properties": properties}


# -- operations -----------------------------------------------------------------------------------------


def gateway(description: str) -> Schema:
    return {"description": description, "content": {JSON: {"schema": ref("GatewayMessage")}}}


def error(description: str) -> Schema:
    return {"description": description, "content": {JSON: {"schema": ref("Error")}}}


def responses(limits: Limits) -> dict[str, Schema]:
    return {
        "BadRequest": error("Input that can never succeed; nothing was stored."),
        "Unauthorized": error("Missing `token` (or, with signing on, missing signature headers); nothing stored."),
        "Forbidden": error("Wrong `token`, a wrong or stale signature, or a replayed nonce; nothing stored."),
        "NotFound": error("No such message (or provider)."),
        "PayloadTooLarge": error(
            f"The body is larger than the limit (callbacks {limits.callback_body_bytes} bytes)"
            + (f", or holds more than {limits.max_reports} reports" if limits.max_reports else "")
            + "; nothing stored."
        ),
        "ServiceUnavailable": error(
            "Nothing could be made durable (storage or the secret store failed or was too slow, or the callback "
            "token is not configured): retry later."
        ),
        "RegistrationRefused": error(
            "A batch with any invalid message, named by index; nothing was stored. Among the cases: a "
            "`callback_url` that is not a string, not an absolute `https` URL"
            + (f" of at most {limits.callback_url_max} characters" if limits.callback_url_max else "")
            + ", carries a user name or password, a fragment, a backslash, a space or non-ASCII, a number host in "
            "another form than dotted decimal, a malformed IPv6 literal or one with a zone id, a host that does not "
            "exist, or any address that is not global (loopback, private, link-local, shared, IPv4-mapped, "
            "metadata ...) unless FORWARD_ALLOWED_HOSTS lists the host; and any `callback_url` while status "
            "callbacks are not enabled (no `forward-signing-key`). An error names the URL's host at most."
        ),
        "RegistrationUnavailable": error(
            "Nothing was stored: storage failed or was too slow, or DNS did not answer in time for a "
            "`callback_url` host (and no URL of the batch was refused): retry later."
        ),
        "RouteNotFound": gateway('API Gateway: no such route (path and method): `{"message": "Not Found"}`.'),
        "IamRefused": gateway("API Gateway: the request is not signed (SigV4) by a principal allowed to call it."),
        "TooManyRequests": gateway("API Gateway: over the route throttle; retry later."),
        "FunctionFailed": gateway("API Gateway: the function failed or timed out (or is throttled); retry later."),
    }


def answers(*codes: int) -> dict[str, Schema]:
    names = {
        400: "BadRequest",
        401: "Unauthorized",
        403: "Forbidden",
        404: "NotFound",
        413: "PayloadTooLarge",
        429: "TooManyRequests",
        500: "FunctionFailed",
        503: "ServiceUnavailable",
    }
    return {str(code): {"$ref": f"#/components/responses/{names[code]}"} for code in codes}


def query(name: str, schema: Schema, required: bool = False) -> Schema:
    return {"name": name, "in": "query", "required": required, "schema": schema}


def signature_headers() -> list[Schema]:
    headers = {
        "X-Signature": "HMAC-SHA256 (hex) of timestamp, nonce, method, URL and the body's MD5, keyed with the "
        "seven.io signing key.",
        "X-Timestamp": "Unix seconds; at most 5 minutes off.",
        "X-Nonce": "Used once: a replay is refused (403).",
    }
    return [
        {
            "name": name,
            "in": "header",
            "required": False,
            "description": f"{what} Required on every seven.io request when a signing key is configured.",
            "schema": {"type": "string"},
        }
        for name, what in headers.items()
    ]


CALLBACK_ANSWERS = (400, 401, 403, 429, 500, 503)


def sevenio_get(limits: Limits) -> Schema:
    report = schemas(limits)["SevenioReport"]["properties"]
    fields = [query(name, schema) for name, schema in report.items()]
    fields += [
        query("webhook_event", {"type": "string", "examples": ["dlr"]}),
        query("webhook_timestamp", text(limits)),
    ]
    fields += [query(f"data[{name}]", schema) for name, schema in report.items() if name != "status_time"]
    return {
        "operationId": "sevenioCallbackGet",
        "summary": "seven.io report: the legacy GET callback, or a webhook sent as GET",
        "tags": ["callbacks"],
        "parameters": [{"$ref": "#/components/parameters/CallbackToken"}, *fields, *signature_headers()],
        "responses": {"200": stored(), **answers(*CALLBACK_ANSWERS)},
    }


def sevenio_post(limits: Limits) -> Schema:
    return {
        "operationId": "sevenioCallbackPost",
        "summary": "seven.io webhook (form or JSON: one, or a list) or legacy report",
        "description": body_note(
            limits, "A body starting with `{` or `[` without a JSON content type is read as JSON."
        ),
        "tags": ["callbacks"],
        "parameters": [{"$ref": "#/components/parameters/CallbackToken"}, *signature_headers()],
        "requestBody": {
            "required": True,
            "content": {JSON: {"schema": ref("SevenioJson")}, FORM: {"schema": ref("SevenioForm")}},
        },
        "responses": {"200": stored(), **answers(*CALLBACK_ANSWERS, 413)},
    }


def bulksms_get(limits: Limits) -> Schema:
    return {
        "operationId": "bulksmsCallbackGet",
        "summary": "BulkSMS EAPI push (legacy HTTP push as GET)",
        "tags": ["callbacks"],
        "parameters": [
            {"$ref": "#/components/parameters/CallbackToken"},
            *[query(name, schema, name != "completed_time") for name, schema in eapi_fields(limits).items()],
        ],
        "responses": {"200": stored(), **answers(*CALLBACK_ANSWERS)},
    }


def bulksms_post(limits: Limits) -> Schema:
    return {
        "operationId": "bulksmsCallbackPost",
        "summary": "BulkSMS JSON API webhook (an array of Messages; `[]` is the probe) or EAPI push as a form",
        "description": body_note(limits, "A body starting with `[` without a JSON content type is read as JSON."),
        "tags": ["callbacks"],
        "parameters": [{"$ref": "#/components/parameters/CallbackToken"}],
        "requestBody": {
            "required": True,
            "content": {JSON: {"schema": ref("BulksmsWebhook")}, FORM: {"schema": ref("BulksmsEapiPush")}},
        },
        "responses": {"200": stored(), **answers(*CALLBACK_ANSWERS, 413)},
    }


def register(limits: Limits) -> Schema:
    size = f" at most {limits.messages_body_bytes} bytes," if limits.messages_body_bytes else ""
    return {
        "operationId": "registerMessages",
        "summary": f"Register up to {limits.max_batch} sent messages, so that they are polled",
        "description": (
            f'The body is{size} `{{"messages": [...]}}`. A batch with any invalid message is refused whole (400, '
            "naming each by index) and stores nothing. A registration repeated answers `already registered`."
        ),
        "tags": ["messages"],
        "security": [{"sigv4": []}],
        "requestBody": {"required": True, "content": {JSON: {"schema": ref("RegistrationRequest")}}},
        "responses": {
            "200": {"description": "Every message stored.", "content": {JSON: {"schema": ref("RegistrationResults")}}},
            "400": {"$ref": "#/components/responses/RegistrationRefused"},
            **answers(413, 429, 500),
            "503": {"$ref": "#/components/responses/RegistrationUnavailable"},
            "403": {"$ref": "#/components/responses/IamRefused"},
        },
    }


def recipient_parameter(limits: Limits) -> Schema:
    e164 = f" (`{limits.e164}`)" if limits.e164 else ""
    return {
        "name": "recipient",
        "in": "query",
        "required": True,
        "description": (
            f"A phone number, compared in E.164 form{e164}: separators (space, `-`, `.`, parentheses) are "
            "stripped, a leading `00` becomes `+`, bare digits become `+digits`, and a leading space (a raw `+` "
            "decoded) is read as `+`; send the `+` as `%2B`. Anything else is a 400 that does not repeat it."
        ),
        "schema": bounded(
            {"type": "string", "minLength": 1, "examples": ["+491701234567"]}, maxLength=limits.recipient_text_max
        ),
    }


QUERY_RULE = "Each query parameter at most once (given twice: 400); other parameters are ignored."


def look_up(limits: Limits) -> Schema:
    default = f" (default {limits.lookup_limit_default})" if limits.lookup_limit_default else ""
    return {
        "operationId": "lookUpMessages",
        "summary": "A recipient's messages, newest `sent_at` first (the support desk's lookup)",
        "description": (
            "Messages registered with this recipient (or, for `bulksms-eapi`, with it in the id), a page at a time. "
            f"An unknown recipient answers 200 with no messages. {QUERY_RULE}"
        ),
        "tags": ["messages"],
        "security": [{"sigv4": []}],
        "parameters": [
            recipient_parameter(limits),
            {
                **query("since", {"type": "string", "format": "date-time"}),
                "description": "Only messages sent at or after this time (ISO 8601 with a zone).",
            },
            {
                **query(
                    "limit",
                    bounded(
                        {"type": "integer", "minimum": 1, "maximum": limits.lookup_limit_max},
                        default=limits.lookup_limit_default,
                    ),
                ),
                "description": f"Messages a page holds at most{default}: ASCII digits.",
            },
            {
                **query("next", next_token(limits)),
                "description": "The previous page's `next`, opaque and bound to the recipient: a token of another "
                "lookup, altered or cut, is a 400.",
            },
        ],
        "responses": {
            "200": {
                "description": "A page of the recipient's messages.",
                "content": {JSON: {"schema": ref("LookupResult")}},
            },
            **answers(400, 429, 500, 503),
            "403": {"$ref": "#/components/responses/IamRefused"},
        },
    }


def forget(limits: Limits) -> Schema:
    most = f"at most {limits.forget_most}" if limits.forget_most else "a bounded number"
    return {
        "operationId": "forgetRecipient",
        "summary": "Erase a recipient's messages",
        "description": (
            f"Deletes {most} of the messages registered with this recipient a call (the call ends well within the "
            "function's time); while `more` is true, call again. A recipient with no messages answers "
            f'`{{"removed": 0, "more": false}}`. {QUERY_RULE}'
        ),
        "tags": ["messages"],
        "security": [{"sigv4": []}],
        "parameters": [recipient_parameter(limits)],
        "responses": {
            "200": {"description": "What this call erased.", "content": {JSON: {"schema": ref("ForgetResult")}}},
            **answers(400, 429, 500, 503),
            "403": {"$ref": "#/components/responses/IamRefused"},
        },
    }


def read(limits: Limits) -> Schema:
    ids = [limits.message_id]
    if limits.eapi_batch_id and limits.eapi_msisdn:
        ids.append(registration_id_rule(limits, "bulksms-eapi")["then"]["properties"]["message_id"]["pattern"])
    return {
        "operationId": "readMessage",
        "summary": "A message's current status, history and next poll",
        "tags": ["messages"],
        "security": [{"sigv4": []}],
        "parameters": [
            {"name": "provider", "in": "path", "required": True, "schema": {"enum": limits.providers}},
            {
                "name": "message_id",
                "in": "path",
                "required": True,
                "description": "The provider's message id (percent-encoded where needed; EAPI `{batch_id}:{msisdn}`).",
                "schema": {"type": "string", "anyOf": [{"pattern": p} for p in ids]},
            },
        ],
        "responses": {
            "200": {"description": "The message.", "content": {JSON: {"schema": ref("Message")}}},
            **answers(404, 429, 500, 503),
            "403": {"$ref": "#/components/responses/IamRefused"},
        },
    }


def stored() -> Schema:
    return {
        "description": "Every report in the request is durable (or the request carried none, such as `[]`).",
        "content": {JSON: {"schema": ref("CallbackResult")}},
    }


def body_note(limits: Limits, extra: str) -> str:
    reports = f", at most {limits.max_reports} reports" if limits.max_reports else ""
    return f"Body at most {limits.callback_body_bytes} bytes{reports}. {extra}"


# (method, path) -> how that operation is described. Every template route needs one.
OPERATIONS = {
    ("get", "/callbacks/sevenio"): sevenio_get,
    ("post", "/callbacks/sevenio"): sevenio_post,
    ("get", "/callbacks/bulksms"): bulksms_get,
    ("post", "/callbacks/bulksms"): bulksms_post,
    ("post", "/messages"): register,
    ("get", "/messages"): look_up,
    ("delete", "/messages"): forget,
    ("get", "/messages/{provider}/{message_id}"): read,
}


def document() -> dict[str, Any]:
    routes = template_routes()
    undocumented = [f"{r.method.upper()} {r.path}" for r in routes if (r.method, r.path) not in OPERATIONS]
    if undocumented:
        raise UndocumentedRoute(
            f"template.yaml routes {', '.join(undocumented)}, which docs/openapi.json would not describe: "
            "add the operation to OPERATIONS in local/dlrwatch_local/openapi.py"
        )
    stale = sorted(set(OPERATIONS) - {(r.method, r.path) for r in routes})
    if stale:
        shown = ", ".join(f"{m.upper()} {p}" for m, p in stale)
        raise UndocumentedRoute(f"local/dlrwatch_local/openapi.py describes {shown}, which template.yaml has not")
    limits = Limits.from_code()
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation = OPERATIONS[(route.method, route.path)](limits)
        if route.iam != ("security" in operation):
            raise UndocumentedRoute(f"{route.method.upper()} {route.path}: AWS_IAM in template.yaml is {route.iam}")
        paths.setdefault(route.path, {})[route.method] = operation
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dlrwatch",
            "version": project["version"],
            "summary": project["description"],
            "description": (
                "Providers push delivery reports to `/callbacks/...` (shared secret in the `token` query parameter); "
                "senders register and read messages, look a recipient's messages up and erase them on `/messages` "
                "(AWS IAM, SigV4). Generated from template.yaml and the code by `make openapi`; do not edit by hand. "
                "Any path or method not listed here is answered "
                '404 by API Gateway with `{"message": "Not Found"}` (`components.responses.RouteNotFound`).'
            ),
        },
        "servers": [
            {
                "url": "https://{api_id}.execute-api.{region}.amazonaws.com",
                "description": "The deployed stack (output ApiUrl).",
                "variables": {"api_id": {"default": "api_id"}, "region": {"default": "eu-central-1"}},
            },
            {
                "url": "http://127.0.0.1:{port}",
                "description": "make run (IAM is not checked locally).",
                "variables": {"port": {"default": "3000"}},
            },
        ],
        "tags": [
            {"name": "callbacks", "description": "Delivery reports pushed by the providers."},
            {
                "name": "messages",
                "description": "Registering sent messages, reading their status, and looking up or erasing a "
                "recipient's messages (AWS IAM).",
            },
        ],
        "paths": paths,
        "components": {
            "schemas": schemas(limits),
            "responses": responses(limits),
            "parameters": {
                "CallbackToken": {
                    "name": "token",
                    "in": "query",
                    "required": True,
                    "description": "The shared secret `callback-token`: missing 401, wrong 403.",
                    "schema": {"type": "string", "minLength": 1},
                }
            },
            "securitySchemes": {
                "sigv4": {
                    "type": "apiKey",
                    "name": "Authorization",
                    "in": "header",
                    "description": "AWS Signature Version 4 for service `execute-api`; the caller needs "
                    "`execute-api:Invoke` on the route.",
                    "x-amazon-apigateway-authtype": "awsSigv4",
                }
            },
        },
    }


def render() -> str:
    return json.dumps(document(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write docs/openapi.json from template.yaml and the code.")
    parser.add_argument("--check", action="store_true", help="only say whether docs/openapi.json is up to date")
    args = parser.parse_args(argv)
    try:
        generated = render()
    except UndocumentedRoute as exc:
        print(f"openapi: {exc}", file=sys.stderr)
        return 2
    if args.check:
        current = OUTPUT.read_text() if OUTPUT.exists() else ""
        if current != generated:
            print("docs/openapi.json is out of date: run `make openapi` and commit it", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(generated)
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
