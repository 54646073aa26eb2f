"""docs/openapi.json: generated from template.yaml and the code, committed, and true to both."""

from __future__ import annotations

import base64
import difflib
import json
import re
import socket
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from dlrwatch_local import openapi
from jsonschema import Draft202012Validator
from support.api_events import SIGNED_AT, answer_of, http_event
from support.template import template

from dlrwatch import callbacks, forwarding, messages, recipients
from dlrwatch.config import Settings
from dlrwatch.providers import PROVIDERS
from dlrwatch.providers.base import MESSAGE_ID
from dlrwatch.store import ForwardState, Store, from_dynamo

ROOT = Path(__file__).resolve().parents[2]
DOC: dict[str, Any] = json.loads(openapi.OUTPUT.read_text())
EVENTS = ROOT / "events"


def component(kind: str, node: dict[str, Any]) -> dict[str, Any]:
    """``node`` itself, or the component its ``$ref`` names."""
    if "$ref" not in node:
        return node
    prefix = f"#/components/{kind}/"
    assert node["$ref"].startswith(prefix), node
    found: dict[str, Any] = DOC["components"][kind][node["$ref"].removeprefix(prefix)]
    return found


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    """A JSON Schema 2020-12 validator for ``schema``, whose ``#/components/...`` references resolve in the document."""
    return Draft202012Validator({**schema, "components": DOC["components"]})


def errors(schema: dict[str, Any], instance: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator(schema).iter_errors(instance)]


def operations() -> dict[tuple[str, str], dict[str, Any]]:
    return {(method, path): op for path, ops in DOC["paths"].items() for method, op in ops.items()}


