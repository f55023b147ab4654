"""The load the scenarios run under: instance creates through the API, every answer
counted, the accepted commands kept for the books.

- `Load`: closed loop, each client sends its next request when the last is answered
  (paced with a rate): it never offers more than the service answers.
- `PacedLoad`: open loop, `rate` requests a second whatever the answers take, as many
  independent users would send them; what the service accepted per second is then a
  figure of the service, not of the clients' patience.
"""
import asyncio
import time
from collections import Counter

import aiohttp

from tests.reliability.books import Books, Timeline, balance

V1 = "/api/v1"
# The scenarios' open-loop load: offered, and the least share of it the API must accept
# (what it accepted is recorded in each scenario's figures: 202-250/s on the 2-core
# machine). The floor catches an API that stops accepting under the fault, with room for
# the host's speed, which swings 2-3x from hour to hour.
OFFERED_PER_SECOND = 250
LEAST_ACCEPTED_PER_SECOND = 150
NOT_SENT = -1  # an answers key: the in-flight cap was reached, the request not sent


class Creates:
    """Instance creates sent and their answers recorded: what both loads share."""

    def __init__(self, http, url: str, db: str) -> None:
        self.http, self.url, self.db = http, url, db
        self.accepted: dict[str, tuple[str, dict]] = {}
        self.answers: Counter[int] = Counter()
        self.unavailable_without_retry_after = 0
        # Requests that got no answer (the client's timeout): each may have been stored.
        self.unanswered: dict[str, dict] = {}
        self.latencies: list[float] = []

    async def create(self, session, n: int, timeout: float) -> int:
        """Sends create n; returns the answer's status (0: no answer)."""
        data = {"name": f"item {n}", "n": n}
        began = time.monotonic()
        try:
            async with session.post(f"{self.url}{V1}/instances/{self.db}/async/Item/create",
                                    json={"instance_id": f"i{n}", "data": data},
                                    timeout=timeout) as r:
                self.latencies.append(time.monotonic() - began)
                self.answers[r.status] += 1
                if r.status == 202:
                    self.accepted[(await r.json())["command_id"]] = (f"i{n}", data)
                elif r.status == 503 and "Retry-After" not in r.headers:
                    self.unavailable_without_retry_after += 1
                return r.status
        except (TimeoutError, OSError):
            self.answers[0] += 1
            self.unanswered[f"i{n}"] = data
            return 0


class Load(Creates):
    """Clients creating instances, without pause unless given a rate; every answer is
    recorded."""

    def __init__(self, http, url: str, db: str, clients: int = 8, rate: float | None = None) -> None:
        super().__init__(http, url, db)
        self.clients = clients
        # With a rate, clients pace themselves (a soak must stay below capacity, or the
        # backlog, not the worker, is what grows).
        self.pause = clients / rate if rate else 0.0
        self.running = True
        self.n = 0

    async def client(self) -> None:
        while self.running:
            self.n += 1
            if await self.create(self.http, self.n, 20) in (0, 503):
                await asyncio.sleep(0.2)
            if self.pause:
                await asyncio.sleep(self.pause)

    async def run_while(self, work) -> None:
        tasks = [asyncio.create_task(self.client()) for _ in range(self.clients)]
        try:
            await work()
        finally:
            self.running = False
            await asyncio.gather(*tasks)


class PacedLoad(Creates):
    def __init__(self, http, url: str, db: str, rate: float, max_in_flight: int = 1000,
                 timeout: float = 20) -> None:
        super().__init__(http, url, db)
        self.rate, self.max_in_flight, self.timeout = rate, max_in_flight, timeout
        self.in_flight = 0
        self.seconds = 0.0

    async def one(self, session: aiohttp.ClientSession, n: int) -> None:
        try:
            await self.create(session, n, self.timeout)
        finally:
            self.in_flight -= 1

    async def run_while(self, work) -> None:
        done = asyncio.Event()
        tasks: set[asyncio.Task] = set()

        async def send(session: aiohttp.ClientSession) -> None:
            n = 0
            while not done.is_set():
                n += 1
                delay = started + n / self.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if self.in_flight >= self.max_in_flight:
                    self.answers[NOT_SENT] += 1
                    continue
                self.in_flight += 1
                task = asyncio.create_task(self.one(session, n))
                tasks.add(task)
                task.add_done_callback(tasks.discard)

        # A session of its own: the shared one's pool (aiohttp's default, 100
        # connections) would queue requests in the client and cap what is offered.
        async with aiohttp.ClientSession(
                headers=self.http.headers,
                connector=aiohttp.TCPConnector(limit=self.max_in_flight)) as session:
            started = time.monotonic()
            sender = asyncio.create_task(send(session))
            try:
                await work()
            finally:
                done.set()
                await sender
                self.seconds = time.monotonic() - started
                await asyncio.gather(*tasks)

    def accepted_per_second(self) -> float:
        return len(self.accepted) / self.seconds if self.seconds else 0.0

    def figures(self) -> dict:
        ordered = sorted(self.latencies) or [0.0]
        return {"offered_per_second": self.rate,
                "accepted_per_second": round(self.accepted_per_second()),
                "answer_p50_ms": round(ordered[len(ordered) // 2] * 1000),
                "answer_p99_ms": round(ordered[int(len(ordered) * 0.99)] * 1000),
                "answers": {str(code): n for code, n in sorted(self.answers.items())}}

    async def books(self, runtime, scenario: str, db: str, recovery: float, status_of,
                    timeline: Timeline, **figures) -> Books:
        """The scenario's books, with this load's figures and the scenario's own."""
        books = await balance(runtime, scenario, db, "Item", self.accepted, recovery,
                              unanswered=self.unanswered, status_of=status_of, timeline=timeline)
        books.figures.update(self.figures(), **figures)
        return books
