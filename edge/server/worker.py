"""gunicorn's gthread worker, with kept-alive connections served by the thread that has them.

gthread hands every request through its main thread: the request thread returns a
kept-alive connection to the main thread's poller (a callback through a pipe, the
socket made non-blocking, registered with epoll), the poller sees the next request
arrive, unregisters the socket and submits the connection to the thread pool again.
That is two wake-ups of the main thread per request, each of which needs the GIL
behind the busy request threads: with 55 tablets answering at once it was a third of
the GIL time of a worker (README, "Quizzes", py-spy).

Here the thread that answered a request on a kept-alive connection waits for that
connection's next request itself (``poll``, the GIL released), so a tablet's requests
go socket -> its thread -> the app, with nobody else woken. A classroom has fewer
connections per worker than the worker has threads; where it has more (more than
``threads - RESERVE_THREADS``), threads stop lingering and connections go back to the
poller exactly as in gthread, so no connection waits for a thread held by an idle one.
Everything else (accepting, parsing, the WSGI call, sendfile, keep-alive timeouts,
graceful stop) is gthread's own.
"""

from __future__ import annotations

import select
import time
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

# Threads left for connections that are not lingering (new ones, the poller's).
RESERVE_THREADS = 16
# A lingering thread looks up from its poll this often, to see whether the worker is
# stopping or now has more connections than threads to spare.
LOOK_UP_S = 1.0


class LingeringThreadWorker(ThreadWorker):
    def handle(self, conn: Any) -> Any:
        keep = super().handle(conn)
        while keep is True and self._may_linger(conn):
            waited = self._wait_for_request(conn)
            if waited is None:
                break  # hand it to the poller after all (stopping, or threads are short)
            if not waited:
                return False  # idle for the whole keep-alive timeout: closed, as the poller would
            keep = super().handle(conn)
        return keep

    def _may_linger(self, conn: Any) -> bool:
        return self.alive and not conn.is_http2 and self.nr_conns <= self.cfg.threads - RESERVE_THREADS

    def _wait_for_request(self, conn: Any) -> bool | None:
        """True when the next request's bytes are here; False after the keep-alive timeout; None: give it back."""
        if conn.parser.unreader.buf.getvalue():
            return True  # read ahead with the last request's body (pipelined)
        poller = getattr(conn, "hub_poll", None)
        if poller is None:
            poller = conn.hub_poll = select.poll()
            poller.register(conn.sock.fileno(), select.POLLIN)
        deadline = time.monotonic() + self.cfg.keepalive
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if poller.poll(min(left, LOOK_UP_S) * 1000):
                return True  # readable: a request, or the client closed (the parser sees which)
            if not self._may_linger(conn):
                return None
