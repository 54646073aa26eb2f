"""The API functions' routing: what API Gateway matched reaches its handler, anything else is a clean 404, and a
domain error is its answer, never a crash."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dlrwatch.errors import BadInput, StorageUnavailable
from dlrwatch.http import Router, json_response


def event(method: str, path: str) -> dict[str, Any]:
    return {"rawPath": path, "requestContext": {"http": {"method": method}}}


@pytest.fixture
def router() -> Router:
    app = Router()

    @app.route("GET", "/messages/<provider>/<message_id>")
    def read(_: Any, provider: str, message_id: str) -> dict[str, Any]:
        return json_response(200, {"provider": provider, "message_id": message_id})

    @app.route(["GET", "POST"], "/callbacks/<channel>")
    def receive(_: Any, channel: str) -> dict[str, Any]:
        if channel == "broken":
            raise StorageUnavailable("down")
        if channel == "bad":
            raise BadInput("no such thing")
        if channel == "bug":
            raise ZeroDivisionError
        return json_response(200, {"channel": channel})

    return app


def answer(router: Router, method: str, path: str) -> tuple[int, dict[str, Any]]:
    response = router.resolve(event(method, path))
    assert response["headers"] == {"Content-Type": "application/json"}
    return response["statusCode"], json.loads(response["body"])


def test_path_segments_reach_the_handler_still_percent_encoded(router: Router) -> None:
    assert answer(router, "GET", "/messages/bulksms-eapi/123%3A4477") == (
        200,
        {"provider": "bulksms-eapi", "message_id": "123%3A4477"},
    )


def test_either_method_of_a_route_reaches_it(router: Router) -> None:
    assert answer(router, "POST", "/callbacks/sevenio") == (200, {"channel": "sevenio"})
    assert answer(router, "get", "/callbacks/sevenio") == (200, {"channel": "sevenio"})


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/callbacks/sevenio"),
        ("GET", "/messages/sevenio"),
        ("GET", "/messages/sevenio/1/2"),
        ("GET", "/messages/sevenio/1\n"),
        ("GET", "/callbacks/"),
        ("GET", ""),
        ("", "/callbacks/sevenio"),
    ],
)
def test_anything_else_is_a_404_that_names_no_internals(router: Router, method: str, path: str) -> None:
    assert answer(router, method, path) == (404, {"error": "no such route"})


def test_an_event_without_its_parts_is_a_404(router: Router) -> None:
    assert router.resolve({})["statusCode"] == 404


def test_domain_errors_are_their_answers(router: Router) -> None:
    assert answer(router, "GET", "/callbacks/bad") == (400, {"error": "no such thing"})
    assert answer(router, "GET", "/callbacks/broken") == (503, {"error": "storage unavailable, retry later"})


def test_a_bug_fails_the_invocation_so_the_error_alarm_sees_it(router: Router) -> None:
    with pytest.raises(ZeroDivisionError):
        router.resolve(event("GET", "/callbacks/bug"))
