"""``lcm-video batch --engine ray``: the segments of a batch scheduled onto Ray actors as they free up.

The driver (this process) plans the jobs and prepares their work folders exactly as a one-process run does
(``work.py``), then hands out pending segments one at a time to ``SegmentWorker`` actors: each loads a model once and
keeps it (``ModelCache``), renders the segment to its lossless file in the shared work folder and returns. A
segment is the unit of retry: when its actor dies (a killed process, a lost node) the segment goes back on the queue
and a new actor is started in its place; its frames do not depend on which worker renders it or when (keyed noise,
warm-up before a cold start), so the output is the same. Progress comes back through a small ``ProgressSink``
actor the driver polls. The driver assembles finished jobs and writes ``report.json`` (``run.report``).

``--out`` must be a folder every node sees (a shared filesystem): each actor first reads a token the driver wrote
there, and a worker that cannot fails the run with one line.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
import time
from collections import deque
from pathlib import Path

from ..errors import UserError
from ..events import Progress
from .work import WORK, JobPlan, seg_name

MAX_RETRIES = 3  # a segment whose worker died this many times more is reported as failed, not retried for ever
POLL_S = 1.0  # how often the driver collects progress while segments render (each poll wakes two processes)


def require_ray():
    """The ``ray`` module, or the one-line error naming the extra."""
    try:
        import ray
    except ImportError:
        raise UserError('--engine ray needs Ray: pip install -e ".[ray]" (or pip install ray)') from None
    return ray


def preflight(address: str | None) -> None:
    """Ray is installed and ``address`` (or RAY_ADDRESS) answers, or a one-line error. Call before ``import ray``."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    saved = Path.home() / ".ray" / "auth_token"
    has_token = saved.is_file() or "RAY_AUTH_TOKEN" in os.environ or "RAY_AUTH_TOKEN_PATH" in os.environ
    if address and has_token and "RAY_AUTH_MODE" not in os.environ:
        # Ray 2.60's driver joins a token-authenticated cluster (``ray start --head`` once a token exists) only with
        # the mode set before ray is imported; a cluster without authentication accepts a token-mode driver too.
        os.environ["RAY_AUTH_MODE"] = "token"
    require_ray()
    _check_reachable(address)


def _no_token_notice(record) -> bool:
    # Ray 2.60 announces on every start that it enables token authentication; a render's output is no place for it.
    return "Token authentication is enabled" not in record.getMessage()


def connect(ray, address: str | None) -> None:
    """Join the cluster at ``address`` (or RAY_ADDRESS; neither: start a Ray instance on this machine)."""
    import logging

    address = address or os.environ.get("RAY_ADDRESS") or None
    for name in ("ray", "ray._private.authentication.authentication_token_setup"):
        logging.getLogger(name).addFilter(_no_token_notice)
    try:
        # A Ray started here for this run only: no dashboard (its agent takes CPU from the actors on a small machine).
        local = {} if address else {"include_dashboard": False}
        ray.init(address=address, log_to_driver=False, logging_level="ERROR", configure_logging=False, **local)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise UserError(
            f"--address {address}: cannot join that Ray cluster ({first}); start one with `ray start --head` "
            "or drop --address to run one here"
        ) from None


def _check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """A TCP connection to a ``host:port`` / ``ray://host:port`` address first: Ray itself retries an unreachable
    one for minutes before failing."""
    if not address or address == "auto":
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--address {address!r}: give host:port, ray://host:port or auto")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise UserError(
            f"--address {address}: nothing answers there ({exc.strerror or exc}); start a head with "
            "`ray start --head` or check the address"
        ) from None


