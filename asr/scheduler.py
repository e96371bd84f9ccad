"""One thread per model that batches decode requests from every stream.

Streams submit requests as their segmenters produce them; the scheduler thread gathers what is ready
across streams (waiting a few milliseconds for more when other streams are active), takes at most one
request per stream per batch, oldest first, and runs them as one batched model call. One request per
stream per batch is the fairness rule: with N streams waiting and batches of B, no request waits behind
more than ceil(N / B) batches.

Second-pass requests (asr/settle.py) wait in queues of their own, behind all first-pass work (partials
and finals). Where batches hold several requests (a GPU) they fill the room first-pass requests leave
in a batch. On a CPU a call cannot be interrupted once started, and a window is a second or two of
decoding on 2 cores: a final that ended meanwhile would wait for it. So a CPU decodes windows in a
lane of their own: a second thread with its own copy of the model, under Linux's SCHED_IDLE policy,
which runs it only on cores the first pass leaves idle and preempts it the moment first-pass work
wakes up. A first-pass call never waits for a window there; on a saturated machine the windows wait
instead, and settling falls behind (asr/settle.py bounds that backlog). (Nice 19 was not enough: with
the lane at nice 19, first-pass recognition took 34% longer at the median, `bench.load`, 2 cores;
under SCHED_IDLE a final decoded alone and beside a busy lane took the same time.)
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from asr.config import RecognizerStats
from asr.decoder import Decoded, DecodeTask, WindowDecoded, WindowTask
from protocol.privacy import describe_exception

log = logging.getLogger(__name__)
_T = TypeVar("_T")


Task = DecodeTask | WindowTask
Result = Decoded | WindowDecoded
BatchDecoder = Callable[[Sequence[Task]], list[Result]]


@dataclass(frozen=True)
class DecodeResult:
    decoded: Result
    queued_at: float  # time.time() when submitted
    recognized_at: float  # time.time() when the batch finished


@dataclass(eq=False)
class _Request:
    stream_id: int
    task: Task
    future: Future[DecodeResult | None]  # None: superseded before it was decoded
    queued_at: float
    head_batch: int  # batches run when this became the first of its stream's queue
    # Partials and tentative finals are stale once anything newer of their stream exists; finals,
    # and tentative finals their stream has confirmed, never are.
    supersedable: bool


class SchedulerClosedError(RuntimeError):
    pass


class DecodeScheduler:
    def __init__(
        self,
        decode_batch: BatchDecoder,
        *,
        max_batch: int,
        window_s: float,
        second_pass_lane: Callable[[], BatchDecoder] | None = None,
    ) -> None:
        """`second_pass_lane`: builds the decoder for the low-priority second-pass lane (a CPU, see the
        module's docstring). It is called on the lane's own thread once that thread has lowered its
        priority, so that every thread the model starts inherits the priority. None: windows are
        decoded with first-pass work, by `decode_batch`."""
        self._decode_batch = decode_batch
        self._max_batch = max(1, max_batch)
        self._window_s = window_s
        self._lock = threading.Condition()
        self._queues: dict[int, deque[_Request]] = {}
        self._second_pass: dict[int, deque[_Request]] = {}
        self._second_pass_served = 0
        self._second_pass_s = 0.0
        self._second_pass_cpu_s = 0.0
        self._held = 0
        self._held_finals = 0
        self._held_s = 0.0
        self._held_max_s = 0.0
        self._closing: set[int] = set()
        self._calls: deque[tuple[Future[Any], Callable[..., Any], tuple[object, ...]]] = deque()
        self._stream_ids = itertools.count()
        self._closed = False
        self._batches = 0
        self._requests = 0
        self._max_batch_seen = 0
        self._last_batch_s = 0.0
        self._skipped = 0
        self._max_wait_batches = 0
        self._thread = threading.Thread(target=self._run, name="asr-scheduler", daemon=True)
        self._lane: threading.Thread | None = None
        if second_pass_lane is not None:
            self._lane = threading.Thread(
                target=self._run_lane, args=(second_pass_lane,), name="asr-second-pass", daemon=True
            )
            self._lane.start()
        self._thread.start()

    def open_stream(self) -> int:
        with self._lock:
            if self._closed:
                raise SchedulerClosedError("speech recogniser is closed")
            stream_id = next(self._stream_ids)
            self._queues[stream_id] = deque()
            self._second_pass[stream_id] = deque()
            return stream_id

    def close_stream(self, stream_id: int) -> None:
        """Forget the stream; requests it still has queued are decoded first."""
        with self._lock:
            self._closing.add(stream_id)
            self._forget_if_done(stream_id)
            self._lock.notify_all()

    def submit(
        self, stream_id: int, task: DecodeTask, *, tentative: bool = False
    ) -> Future[DecodeResult | None]:
        """Queue a request. It supersedes its stream's queued partials and tentative finals."""
        future: Future[DecodeResult | None] = Future()
        with self._lock:
            if self._closed:
                raise SchedulerClosedError("speech recogniser is closed")
            queue = self._queues[stream_id]
            for stale in [r for r in queue if r.supersedable]:
                stale.future.set_result(None)
                self._skipped += 1
            self._queues[stream_id] = queue = deque(r for r in queue if not r.supersedable)
            supersedable = not task.final or tentative
            queue.append(_Request(stream_id, task, future, time.time(), self._batches, supersedable))
            self._lock.notify_all()
        return future

    def submit_second_pass(self, stream_id: int, task: WindowTask) -> Future[DecodeResult | None]:
        """Queue a second-pass window, served after all first-pass work (see the module's docstring)."""
        future: Future[DecodeResult | None] = Future()
        with self._lock:
            if self._closed:
                raise SchedulerClosedError("speech recogniser is closed")
            request = _Request(stream_id, task, future, time.time(), self._batches, supersedable=False)
            self._second_pass[stream_id].append(request)
            self._lock.notify_all()
        return future

    def confirm(self, stream_id: int, future: Future[DecodeResult | None]) -> None:
        """A tentative final turned out final: nothing newer may supersede it now."""
        with self._lock:
            for request in self._queues.get(stream_id, ()):
                if request.future is future:
                    request.supersedable = False

    def call(self, fn: Callable[..., _T], *args: object) -> Future[_T]:
        """Run a cheap job (a stream's VAD) on the scheduler thread, before the next batch.

        Sharing the thread serialises VAD with inference: on a small CPU a third busy thread preempts
        CTranslate2's workers mid-call and slows every decode more than the VAD itself costs.
        """
        future: Future[_T] = Future()
        with self._lock:
            if self._closed:
                raise SchedulerClosedError("speech recogniser is closed")
            self._calls.append((future, fn, args))
            self._lock.notify_all()
        return future

    def run(self, tasks: Sequence[Task]) -> list[Result]:
        """Decode outside any stream, on the scheduler thread (warm-up). Blocking."""
        stream_id = self.open_stream()
        try:
            futures = [
                self.submit_second_pass(stream_id, task)
                if isinstance(task, WindowTask)
                else self.submit(stream_id, task)
                for task in tasks
            ]
            return [r.decoded for f in futures if (r := f.result()) is not None]
        finally:
            self.close_stream(stream_id)

    def stats(self) -> RecognizerStats:
        with self._lock:
            return RecognizerStats(
                active_streams=len(self._queues),
                queue_depth=sum(len(q) for q in self._queues.values())
                + sum(len(q) for q in self._second_pass.values()),
                batches=self._batches,
                requests=self._requests,
                mean_batch_size=self._requests / self._batches if self._batches else 0.0,
                max_batch_size=self._max_batch_seen,
                last_batch_s=self._last_batch_s,
                skipped_partials=self._skipped,
                max_wait_batches=self._max_wait_batches,
                second_pass_requests=self._second_pass_served,
                second_pass_s=round(self._second_pass_s, 3),
                second_pass_cpu_s=round(self._second_pass_cpu_s, 3),
                held_by_second_pass=self._held,
                finals_held_by_second_pass=self._held_finals,
                held_by_second_pass_s=round(self._held_s, 3),
                held_by_second_pass_max_s=round(self._held_max_s, 3),
            )

    def close(self) -> None:
        """Decode what is queued, then stop the threads. Blocking."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self._thread.join()
        if self._lane is not None:
            self._lane.join()

    def _run(self) -> None:
        while True:
            self._run_calls()
            batch = self._next_batch()
            if batch is None:
                return
            if batch:
                self._decode(batch, self._decode_batch, time.process_time)

    def _run_lane(self, build: Callable[[], BatchDecoder]) -> None:
        """The second-pass lane: one window at a time, oldest first, when a core is idle."""
        idle = sys.platform == "linux"  # elsewhere the lane runs at normal priority
        if idle:
            os.sched_setscheduler(threading.get_native_id(), os.SCHED_IDLE, os.sched_param(0))
        try:
            decode = build()
        except BaseException as exc:  # every window fails (the recogniser's warm-up reports it)
            log.error("the second-pass lane could not start: %s", describe_exception(exc))
            decode = _failing(exc)
        lane_cpu_s = _IdleThreadsCpu() if idle else time.process_time
        while True:
            with self._lock:
                while not self._second_pass_waiting():
                    if self._closed:
                        return
                    self._lock.wait()
                batch = self._take_second_pass(1)
                self._forget_if_done(batch[0].stream_id)
            self._decode(batch, decode, lane_cpu_s)

    def _decode(self, batch: list[_Request], decode: BatchDecoder, cpu_s: Callable[[], float]) -> None:
        started = time.perf_counter()
        started_at, cpu_started = time.time(), cpu_s()
        try:
            decoded = decode([r.task for r in batch])
        except BaseException as exc:  # handed to every waiting stream, which then fails
            # Never the exception's text: a decoder's error may quote what it was decoding.
            log.error("batched decode of %d requests failed: %s", len(batch), describe_exception(exc))
            for request in batch:
                request.future.set_exception(exc)
            return
        recognized_at = time.time()
        elapsed = time.perf_counter() - started
        first_pass_thread = decode is self._decode_batch
        with self._lock:
            if first_pass_thread:
                self._last_batch_s = elapsed
            if all(isinstance(r.task, WindowTask) for r in batch):
                self._second_pass_s += elapsed
                self._second_pass_cpu_s += cpu_s() - cpu_started
                if first_pass_thread:
                    self._count_held(started_at, recognized_at)
        for request, result in zip(batch, decoded, strict=True):
            request.future.set_result(DecodeResult(result, request.queued_at, recognized_at))
        log.debug("decoded a batch of %d in %.3f s", len(batch), elapsed)

    def _count_held(self, started_at: float, finished_at: float) -> None:
        """First-pass requests that arrived while a batch of second-pass windows ran waited for it: what
        the second pass cost the first, counted so that it can be shown (RecognizerStats)."""
        for queue in self._queues.values():
            for request in queue:
                if request.queued_at < finished_at:
                    held = finished_at - max(request.queued_at, started_at)
                    self._held += 1
                    self._held_finals += isinstance(request.task, DecodeTask) and request.task.final
                    self._held_s += held
                    self._held_max_s = max(self._held_max_s, held)

    def _run_calls(self) -> None:
        while True:
            with self._lock:
                if not self._calls:
                    return
                future, fn, args = self._calls.popleft()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:
                    future.set_exception(exc)

    def _next_batch(self) -> list[_Request] | None:
        """The next batch; an empty one when side jobs arrived first, None once closed and drained."""
        with self._lock:
            while not self._ready_streams() and not self._second_pass_may_run():
                if self._calls:
                    return []
                if self._closed and (self._lane is not None or not self._second_pass_waiting()):
                    return None
                self._lock.wait()
            batch: list[_Request] = []
            if self._ready_streams():
                batch = self._first_pass_batch()
            # Without a lane of their own, windows fill the room first-pass requests leave in a batch,
            # or run alone when no first-pass work waits.
            room = self._max_batch - len(batch)
            if self._lane is None and room > 0 and (batch or self._second_pass_may_run()):
                batch += self._take_second_pass(room)
            if not batch:
                return []
            self._batches += 1
            self._requests += len(batch)
            self._max_batch_seen = max(self._max_batch_seen, len(batch))
            for request in batch:
                self._forget_if_done(request.stream_id)
            return batch

    def _first_pass_batch(self) -> list[_Request]:
        """Called with the lock held and some stream's first-pass request ready."""
        # Others may be about to submit: wait briefly so their requests share this batch.
        deadline = time.monotonic() + self._window_s
        while not self._closed:
            remaining = deadline - time.monotonic()
            if self._calls and remaining > 0:
                # A stream's VAD is waiting: it may produce a request for this very batch.
                self._lock.release()
                try:
                    self._run_calls()
                finally:
                    self._lock.acquire()
                continue
            if remaining <= 0 or len(self._ready_streams()) >= min(self._max_batch, len(self._queues)):
                break
            self._lock.wait(remaining)
        # Oldest head first: a stream that has waited longest is served first, whatever else it or
        # the others have queued behind.
        ready = sorted(self._ready_streams(), key=lambda q: (q[0].head_batch, q[0].queued_at))
        batch = [queue.popleft() for queue in ready[: self._max_batch]]
        self._max_wait_batches = max([self._max_wait_batches, *(self._batches - r.head_batch for r in batch)])
        for request in batch:
            queue = self._queues[request.stream_id]
            if queue:
                queue[0].head_batch = self._batches + 1
        return batch

    def _second_pass_waiting(self) -> bool:
        return any(self._second_pass.values())

    def _second_pass_may_run(self) -> bool:
        """Whether this thread may start a batch of second-pass windows alone now."""
        return self._lane is None and self._second_pass_waiting() and not self._ready_streams()

    def _take_second_pass(self, room: int) -> list[_Request]:
        waiting = sorted((q for q in self._second_pass.values() if q), key=lambda q: q[0].queued_at)
        taken = [queue.popleft() for queue in waiting[:room]]
        self._second_pass_served += len(taken)
        return taken

    def _ready_streams(self) -> list[deque[_Request]]:
        return [q for q in self._queues.values() if q]

    def _forget_if_done(self, stream_id: int) -> None:
        if (
            stream_id in self._closing
            and not self._queues.get(stream_id)
            and not self._second_pass.get(stream_id)
        ):
            self._queues.pop(stream_id, None)
            self._second_pass.pop(stream_id, None)
            self._closing.discard(stream_id)


class _IdleThreadsCpu:
    """CPU seconds used so far by the process's SCHED_IDLE threads: the second-pass lane's, and those
    its model started (CTranslate2's workers), which inherit its policy. Linux only."""

    def __init__(self) -> None:
        self._tick_s = 1 / os.sysconf("SC_CLK_TCK")

    def __call__(self) -> float:
        total = 0.0
        for tid in os.listdir("/proc/self/task"):
            try:
                if os.sched_getscheduler(int(tid)) != os.SCHED_IDLE:
                    continue
                with open(f"/proc/self/task/{tid}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue  # the thread has just ended
            total += (int(fields[11]) + int(fields[12])) * self._tick_s  # utime, stime
        return total


def _failing(error: BaseException) -> BatchDecoder:
    def decode(tasks: Sequence[Task]) -> list[Result]:
        raise RuntimeError("the second-pass lane has no model") from error

    return decode
