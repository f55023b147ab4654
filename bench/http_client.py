"""A lean HTTP/1.1 client for the load the benchmarks generate.

The load generator runs on the cores it measures. aiohttp's client spent ~0.12 ms of
CPU a request (measured per process from /proc during `bench.api`: 10-12 % of the
whole machine's CPU at ~1,700 requests/s, more than Redis); this one writes a
prepared request on a kept-alive connection and reads the answer by its
Content-Length, as wrk or hey do, and spends a fraction of that. One request at a
time per connection; one connection per simulated client.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit


class HttpError(RuntimeError):
    pass


class Connection:
    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.fixed = "".join(f"{k}: {v}\r\n" for k, v in
                             {"Host": f"{self.host}:{self.port}", **(headers or {})}.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Connection:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *_: Any) -> None:
        if self.writer is not None:
            self.writer.close()

    async def post_json(self, path: str, body: Any) -> tuple[int, Any]:
        payload = json.dumps(body).encode()
        head = (f"POST {path} HTTP/1.1\r\n{self.fixed}Content-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n\r\n").encode()
        assert self.writer is not None and self.reader is not None, "use `async with`"
        self.writer.write(head + payload)
        header = await self.reader.readuntil(b"\r\n\r\n")
        lines = header.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise HttpError(f"{status} answer without Content-Length (chunked bodies are not read)")
        data = await self.reader.readexactly(length)
        return status, json.loads(data) if data else None
