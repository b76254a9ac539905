"""A bounded request loop from the host to a NodePort on 127.0.0.1, for tests of the real data path.

Each request comes from a source address and port that no earlier request of this process used. A loop opening
hundreds of connections a second from one address reuses its ephemeral ports within seconds, while the kernel's
connection tracking keeps a closed connection's entry (TIME_WAIT, 120 s) with the pod kube-proxy's DNAT chose
for it. A new connection on a reused port reopens that entry and goes to that pod, whatever the rules say now: to
a pod that has exited since (connection refused) or whose address is gone (timeout). Real clients of one address
meet this too, but it is the loop's own artefact, not the Service's behaviour that the tests judge.
"""

from __future__ import annotations

import http.client
import itertools
import random
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Outcome:
    """One request: when it started, its status (0 = no answer), the pod that answered, or the error."""

    t: float
    status: int
    pod: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


# Source pairs: ports 32768-60999 on 127.0.1.1 ... 127.0.254.254 (every 127/8 address is this host's), walked in
# order from a random start, so neither this process nor one started just before it reuses a pair in practice.
_PORTS = range(32768, 61000)
_ADDRESSES = [f"127.0.{a}.{b}" for a in range(1, 255) for b in range(1, 255)]
_start = random.randrange(len(_ADDRESSES))
_pairs = ((_ADDRESSES[(_start + i // len(_PORTS)) % len(_ADDRESSES)], _PORTS[i % len(_PORTS)])
          for i in itertools.count())
_pairs_lock = threading.Lock()


def fresh_connection(port: int, timeout: float) -> socket.socket:
    """A TCP connection to 127.0.0.1:``port`` from a source pair never used before (see the module's text)."""
    while True:
        with _pairs_lock:
            source = next(_pairs)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.bind(source)
        except OSError:  # the pair is taken by a socket of someone else: the next one
            sock.close()
            continue
        try:
            sock.connect(("127.0.0.1", port))
        except OSError:
            sock.close()
            raise
        return sock


@dataclass
class RequestLoop:
    """GET ``path`` on 127.0.0.1:``port`` from ``workers`` threads, one connection per request.

    Bounded twice: it stops after ``max_seconds`` or ``max_requests``, whichever comes first,
    and when :meth:`stop` is called.
    """

    port: int
    path: str = "/"
    workers: int = 4
    max_seconds: float = 120
    max_requests: int = 200_000
    timeout: float = 2.0
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(self.workers)]

    def _work(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            with self._lock:
                if len(self.outcomes) >= self.max_requests:
                    return
            started = time.time()
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                conn.sock = fresh_connection(self.port, self.timeout)
                conn.request("GET", self.path, headers={"Connection": "close"})
                resp = conn.getresponse()
                resp.read()
                outcome = Outcome(started, resp.status, resp.getheader("X-Pod") or "")
            except (OSError, http.client.HTTPException) as exc:
                outcome = Outcome(started, 0, error=f"{type(exc).__name__}: {exc}"[:120])
            finally:
                conn.close()
            with self._lock:
                self.outcomes.append(outcome)
            if not outcome.ok:
                time.sleep(0.01)  # a refused connection returns at once; do not spin

    def __enter__(self) -> RequestLoop:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 5)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    def summary(self) -> str:
        reasons = Counter(o.error.split(":")[0] or str(o.status) for o in self.failures)
        return f"{len(self.outcomes)} requests, {len(self.failures)} failed {dict(reasons)}"
