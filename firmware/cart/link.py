# The hub link: HTTP/1.1 over asyncio streams (the same code on the cart and on
# CPython), every request and reply authenticated with the cart's key.
import json

from cart import protocol
from cart.compat import asyncio


class LinkError(Exception):
    pass


class HubLink:
    def __init__(self, host, port, cart_id, key, counter, timeout_s=5):
        self.host = host
        self.port = port
        self.cart_id = cart_id
        self.key = key
        self.counter = counter
        self.timeout_s = timeout_s

    async def _http(self, method, path, body, ctr):
        mac = protocol.request_mac(self.key, method, path, self.cart_id, ctr, body)
        head = "%s %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\nContent-Length: %d\r\n%s: %s\r\n%s: %d\r\n%s: %s\r\n" % (
            method, path, self.host, self.port, len(body), protocol.HDR_ID, self.cart_id,
            protocol.HDR_COUNTER, ctr, protocol.HDR_MAC, mac)
        if body:
            head += "Content-Type: application/json\r\n"
        reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), self.timeout_s)
        try:
            writer.write(head.encode() + b"\r\n" + body)
            await writer.drain()
            status_line = await asyncio.wait_for(reader.readline(), self.timeout_s)
            parts = status_line.split()
            if len(parts) < 2:
                raise LinkError("no HTTP status line")
            status = int(parts[1])
            headers = {}
            while True:
                line = await asyncio.wait_for(reader.readline(), self.timeout_s)
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if length > protocol.MAX_FILE_BYTES + 4096:
                raise LinkError("reply too large")
            data = b""
            while len(data) < length:
                chunk = await asyncio.wait_for(reader.read(length - len(data)), self.timeout_s)
                if not chunk:
                    break
                data += chunk
            return status, headers, data
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except Exception:  # noqa: S110 - the exchange is over; a close error changes nothing
                pass

    def _verify(self, headers, ctr, data):
        mac = headers.get(protocol.HDR_MAC.lower(), "")
        if not protocol.equal(mac, protocol.reply_mac(self.key, self.cart_id, ctr, data)):
            raise LinkError("reply not authenticated by the hub: refused")

    async def exchange(self, telemetry):
        """Post telemetry (its ``ctr`` set here), return the authenticated reply."""
        ctr = self.counter.next()
        telemetry["ctr"] = ctr
        body = json.dumps(telemetry).encode()
        status, headers, data = await self._http("POST", protocol.LINK_PATH, body, ctr)
        if status != 200:
            raise LinkError("hub answered %d: %s" % (status, data[:200]))
        self._verify(headers, ctr, data)
        return json.loads(data)

    async def fetch(self, version, name):
        """One firmware file's bytes, authenticated by the hub's reply MAC."""
        ctr = self.counter.next()
        status, headers, data = await self._http("GET", protocol.FIRMWARE_PATH + version + "/" + name, b"", ctr)
        if status != 200:
            raise LinkError("firmware file %s/%s: hub answered %d" % (version, name, status))
        self._verify(headers, ctr, data)
        return data
