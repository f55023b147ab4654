"""A TCP proxy that can make a server slow: every byte from the client reaches the
server `delay` seconds after it arrived (order kept, so each request is late by the
delay, a pipelined body is not late once per chunk). Answers pass at once.

It runs as a process of its own (`ProxyProcess`), so that the proxied traffic does not
compete with the scenario's load generator for one event loop: SIGUSR1 turns the delay
on, SIGUSR2 off.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time


class SlowProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.delay = 0.0
        self.port = 0
        self.server: asyncio.Server | None = None
        self.connections: set[asyncio.Task] = set()

    async def start(self) -> SlowProxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self.connections):
            task.cancel()
        await asyncio.gather(*self.connections, return_exceptions=True)

    async def _serve(self, client_reader: asyncio.StreamReader,
                     client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.connections.add(task)
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            self.connections.discard(task)
            return
        try:
            await asyncio.gather(self._late(client_reader, server_writer),
                                 self._pipe(server_reader, client_writer))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for writer in (client_writer, server_writer):
                writer.close()
            self.connections.discard(task)

    async def _late(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Client to server: each chunk held until `delay` after its arrival."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def forward() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                    return
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()

        forwarder = asyncio.create_task(forward())
        try:
            while True:
                data = await reader.read(65536)
                queue.put_nowait((time.monotonic() + self.delay, data))
                if not data:
                    break
            await forwarder
        finally:
            forwarder.cancel()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()


class ProxyProcess:
    def __init__(self, target_port: int, delay: float) -> None:
        self.target_port, self.delay = target_port, delay
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> ProxyProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.slow_proxy", str(self.target_port),
             str(self.delay)], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        return self

    def slow(self, on: bool) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGUSR1 if on else signal.SIGUSR2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


async def _serve_forever(target_port: int, delay: float) -> None:
    proxy = await SlowProxy("127.0.0.1", target_port).start()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, lambda: setattr(proxy, "delay", delay))
    loop.add_signal_handler(signal.SIGUSR2, lambda: setattr(proxy, "delay", 0.0))
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print(proxy.port, flush=True)
    await stop.wait()
    await proxy.stop()


if __name__ == "__main__":
    asyncio.run(_serve_forever(int(sys.argv[1]), float(sys.argv[2])))
