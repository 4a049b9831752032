"""A loopback TCP proxy that makes the real Mosquitto in front of it look like a
3.1.1-only broker (Mosquitto 1.x, many appliance brokers).

It terminates TLS with the district's server certificate, reads the client's
first packet (CONNECT) and looks at its protocol level:

- level 5: it answers as an old broker does, then closes. ``mode="connack"``:
  the 3.1.1 CONNACK with return code 1, "unacceptable protocol version";
  ``mode="close"``: no answer at all.
- level 4 (3.1.1) or 3: it opens a TLS connection to the broker's password
  listener and forwards both directions byte for byte, the CONNECT included,
  so the user name and password in it are the identity the broker checks.

``cut()`` drops every forwarded connection at once without a DISCONNECT, the way a
network failure does (the broker then publishes the client's last will).
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
from collections import Counter
from pathlib import Path

from .broker import free_port

CONNACK_311_UNACCEPTABLE_PROTOCOL = b"\x20\x02\x00\x01"


def _read_exact(sock: ssl.SSLSocket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed before a whole CONNECT arrived")
        out += chunk
    return out


def _read_packet(sock: ssl.SSLSocket) -> bytes:
    """One whole MQTT control packet: fixed header, remaining length varint, rest."""
    first = _read_exact(sock, 1)
    length, shift, header = 0, 0, first
    while True:
        byte = _read_exact(sock, 1)
        header += byte
        length |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            break
        shift += 7
    return header + _read_exact(sock, length)


def protocol_level(connect: bytes) -> int:
    """The protocol level byte of a CONNECT packet (4 = 3.1.1, 5 = v5)."""
    if connect[0] >> 4 != 1:
        raise ValueError("first packet is not CONNECT")
    i = 1
    while connect[i] & 0x80:
        i += 1
    i += 1  # past the remaining length
    name_len = int.from_bytes(connect[i:i + 2], "big")
    return connect[i + 2 + name_len]


def _readable(socks: list[ssl.SSLSocket], timeout: float) -> list[ssl.SSLSocket]:
    poller = select.poll()
    for s in socks:
        poller.register(s, select.POLLIN)
    fds = {fd for fd, _ in poller.poll(timeout * 1000)}
    return [s for s in socks if s.fileno() in fds]


class OldBroker:
    def __init__(self, upstream_port: int, ca_file: Path, server_cert: Path, server_key: Path, mode: str = "connack") -> None:
        assert mode in ("connack", "close")
        self.mode = mode
        self.upstream_port = upstream_port
        self.port = free_port()
        self._server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_ctx.load_cert_chain(str(server_cert), str(server_key))
        self._client_ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file))
        self.levels: Counter[int] = Counter()  # CONNECTs seen, by protocol level
        self.cuts: list[int] = []  # connections dropped by each cut()
        self._listener: socket.socket | None = None
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def start(self) -> OldBroker:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        threading.Thread(target=self._accept, name="oldbroker-accept", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.cut()
        if self._listener:
            self._listener.close()

    def cut(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        # The broker's side first, every pair, before any client can notice and reconnect:
        # the broker then always sees the drop (and publishes last wills) ahead of a new CONNECT.
        sockets = [b for _, b in pairs] + [a for a, _ in pairs]
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for s in sockets:
            s.close()
        self.cuts.append(len(pairs))

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                raw, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), name="oldbroker-conn", daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(10)
        try:
            client = self._server_ctx.wrap_socket(raw, server_side=True)
            connect = _read_packet(client)
            level = protocol_level(connect)
        except (OSError, ValueError, ConnectionError, IndexError):
            raw.close()
            return
        with self._lock:
            self.levels[level] += 1
        if level >= 5:
            if self.mode == "connack":
                client.sendall(CONNACK_311_UNACCEPTABLE_PROTOCOL)
            client.close()
            return
        try:
            upstream = self._client_ctx.wrap_socket(socket.create_connection(("127.0.0.1", self.upstream_port), 10), server_hostname="127.0.0.1")
            upstream.sendall(connect)
        except OSError:
            client.close()
            return
        client.settimeout(None)
        upstream.settimeout(None)
        with self._lock:
            self._pairs.append((client, upstream))
        self._pump(client, upstream)

    def _pump(self, a: ssl.SSLSocket, b: ssl.SSLSocket) -> None:
        # One thread per connection, both directions: an SSL socket must not be
        # read and written from two threads at once.
        peer = {a: b, b: a}
        try:
            while not self._stop.is_set():
                ready = [s for s in (a, b) if s.pending()]
                if not ready:
                    # poll(), not select(): the test process may hold 1024+ descriptors.
                    ready = _readable([a, b], 0.5)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    peer[s].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass
