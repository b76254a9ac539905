"""Running Locust in its own processes while an experiment goes on.

Locust is never imported here (importing it monkey-patches the interpreter with
gevent): it runs as ``python -m locust`` with the experiment's locustfile, the
shape (``locust_shape.py``) and the sample listener (``locust_listener.py``).
``workers: N`` starts a master and N workers through Locust's own distribution;
remote workers may join the same master with ``--master-host`` (see docs/load.md).
"""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field

from resilience_tests import procs
from resilience_tests.errors import ResilienceError, UsageError, WaitTimeoutError
from resilience_tests.load.samples import Sample, SampleReader
from resilience_tests.load.shapes import Shape, shape_to_env
from resilience_tests.net import free_port
from resilience_tests.platform.host import CLUSTER_ENV, RUN_ID_ENV
from resilience_tests.schema import Duration, Model
from resilience_tests.waiting import wait_until

HERE = Path(__file__).resolve().parent
LISTENER = HERE / "locust_listener.py"
SHAPE = HERE / "locust_shape.py"
REPO_PROFILES = HERE.parents[1] / "loadprofiles"
PACKAGED_PROFILES = HERE / "profiles"  # web.py ships with the package (loadprofiles/web.py links to it)


class LoadError(ResilienceError):
    """The load could not start (missing locustfile, unreachable target, Locust failing at start)."""


class LoadSpec(Model):
    """The ``load:`` section of an experiment."""

    shape: Shape
    locustfile: str = "web.py"
    url: str | None = None
    path: str = "/"
    wait: Duration = 0.1
    timeout: Duration = 5.0
    workers: int = Field(default=0, ge=0, le=64)
    master_bind_host: str = "127.0.0.1"


@dataclass
class LoadOutcome:
    """What the load did: samples, whether it ran to the end of its shape, and why not."""

    samples: list[Sample] = field(default_factory=list)
    complete: bool = False
    problem: str = ""
    started: float = 0.0
    ended: float = 0.0


def resolve_locustfile(name: str, base: Path | None) -> Path:
    """Find a locustfile: as given, next to the experiment, or in the project's ``loadprofiles/``."""
    candidates = [Path(name)]
    if base is not None:
        candidates.append(base / name)
    candidates += [REPO_PROFILES / name, Path.cwd() / "loadprofiles" / name, PACKAGED_PROFILES / name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    looked = ", ".join(str(c) for c in dict.fromkeys(candidates))
    raise UsageError(f"locustfile {name!r} not found (looked at {looked})",
                     hint="give a path relative to the experiment file, or a file in loadprofiles/")


def _with_userinfo(parts: urllib.parse.SplitResult, userinfo: str) -> str:
    """The URL of ``parts`` with its user information replaced (``""``: none)."""
    host = parts.hostname or ""
    netloc = (f"{userinfo}@" if userinfo else "") + (f"[{host}]" if ":" in host else host) + \
        (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def without_password(url: str) -> str:
    """``url`` as it may be shown: a password in it replaced by ``***``."""
    parts = urllib.parse.urlsplit(url)
    return url if parts.password is None else _with_userinfo(parts, f"{parts.username}:***")


def check_target(url: str, timeout: float = 5.0, refused_for: float = 10.0) -> None:
    """GET the load target; raise LoadError if nothing answers (any HTTP status counts as an answer).

    A refused connection is tried again for up to ``refused_for`` seconds: a Service whose pod turned Ready a
    moment ago is refused until kube-proxy has programmed it (a second or two on a busy machine). Any other
    failure (a timeout, a name that does not resolve) is final at once.
    Credentials in the URL (``http://user:password@host/``) are sent as HTTP basic auth, as Locust sends them.
    """
    parts = urllib.parse.urlsplit(url)
    headers = {}
    if parts.username is not None:
        pair = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        url = _with_userinfo(parts, "")
    deadline = time.monotonic() + refused_for
    while True:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="GET", headers=headers),
                                        timeout=timeout) as resp:
                resp.read(1024)
            return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, ConnectionRefusedError) and time.monotonic() < deadline:
                time.sleep(0.5)
                continue
            waited = f" (refused for {refused_for:g} s)" if isinstance(reason, ConnectionRefusedError) else ""
            raise LoadError(f"load target {without_password(url)} does not answer{waited}: {reason}",
                        hint="check load.url (or the target's Ingress or Service) and that the app is up") from None


