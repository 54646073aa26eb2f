"""docs/openapi.json: generated from template.yaml and the code, committed, and true to both."""

from __future__ import annotations

import base64
import difflib
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from dlrwatch_local import openapi
from jsonschema import Draft202012Validator
from support.template import template

from dlrwatch import callbacks, messages
from dlrwatch.config import Settings
from dlrwatch.providers import PROVIDERS
from dlrwatch.providers.base import MESSAGE_ID
from dlrwatch.store import from_dynamo

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
