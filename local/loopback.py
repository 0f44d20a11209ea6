"""The local app's own HTTP servers on loopback (the control endpoint, the web client's server).

Bound at once, so a port in use fails before anything else starts; answering from a daemon thread once
started, each request on its own thread; ``close()`` stops answering (if it was) and frees the port.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__((host, port), handler)
        self._serving = False

    def start_serving(self) -> None:
        self._serving = True
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()

    def close(self) -> None:
        """Stop answering (if it was) and close the socket."""
        if self._serving:
            self.shutdown()
        self.server_close()
