"""A dependency that hangs: it accepts connections and never answers, as a stuck endpoint does."""

from __future__ import annotations

import contextlib
import socket
import threading


class HangingServer:
    """Listens on loopback, accepts every connection, reads what comes, answers nothing until closed."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self._held: list[socket.socket] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="hanging", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self._held.append(connection)

    def __enter__(self) -> HangingServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        for connection in self._held:
            with contextlib.suppress(OSError):
                connection.close()