class LoadRun:
    """One Locust run (master and workers, or a single process) writing samples to ``workdir``.

    Args:
        spec: the load section.
        url: base URL of the target (``http://127.0.0.1:30080``).
        workdir: where samples and Locust's logs go.
        base: directory of the experiment file (locustfiles are looked up there first).
    """

    def __init__(self, spec: LoadSpec, url: str, workdir: Path, base: Path | None = None, *,
                 run_id: str = "", cluster: str = "") -> None:
        self.spec = spec
        self.run_id = run_id
        self.cluster = cluster
        self.url = url.rstrip("/")
        self.workdir = workdir
        self.locustfile = resolve_locustfile(spec.locustfile, base)
        self.samples_path = workdir / "samples.jsonl"
        self.reader = SampleReader(self.samples_path)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.started = 0.0
        self._stopped_early = False

    @property
    def target(self) -> str:
        """The URL requests go to (with any password in it)."""
        return self.url + (self.spec.path if self.spec.path.startswith("/") else "/" + self.spec.path)

    @property
    def shown_target(self) -> str:
        """The target as plans and event lines show it: without a password."""
        return without_password(self.target)

    def preflight(self) -> None:
        """Check the target answers before anything is injected."""
        check_target(self.target, self.spec.timeout)

    def start(self) -> None:
        """Start Locust (master + workers, or one process)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.samples_path.unlink(missing_ok=True)
        env = {**os.environ, RUN_ID_ENV: self.run_id, CLUSTER_ENV: self.cluster, "RT_SAMPLES": str(self.samples_path),
               "RT_SHAPE": shape_to_env(self.spec.shape), "RT_PATH": self.spec.path, "RT_WAIT": str(self.spec.wait),
               "RT_TIMEOUT": str(self.spec.timeout),
               "LOCUST_HOST": self.url}  # not on the command line, where any local user could read a password
        files = f"{self.locustfile},{SHAPE},{LISTENER}"
        # Locust's own statistics (stats_stats.csv, stats_failures.csv...) go next to the samples.
        # --stop-timeout: when the shape ends, a user waiting for an answer gets it (or its timeout) before it
        # stops; without it Locust kills users mid-request, and the last second's requests would read as never
        # answered: a failure of the harness, not of the target.
        base = [sys.executable, "-m", "locust", "-f", files, "--headless", "--only-summary",
                "--csv", str(self.workdir / "stats"), "--stop-timeout", f"{self.spec.timeout + 1:g}"]
        if self.spec.workers:
            port = free_port()
            master = [*base, "--master", "--master-bind-host", self.spec.master_bind_host,
                      "--master-bind-port", str(port), "--expect-workers", str(self.spec.workers),
                      "--expect-workers-max-wait", "60"]
            self._spawn("locust-master", master, env)
            for i in range(self.spec.workers):
                worker = [sys.executable, "-m", "locust", "-f", files, "--worker", "--master-host", "127.0.0.1",
                          "--master-port", str(port)]
                self._spawn(f"locust-worker-{i + 1}", worker, env)
        else:
            self._spawn("locust", base, env)
        self.started = time.time()

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        # Through the orphan guard: the process dies with this one, even if this one is SIGKILLed.
        guarded = [sys.executable, "-m", "resilience_tests.load.orphan_guard", str(os.getpid()), "--", *argv]
        self.procs.append(procs.spawn(guarded, self.workdir / f"{name}.log", env=env, cwd=self.workdir))

    def wait_running(self, timeout: float = 60.0) -> None:
        """Wait until requests are being made (the first samples arrive); raise LoadError if Locust died."""
        def started() -> bool:
            self.reader.poll()
            return bool(self.reader.samples) or not self.running()

        try:
            wait_until("Locust's first requests", started, timeout=timeout, interval=0.2, max_interval=0.2)
        except WaitTimeoutError:
            raise LoadError(f"Locust made no request within {timeout:.0f} s: {self.log_tail()}") from None
        self.reader.poll()
        if self.reader.samples or self.reader.done:
            return  # a short shape may end before its first sample was written
        raise LoadError(f"Locust exited at start (code {self.procs[0].returncode}): {self.log_tail()}",
                        hint="run the same locustfile with `locust -f` to see the problem")

    def wait_final(self, moment: float) -> bool:
        """Wait until every second up to ``moment`` is final in the stream (every request sent before it has its
        answer), at most the request timeout plus the listener's hold; False if Locust stopped or time ran out."""
        second = int(moment)

        def final() -> bool:
            self.reader.poll()
            last = self.reader.last_second
            return last is not None and last >= second

        try:
            wait_until("the answers to every request sent so far", lambda: final() or not self.running(),
                       timeout=self.spec.timeout + (15.0 if self.spec.workers else 5.0), interval=0.1,
                       max_interval=0.25)
        except WaitTimeoutError:
            return False
        return final()

    def running(self) -> bool:
        """True while the Locust master (or single process) runs."""
        return bool(self.procs) and self.procs[0].poll() is None

    def wait_done(self, timeout: float) -> None:
        """Wait until the shape has run to its end (Locust exits by itself)."""
        with contextlib.suppress(WaitTimeoutError):
            wait_until("the load shape's end", lambda: not self.running(), timeout=timeout, interval=0.2,
                       max_interval=0.2)

    def stop(self) -> None:
        """Stop every Locust process (gracefully, then by force); idempotent."""
        if self.running():
            self._stopped_early = True
        procs.stop_groups(self.procs, grace=15)

    def outcome(self) -> LoadOutcome:
        """Samples and completeness, after :meth:`stop` (or once Locust ended)."""
        self.reader.poll()
        done = self.reader.done
        master = self.procs[0] if self.procs else None
        code = master.returncode if master else None
        problem = ""
        ended = float(done["done"]) if done else time.time()  # type: ignore[arg-type]
        if self._stopped_early:
            problem = "the load was stopped before its shape ended"
        elif done is None:
            problem = f"Locust ended without finishing (exit code {code}): {self.log_tail()}"
        elif code not in (0, 1):  # 1: Locust's exit code when some requests failed
            problem = f"Locust exited with code {code}: {self.log_tail()}"
        elif ended - self.started < self.spec.shape.duration - 2:
            problem = (f"Locust ended {ended - self.started:.0f} s into a {self.spec.shape.duration:.0f} s shape: "
                       f"{self.log_tail()}")
        return LoadOutcome(self.reader.samples, not problem, problem, self.started, ended)

    def outcome_so_far(self, until: float) -> LoadOutcome:
        """What the still running load saw until ``until``, judged complete while Locust runs (the steady-state
        window's view)."""
        running = self.running()
        return LoadOutcome(list(self.reader.samples), running,
                           "" if running else f"Locust stopped during the steady-state window: {self.log_tail()}",
                           self.started, until)

    def log_tail(self, lines: int = 3) -> str:
        """Last lines of the master's log (one line, for error messages)."""
        name = "locust-master.log" if self.spec.workers else "locust.log"
        try:
            text = (self.workdir / name).read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(line.strip() for line in text[-lines:]) or "(empty log)"

    def __enter__(self) -> LoadRun:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

