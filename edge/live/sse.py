"""Server-Sent Events: framing and the stream generator for one listener."""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Callable, Iterator

from edge.live.bus import LiveBus, LiveEvent, shutting_down

#: At most this many queued events are sent in one write.
COALESCE_MAX = 256


def frame(event: LiveEvent) -> str:
    data = json.dumps(event.data, ensure_ascii=False, separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.type}\ndata: {data}\n\n"


def stream(
    bus: LiveBus,
    channels: set[str],
    last_event_id: int | None,
    heartbeat_s: float,
    still_valid: Callable[[], bool] | None = None,
    final_types: frozenset[str] = frozenset(),
) -> Iterator[str]:
    """Yield SSE frames: missed events first (resume), then live ones.

    Subscribing before replaying and skipping ids already sent closes the gap
    between the two without duplicates.
    """
    sub = bus.subscribe(channels)
    try:
        # Where "live" starts is fixed before the first byte goes out: an event
        # written while that byte is in flight must not fall between the two.
        sent = last_event_id if last_event_id is not None else bus.latest_id()
        # Tell EventSource how fast to reconnect, and flush headers at once.
        yield "retry: 1000\n\n"
        if last_event_id is not None:
            for event in bus.replay(channels, last_event_id):
                sent = event.id
                yield frame(event)
        last_beat = time.monotonic()
        while not shutting_down.is_set():
            if sub.overflowed:
                # Too slow a reader: end the stream; it resumes by Last-Event-ID.
                return
            try:
                event = sub.queue.get(timeout=min(1.0, heartbeat_s))
            except queue.Empty:
                if time.monotonic() - last_beat >= heartbeat_s:
                    last_beat = time.monotonic()
                    # A session ended or a tablet revoked since the stream opened ends it.
                    if still_valid is not None and not still_valid():
                        return
                    yield ": keep-alive\n\n"
                continue
            # Everything already queued goes out in one write: 55 answers in a burst are one
            # send and one thread wake-up for the teacher's stream, not 55.
            frames = []
            final = False
            while True:
                if event.id > sent:
                    sent = event.id
                    frames.append(frame(event))
                    if event.type in final_types:
                        final = True
                        break
                if len(frames) >= COALESCE_MAX:
                    break
                try:
                    event = sub.queue.get_nowait()
                except queue.Empty:
                    break
            if frames:
                yield "".join(frames)
            if final:
                return
    finally:
        bus.unsubscribe(sub)
