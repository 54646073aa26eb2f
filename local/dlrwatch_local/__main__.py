"""``make run``: the whole system on loopback, and (unless ``SIMULATE=0``) simulated providers driving it.

Reads the same variables as the deployed functions (``TABLE_NAME``, ``POLL_SCHEDULE``, ``SEVENIO_API_URL``, the
secrets ...) plus ``API_PORT`` (3000), ``POLL_INTERVAL`` (seconds, 60), ``SIMULATE`` (1), ``DYNAMODB``
(``moto`` or ``local``), ``SIM_MESSAGES`` (60), ``SIM_SEED`` (7) and ``EVENTS_FILE``. Status callbacks to senders
are on, with local defaults: ``FORWARD_SIGNING_KEY`` (local-forward-key), ``FORWARD_ALLOWED_HOSTS``
(127.0.0.1,localhost) and ``FORWARD_RETRY_SCHEDULE`` (1s,2s,4s,8s: seconds, so the whole cycle can be watched).
Stops cleanly and at once on Ctrl-C or SIGTERM (what a background job, a container or a test harness sends), even
in the middle of a simulation.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from dlrwatch_local.stack import DEFAULT_FORWARD_KEY, DEFAULT_TOKEN, LocalStack, Options
from dlrwatch_local.standins import ProviderStandIns

if TYPE_CHECKING:
    from dlrwatch_local.simulate import SenderEndpoint, Simulation

# With simulated providers, a schedule of seconds instead of days, so a whole run fits in a minute or two.
SIMULATED_SCHEDULE = "3s,6s,10s,15s,25s"
SIMULATED_POLL_INTERVAL = "1"


def end_timeline(simulation: Simulation) -> None:
    """Plan nothing more for an interrupted simulation, so that it sends no request to a stack that is stopping.

    Its timeline pops the earliest planned action once that action is due; a single planned action that is
    never due leaves it nothing to do, and is swapped in by one slice assignment, so the timeline never sees
    the plan empty between its check and its pop.
    """
    simulation.queue[:] = [(math.inf, 0, lambda: None)]


def main() -> int:
    simulate = os.environ.get("SIMULATE", "1") != "0"
    standins = None
    if simulate:
        standins = ProviderStandIns().start()
        for name, value in {**standins.urls, **ProviderStandIns.credentials()}.items():
            os.environ[name] = value  # the simulated providers replace the real ones entirely
        os.environ.setdefault("POLL_SCHEDULE", SIMULATED_SCHEDULE)
        os.environ.setdefault("POLL_INTERVAL", SIMULATED_POLL_INTERVAL)
    options = Options.from_env()
    events_seen = 0

    def show(detail: dict[str, Any]) -> None:
        nonlocal events_seen
        events_seen += 1
        if not simulate:
            print("status event " + json.dumps(detail, sort_keys=True), flush=True)

    started = time.monotonic()
    stack = LocalStack(options, on_event=show)
    # SIGTERM stops like Ctrl-C: it interrupts whatever the main thread is doing, a simulation included.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    simulation = None
    sender: SenderEndpoint | None = None
    try:
        stack.start()
        api_url = f"http://127.0.0.1:{stack.api.port}"
        print(f"dlrwatch serving on {api_url} in {time.monotonic() - started:.1f}s", flush=True)
        print(
            f"  DynamoDB: {options.dynamodb} at {os.environ['AWS_ENDPOINT_URL_DYNAMODB']}, table {options.table_name}"
        )
        print(f"  poller every {options.poll_interval:g}s, schedule {os.environ.get('POLL_SCHEDULE') or 'default'}")
        print(f"  status events: {options.events_file}")
        token_note = "the default local token" if os.environ["CALLBACK_TOKEN"] == DEFAULT_TOKEN else "CALLBACK_TOKEN"
        print(f"  callbacks: {api_url}/callbacks/sevenio?token=... and /callbacks/bulksms ({token_note})")
        key_note = (
            "the default local key"
            if os.environ["FORWARD_SIGNING_KEY"] == DEFAULT_FORWARD_KEY
            else "FORWARD_SIGNING_KEY"
        )
        print(
            f"  status callbacks to senders: signed with {key_note}, to https hosts and to "
            f"{os.environ['FORWARD_ALLOWED_HOSTS'] or 'no other'}, retried at {os.environ['FORWARD_RETRY_SCHEDULE']}"
        )
        print(
            f"  forward queue: {os.environ['FORWARD_QUEUE_URL']}, dead letters: "
            f"{os.environ['FORWARD_DEAD_LETTER_QUEUE_URL']} (SQS at {os.environ['AWS_ENDPOINT_URL_SQS']})"
        )
        print("  Ctrl-C to stop", flush=True)
        if simulate and standins is not None:
            from dlrwatch.domain.schedule import Schedule
            from dlrwatch_local.simulate import SenderEndpoint, Simulation

            schedule = Schedule.parse(os.environ["POLL_SCHEDULE"])
            sender = SenderEndpoint(os.environ["FORWARD_SIGNING_KEY"], seed=int(os.environ.get("SIM_SEED") or 7))
            sender.start()
            simulation = Simulation(
                api_url,
                standins,
                os.environ["CALLBACK_TOKEN"],
                messages=int(os.environ.get("SIM_MESSAGES") or 60),
                seed=int(os.environ.get("SIM_SEED") or 7),
                horizon=schedule.offsets[-1].total_seconds(),
                sender=sender,
                dead_letters=stack.dead_letters,
            )

            def count_event(detail: dict[str, Any]) -> None:
                simulation.status_events += 1

            stack.on_event = count_event
            simulation.run()
            print("simulation done; still serving (Ctrl-C to stop)", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        for stop_signal in (signal.SIGINT, signal.SIGTERM):  # stopping once is enough: a second signal waits
            signal.signal(stop_signal, signal.SIG_IGN)
        print("stopping ...", flush=True)
        if simulation is not None:
            end_timeline(simulation)
        stack.stop()
        if sender is not None:
            sender.stop()
        if standins is not None:
            standins.stop()
        print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
