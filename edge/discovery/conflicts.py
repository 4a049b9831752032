"""Notice another host claiming our service instance name after we registered it.

Probing (RFC 6762 §8) only protects a name at start-up. Two hubs started within the same
second, or two classroom networks bridged together later, end up announcing the same
"<school> <room>" for different hosts; §9 says to resolve that when it is seen. We do it
deterministically so exactly one hub renames: the one whose host name sorts higher.
"""

from __future__ import annotations

from collections.abc import Callable

from zeroconf import DNSService, RecordUpdate, RecordUpdateListener, Zeroconf


class ConflictListener(RecordUpdateListener):
    """Calls ``on_conflict(instance_name)`` from the zeroconf loop; the callback must not block."""

    def __init__(self, server: str, names: Callable[[], list[str]], on_conflict: Callable[[str], None]) -> None:
        self._server = server.lower()
        self._names = names
        self._on_conflict = on_conflict

    def async_update_records(self, zc: Zeroconf, now: float, records: list[RecordUpdate]) -> None:
        ours = {name.lower() for name in self._names()}
        for update in records:
            record = update.new
            if not isinstance(record, DNSService) or record.ttl == 0:
                continue
            if record.key not in ours:
                continue
            other = record.server_key
            if other != self._server and self._server > other:
                self._on_conflict(record.name)

    def async_update_records_complete(self) -> None:
        """Nothing to batch: conflicts are handed over as they are seen."""
