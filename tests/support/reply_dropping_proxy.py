"""A loopback TCP proxy that loses the replies to chosen HTTP requests.

It stands for a proxy or a network that times out after the server has done the work: the
request reaches the server, which commits it, but its reply never reaches the client.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType


class ReplyDroppingProxy:
    """Forward 127.0.0.1:`port` to 127.0.0.1:`target_port`, dropping some replies.

    The replies to the first `drops` requests whose bytes contain `marker` are read from the
    server and thrown away, and the client's connection is closed instead.

    Args:
        target_port: The server's port.
        marker: Bytes that identify the requests to answer with nothing, e.g. a request line.
        drops: How many such replies to lose; later matching requests pass.
    """

    def __init__(self, target_port: int, marker: bytes, drops: int = 1) -> None:
        self.target_port = target_port
        self.marker = marker
        self.remaining = drops
        self.dropped = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _claim_drop(self, data: bytes) -> bool:
        with self._lock:
            if self.remaining > 0 and self.marker in data:
                self.remaining -= 1
                return True
            return False

    def _relay(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        dropping = threading.Event()

        def requests_upstream() -> None:
            try:
                while data := client.recv(65536):
                    if self._claim_drop(data):
                        dropping.set()
                    upstream.sendall(data)
            except OSError:
                pass

        threading.Thread(target=requests_upstream, daemon=True).start()
        try:
            while data := upstream.recv(65536):
                if dropping.is_set():  # the server answered: the work is done, the reply lost
                    with self._lock:
                        self.dropped += 1
                    break
                client.sendall(data)
        except OSError:
            pass
        finally:
            for connection in (client, upstream):  # shutdown also wakes the other thread's recv
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                connection.close()

    def __enter__(self) -> ReplyDroppingProxy:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._listener.close()