def default_workers(resources: dict, threads: int) -> int:
    """One actor per GPU on a GPU cluster, else one per ``threads`` CPUs (at least 1)."""
    gpus = int(resources.get("GPU", 0))
    return gpus if gpus else max(1, int(resources.get("CPU", 1)) // max(1, threads))


def out_problem(probe: str, token: str) -> str | None:
    """None when this process sees the driver's ``--out`` (the ``probe`` file there holds ``token``), else why not, in
    one line (what an actor on a node without the shared filesystem answers)."""
    try:
        if Path(probe).read_text() == token:
            return None
    except OSError:
        pass
    return (
        f"a Ray worker on {socket.gethostname()} cannot see --out {str(Path(probe).parents[1])!r}: give a folder on "
        "a filesystem every node shares (NFS, a cluster filesystem)"
    )


def _actor_classes(ray):
    @ray.remote(num_cpus=0)
    class ProgressSink:
        """Frames rendered per segment, as workers report them; the driver takes and clears the news."""

        def __init__(self):
            self.news: list[tuple[str, int]] = []

        def add(self, unit: tuple[int, int], frames: int) -> None:
            self.news.append((unit, frames))

        def take(self) -> list[tuple[tuple[int, int], int]]:
            news, self.news = self.news, []
            return news

    @ray.remote
    class SegmentWorker:
        """Renders segments with the models it has loaded (``ModelCache``: a batch's jobs share them)."""

        def __init__(self, plans: list[JobPlan], sink, delay: float = 0.0):
            from ..pipelines.loader import ModelCache

            self.plans, self.sink, self.delay = plans, sink, delay
            self.cache = ModelCache()
            node = ray.get_runtime_context().get_node_id()[:8]
            self.label = f"ray-{socket.gethostname()}-{node}-{os.getpid()}"

        def check(self, probe: str, token: str) -> str | None:
            return out_problem(probe, token)

        def render(self, i: int, k: int) -> str:
            from .segment import write_segment

            plan = self.plans[i]
            unit = (i, k)

            def report(event) -> None:
                if event.stage == "render":
                    self.sink.add.remote(unit, event.done)
                    if self.delay:  # benchmarks only: a slower worker of a heterogeneous cluster
                        time.sleep(self.delay * event.done)

            progress = Progress(_Cumulative(report), 0, plan.job.name)
            # Who is rendering what, while it renders (``seg_….PID.busy``; a dead actor's is swept by the next run).
            busy = plan.work / f"{seg_name(plan.segments[k])}.{os.getpid()}.busy"
            busy.write_text(self.label)
            try:
                write_segment(plan, k, self.cache, self.label, progress, engine="ray")
            finally:
                busy.unlink(missing_ok=True)
            return self.label

    return ProgressSink, SegmentWorker


class _Cumulative:
    """An ``on_progress`` that hands on only the frames added since the last event (``event.done`` counts up)."""

    def __init__(self, fn):
        self.fn, self.last = fn, 0

    def __call__(self, event) -> None:
        from dataclasses import replace

        step = event.done - self.last
        self.last = event.done
        self.fn(replace(event, done=step))


def render_on_ray(
    plans: list[JobPlan],
    units: list[tuple[int, int]],
    out_dir: Path,
    progress: Progress,
    address: str | None,
    workers: int | None,
    threads: int,
    delays: tuple[float, ...] = (),
    static: bool = False,
) -> dict:
    """Render ``units`` (plan index, segment index) on Ray actors; returns ``{"workers", "retried", "per_worker"}``.
    Benchmarks only: ``delays``, seconds added per frame on the first actors (a heterogeneous cluster); ``static``,
    each actor gets a fixed contiguous share up front (what torchrun's split does) instead of the next free unit."""
    ray = require_ray()
    connect(ray, address)
    try:
        return _schedule(ray, plans, units, out_dir, progress, workers, threads, delays, static)
    finally:
        ray.shutdown()


def _schedule(ray, plans, units, out_dir, progress, workers, threads, delays, static) -> dict:
    ProgressSink, SegmentWorker = _actor_classes(ray)
    resources = ray.cluster_resources()
    gpu = int(resources.get("GPU", 0)) > 0
    count = max(1, min(workers or default_workers(resources, threads), len(units)))
    probe = out_dir / WORK / f".probe-{os.getpid()}"
    token = secrets.token_hex(8)
    probe.write_text(token)
    sink = ProgressSink.remote()
    plans_ref = ray.put(plans)
    opts = {"num_gpus": 1, "num_cpus": 1} if gpu else {"num_cpus": threads}
    made = 0

    def new_actor():
        nonlocal made
        delay = delays[made] if made < len(delays) else 0.0
        made += 1
        actor = SegmentWorker.options(**opts).remote(plans_ref, sink, delay)
        problem = ray.get(actor.check.remote(str(probe), token))
        if problem:
            raise UserError(problem)
        return actor

    try:
        queue = deque(units)
        idle = [new_actor() for _ in range(count)]
        if static:  # contiguous shares, as accelerate's split_between_processes
            share = -(-len(units) // count)
            fixed = {id(a): deque(units[i * share : (i + 1) * share]) for i, a in enumerate(idle)}
        running: dict = {}  # object ref → (actor, unit)
        reported: dict[tuple[int, int], int] = {}
        retries: dict[tuple[int, int], int] = {}
        per_worker: dict[str, int] = {}
        while queue or running:
            while queue and idle:
                actor = idle.pop()
                if static:
                    if not fixed[id(actor)]:
                        continue  # its share is done; it stays out
                    unit = fixed[id(actor)].popleft()
                    queue.remove(unit)
                else:
                    unit = queue.popleft()
                running[actor.render.remote(*unit)] = (actor, unit)
            done, _ = ray.wait(list(running), num_returns=1, timeout=POLL_S)
            for (i, k), frames in ray.get(sink.take.remote()):
                reported[i, k] = reported.get((i, k), 0) + frames
                progress.emit("render", frames, plans[i].job.name)
            for ref in done:
                actor, unit = running.pop(ref)
                try:
                    label = ray.get(ref)
                except ray.exceptions.RayActorError:
                    # The worker died mid-segment: its frames are uncounted and the segment runs again elsewhere.
                    lost = reported.pop(unit, 0)
                    progress.done -= lost
                    retries[unit] = retries.get(unit, 0) + 1
                    plan = plans[unit[0]]
                    if retries[unit] > MAX_RETRIES:
                        stem = plan.work / seg_name(plan.segments[unit[1]])
                        stem.with_suffix(".failed").write_text(f"its Ray worker died {retries[unit]} times")
                    else:
                        print(
                            f"lcm-video: {plan.job.name}: a Ray worker died during {seg_name(plan.segments[unit[1]])}"
                            "; running it again",
                            file=sys.stderr,
                        )
                        queue.append(unit)
                    fresh = new_actor()
                    if static:  # the new actor takes over the dead one's share, this unit first
                        fixed[id(fresh)] = fixed.pop(id(actor))
                        if unit in queue:
                            fixed[id(fresh)].appendleft(unit)
                    idle.append(fresh)
                    continue
                per_worker[label] = per_worker.get(label, 0) + 1
                idle.append(actor)
        return {"workers": made, "retried": sum(retries.values()), "per_worker": per_worker}
    finally:
        probe.unlink(missing_ok=True)