def parameters(operation: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    found = (component("parameters", p) for p in operation.get("parameters", []))
    return {(p["in"], p["name"]): p for p in found}


# -- generated, committed, complete -----------------------------------------------------------------------


def test_committed_description_is_what_the_generator_writes() -> None:
    generated, committed = openapi.render(), openapi.OUTPUT.read_text()
    if generated != committed:
        diff = difflib.unified_diff(
            committed.splitlines(), generated.splitlines(), "docs/openapi.json", "generated", lineterm="", n=1
        )
        shown = "\n".join(list(diff)[:40])
        pytest.fail(f"docs/openapi.json is out of date: run `make openapi` and commit it.\n{shown}")


def test_every_route_of_the_template_is_described_with_its_authorization() -> None:
    routes = openapi.template_routes()
    assert {(r.method, r.path) for r in routes} == set(operations())
    assert len(routes) >= 6
    for route in routes:
        operation = operations()[(route.method, route.path)]
        if route.iam:
            assert operation["security"] == [{"sigv4": []}], route
            assert "403" in operation["responses"], route
        else:
            assert "security" not in operation, route
            token = parameters(operation)[("query", "token")]
            assert token["required"] is True, route
            assert {"401", "403"} <= operation["responses"].keys(), route
    scheme = DOC["components"]["securitySchemes"]["sigv4"]
    assert (scheme["in"], scheme["name"], scheme["x-amazon-apigateway-authtype"]) == (
        "header",
        "Authorization",
        "awsSigv4",
    )


def test_a_route_without_a_description_fails_the_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    routes = openapi.template_routes()
    added = openapi.Route("delete", "/messages/{provider}/{message_id}", "MessagesFunction", iam=True)
    monkeypatch.setattr(openapi, "template_routes", lambda: [*routes, added])
    with pytest.raises(openapi.UndocumentedRoute, match=re.escape("DELETE /messages/{provider}/{message_id}")):
        openapi.document()
    assert openapi.main(["--check"]) == 2


def test_a_description_of_a_route_the_template_lost_fails_the_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    routes = [r for r in openapi.template_routes() if r.path != "/messages"]
    monkeypatch.setattr(openapi, "template_routes", lambda: routes)
    with pytest.raises(openapi.UndocumentedRoute, match="POST /messages"):
        openapi.document()


def test_an_iam_route_described_as_open_fails_the_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    routes = [openapi.Route(r.method, r.path, r.function, iam=False) for r in openapi.template_routes()]
    monkeypatch.setattr(openapi, "template_routes", lambda: routes)
    with pytest.raises(openapi.UndocumentedRoute, match="AWS_IAM"):
        openapi.document()


def test_the_routes_are_read_from_the_template_itself() -> None:
    events = [
        (event["Properties"]["Method"].lower(), event["Properties"]["Path"])
        for resource in template()["Resources"].values()
        for event in (resource.get("Properties", {}).get("Events") or {}).values()
        if event.get("Type") == "HttpApi"
    ]
    assert sorted(events) == sorted((r.method, r.path) for r in openapi.template_routes())


# -- a standard OpenAPI 3.1 document -----------------------------------------------------------------------


def references(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if "$ref" in node else []
        return own + [r for v in node.values() for r in references(v)]
    if isinstance(node, list):
        return [r for v in node for r in references(v)]
    return []


def test_document_is_openapi_3_1_with_valid_schemas_and_resolvable_references() -> None:
    assert DOC["openapi"] == "3.1.0"
    assert DOC["info"]["title"] == "dlrwatch"
    assert DOC["info"]["version"]
    for definition in DOC["components"]["schemas"].values():
        Draft202012Validator.check_schema(definition)
    for reference in references(DOC):
        assert reference.startswith("#/"), reference
        node: Any = DOC
        for part in reference.removeprefix("#/").split("/"):
            assert part in node, f"{reference} does not resolve"
            node = node[part]
    ids = [op["operationId"] for op in operations().values()]
    assert len(ids) == len(set(ids))
    for (method, path), operation in operations().items():
        for name in re.findall(r"\{(\w+)\}", path):
            assert parameters(operation)[("path", name)]["required"] is True, (method, path, name)
        assert operation["responses"]["200"]["content"]["application/json"]["schema"], (method, path)


def test_every_refusal_has_its_json_body_and_api_gateway_answers_are_told_apart() -> None:
    for (method, path), operation in operations().items():
        for code, answer in operation["responses"].items():
            schema = component("responses", answer)["content"]["application/json"]["schema"]
            if code in {"400", "401", "404", "413", "503"}:
                assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, code)
            if code in {"429", "500"}:
                assert schema == {"$ref": "#/components/schemas/GatewayMessage"}, (method, path, code)
    assert not errors({"$ref": "#/components/schemas/Error"}, {"error": "missing token"})
    assert errors({"$ref": "#/components/schemas/Error"}, {"message": "Not Found"})
    not_found = DOC["components"]["responses"]["RouteNotFound"]["content"]["application/json"]["schema"]
    assert not errors(not_found, {"message": "Not Found"})


# -- limits from the code ---------------------------------------------------------------------------------


def schema(name: str) -> dict[str, Any]:
    found: dict[str, Any] = DOC["components"]["schemas"][name]
    return found


def test_registration_limits_are_the_codes() -> None:
    request = schema("RegistrationRequest")["properties"]["messages"]
    assert (request["minItems"], request["maxItems"]) == (1, messages.MAX_BATCH)
    registration = schema("Registration")
    assert registration["properties"]["recipient"]["maxLength"] == messages.MAX_RECIPIENT
    assert registration["properties"]["provider"]["enum"] == list(PROVIDERS)
    assert schema("RegistrationResults")["properties"]["results"]["items"]["properties"]["result"]["enum"] == [
        "registered",
        "already registered",
    ]


def test_registration_schema_takes_what_registration_takes() -> None:
    body = json.loads(json.loads((EVENTS / "messages-register.json").read_text())["body"])
    assert not errors({"$ref": "#/components/schemas/RegistrationRequest"}, body)
    too_many = {"messages": [body["messages"][0]] * (messages.MAX_BATCH + 1)}
    assert errors({"$ref": "#/components/schemas/RegistrationRequest"}, too_many)
    unknown = {"messages": [{**body["messages"][0], "provider": "carrier-pigeon"}]}
    assert errors({"$ref": "#/components/schemas/RegistrationRequest"}, unknown)
    bad_eapi_id = {"messages": [{"provider": "bulksms-eapi", "message_id": "77149843739"}]}
    assert errors({"$ref": "#/components/schemas/RegistrationRequest"}, bad_eapi_id)


@pytest.mark.parametrize("value", ["77149843739", "abc-DEF_1.2@x:y+z", "a" * 128, "a" * 129, "", "has space", "ö"])
def test_message_id_pattern_is_the_codes_anchored(value: str) -> None:
    pattern = schema("SevenioReport")["properties"]["msg_id"]["pattern"]
    assert pattern.startswith("^")
    assert pattern.endswith("$")
    assert bool(re.search(pattern, value)) == bool(MESSAGE_ID.fullmatch(value))


def test_body_limit_is_the_settings() -> None:
    limit = Settings(table_name="t").max_body_bytes
    assert f"at most {limit} bytes" in operations()[("post", "/callbacks/sevenio")]["description"]
    assert str(limit) in DOC["components"]["responses"]["PayloadTooLarge"]["description"]


def test_report_count_bound_is_read_when_the_code_has_one() -> None:
    webhook = schema("BulksmsWebhook")
    bound = getattr(callbacks, "MAX_REPORTS", None)
    assert webhook.get("maxItems") == bound
    if bound is not None:
        assert f"at most {bound} reports" in operations()[("post", "/callbacks/bulksms")]["description"]


# -- what the providers and the code really send ------------------------------------------------------------

CALLBACK_EVENTS = sorted(p for p in EVENTS.glob("*.json") if p.name.startswith(("sevenio-", "bulksms-")))


@pytest.mark.parametrize("path", CALLBACK_EVENTS, ids=lambda p: p.stem)
def test_provider_requests_fit_the_description(path: Path) -> None:
    event = json.loads(path.read_text())
    method, route = event["routeKey"].split(" ", 1)
    operation = operations()[(method.lower(), route)]
    declared = parameters(operation)
    sent = dict(parse_qsl(event.get("rawQueryString", ""), keep_blank_values=True))
    for name, value in sent.items():
        if ("query", name) in declared:
            assert not errors(declared[("query", name)]["schema"], value), (name, value)
    for (where, name), parameter in declared.items():
        if where == "query" and parameter["required"]:
            assert name in sent, name
    if method == "GET":
        assert "requestBody" not in operation
        return
    raw = event.get("body") or ""
    body = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode()
    content_type = event["headers"]["content-type"].split(";")[0]
    media = operation["requestBody"]["content"][content_type]
    instance = json.loads(body) if content_type == "application/json" else dict(parse_qsl(body.decode()))
    assert not errors(media["schema"], instance), path.name


def test_bulksms_probe_and_an_empty_seven_io_body_are_told_apart() -> None:
    assert not errors({"$ref": "#/components/schemas/BulksmsWebhook"}, [])
    assert errors({"$ref": "#/components/schemas/SevenioJson"}, [])
    assert errors({"$ref": "#/components/schemas/SevenioReport"}, {"msg_id": "77149843739"})


def test_a_message_read_back_fits_the_description() -> None:
    records = json.loads((EVENTS / "stream-report-delivered.json").read_text())["Records"]
    for record in records:
        shown = messages.view(from_dynamo(record["dynamodb"]["NewImage"]))
        assert not errors({"$ref": "#/components/schemas/Message"}, shown)
        assert set(shown) == set(schema("Message")["required"])
    assert errors({"$ref": "#/components/schemas/Message"}, {**shown, "status": "lost"})


# -- the sender's lookup, erasure and status callbacks --------------------------------------------------------

NUMBER = "+491701234567"
CALLBACK = "https://hooks.sender.example/dlr?key=s3cret"
# DNS as the registration sees it here: no lookup leaves the process.
ADDRESSES = {"hooks.sender.example": ["93.184.215.14"]}


def resolve(host: str) -> list[str]:
    if host not in ADDRESSES:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return ADDRESSES[host]


@pytest.fixture
def api(handlers: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The messages handler on moto, status callbacks enabled with a resolver that answers from ``ADDRESSES``."""
    module = handlers["messages"]
    monkeypatch.setattr(module.service, "resolve", resolve)
    monkeypatch.setenv("FORWARD_SIGNING_KEY", "k" * 32)
    return module


def call(api: Any, method: str, path: str, query: str = "", body: Any = None) -> tuple[int, Any]:
    raw = json.dumps(body).encode() if body is not None else b""
    headers = {"content-type": "application/json"} if body is not None else {}
    _, event = http_event(method, path, query, headers, raw)
    return answer_of(api, event)


def register(api: Any, *entries: dict[str, Any]) -> None:
    code, answer = call(api, "POST", "/messages", body={"messages": list(entries)})
    assert code == 200, answer
    assert not errors({"$ref": "#/components/schemas/RegistrationRequest"}, {"messages": list(entries)})


def sent_parameters_fit(operation: dict[str, Any], query: str) -> None:
    """Each parameter a client sends is one the operation declares, and fits its schema (a number as a number)."""
    declared = parameters(operation)
    for name, value in parse_qsl(query, keep_blank_values=True):
        schema = declared[("query", name)]["schema"]
        instance = int(value) if schema.get("type") == "integer" else value
        assert not errors(schema, instance), (name, value)


def test_lookup_and_erasure_limits_are_the_codes() -> None:
    lookup = parameters(operations()[("get", "/messages")])
    limit = lookup[("query", "limit")]["schema"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (
        1,
        messages.LOOKUP_LIMIT_MAX,
        messages.LOOKUP_LIMIT_DEFAULT,
    )
    assert lookup[("query", "recipient")]["required"] is True
    assert lookup[("query", "recipient")]["schema"]["maxLength"] == recipients.TEXT_MAX
    assert lookup[("query", "next")]["schema"]["maxLength"] == recipients.TOKEN_MAX
    assert schema("LookupResult")["properties"]["messages"]["maxItems"] == messages.LOOKUP_LIMIT_MAX
    assert schema("ForgetResult")["properties"]["removed"]["maximum"] == messages.FORGET_MOST
    erasure = parameters(operations()[("delete", "/messages")])
    assert set(erasure) == {("query", "recipient")}
    assert schema("MessageSummary")["required"] == list(messages.SUMMARY_FIELDS)
    assert schema("Registration")["properties"]["callback_url"]["maxLength"] == forwarding.MAX_URL_LENGTH


def test_a_lookup_page_by_page_and_an_erasure_fit_the_description(api: Any) -> None:
    register(
        api,
        *(
            {
                "provider": "sevenio",
                "message_id": f"7714984373{n}",
                "sent_at": f"2026-11-22T0{n}:00:00Z",
                "recipient": NUMBER,
            }
            for n in range(3)
        ),
    )
    lookup, erasure = operations()[("get", "/messages")], operations()[("delete", "/messages")]
    query = "recipient=%2B491701234567&since=2026-11-22T00%3A00%3A00Z&limit=2"
    sent_parameters_fit(lookup, query)
    code, first = call(api, "GET", "/messages", query)
    assert code == 200, first
    assert not errors({"$ref": "#/components/schemas/LookupResult"}, first)
    assert [m["message_id"] for m in first["messages"]] == ["77149843732", "77149843731"]
    assert isinstance(first["next"], str)
    query = f"recipient=%2B491701234567&limit=2&next={first['next']}"
    sent_parameters_fit(lookup, query)
    code, last = call(api, "GET", "/messages", query)
    assert code == 200, last
    assert not errors({"$ref": "#/components/schemas/LookupResult"}, last)
    assert ([m["message_id"] for m in last["messages"]], last["next"]) == (["77149843730"], None)
    sent_parameters_fit(erasure, "recipient=%2B491701234567")
    code, erased = call(api, "DELETE", "/messages", "recipient=%2B491701234567")
    assert (code, erased) == (200, {"removed": 3, "more": False})
    assert not errors({"$ref": "#/components/schemas/ForgetResult"}, erased)
    code, refused = call(api, "GET", "/messages", "recipient=%2B491701234567&recipient=%2B491701234568")
    assert code == 400
    assert not errors({"$ref": "#/components/schemas/Error"}, refused)
    # The description would not have let these through either.
    assert errors(lookup_parameter("limit"), messages.LOOKUP_LIMIT_MAX + 1)
    assert errors(lookup_parameter("next"), first["next"] + "=")


def lookup_parameter(name: str) -> dict[str, Any]:
    found: dict[str, Any] = parameters(operations()[("get", "/messages")])[("query", name)]["schema"]
    return found


def test_a_message_with_a_callback_url_and_forwarding_state_read_back_fits_the_description(
    api: Any, store: Store
) -> None:
    register(api, {"provider": "sevenio", "message_id": "77149843739", "callback_url": CALLBACK, "recipient": NUMBER})
    code, fresh = call(api, "GET", "/messages/sevenio/77149843739")
    assert code == 200, fresh
    store.record_forward(
        "sevenio", "77149843739", sequence=1, state=ForwardState.RETRYING, http_status=None, now=SIGNED_AT
    )
    store.record_forward(
        "sevenio", "77149843739", sequence=1, state=ForwardState.DELIVERED, http_status=204, now=SIGNED_AT
    )
    code, forwarded = call(api, "GET", "/messages/sevenio/77149843739")
    assert code == 200, forwarded
    assert forwarded["callback"]["state"] == "delivered"
    assert forwarded["callback_url"] == CALLBACK
    for shown in (fresh, forwarded):
        assert not errors({"$ref": "#/components/schemas/Message"}, shown)
        assert set(shown) == set(schema("Message")["required"])
        assert set(shown["callback"]) == set(schema("Message")["properties"]["callback"]["required"])
    assert errors(
        {"$ref": "#/components/schemas/Message"}, {**forwarded, "callback": {**forwarded["callback"], "state": "lost"}}
    )


# URLs the code takes (with the host allowed or resolving to a global address) and ones it refuses.
TAKEN = [
    CALLBACK,
    "HTTPS://hooks.sender.example:8443/a/b?x=1&y=%2F",
    "https://93.184.215.14/dlr",
    "https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/dlr",
    "http://127.0.0.1:8080/local",
    "https://hooks.sender.example/" + "p" * (forwarding.MAX_URL_LENGTH - 30),
]
REFUSED = [
    "",
    "ftp://hooks.sender.example/x",
    "https://hooks.sender.example/a b",
    "https://hooks.sender.example/#frag",
    "https://hooks.sender.example\\@evil.example/",
    "https://bücher.example/",
    "https://hooks.sender.example/" + "p" * forwarding.MAX_URL_LENGTH,
    "hooks.sender.example/dlr",
]


@pytest.mark.parametrize("url", TAKEN + REFUSED)
def test_callback_url_schema_never_refuses_a_url_the_code_takes(url: str) -> None:
    try:
        forwarding.check_url(url, allowed_hosts=frozenset({"127.0.0.1"}), resolve=resolve)
        taken = True
    except forwarding.RefusedUrl:
        taken = False
    assert taken == (url in TAKEN), url
    fits = not errors(schema("Registration")["properties"]["callback_url"], url)
    assert fits == taken, url
