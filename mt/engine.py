"""The translation engine: routes each utterance to every listener language, off the event loop.

Model calls run in worker threads, never on the event loop. Calls that pile up while their model is
busy are grouped, so concurrent utterances from the same language share one batch. Each target
language is handed out as soon as the model call that produced it returns
(`UtteranceTranslation.as_ready`): with one pair model per language, a listener never waits for
another language's model. Work has a priority (`Priority`): finals first, then settled captions'
translations, then partials, then bulk work such as a record's export:
- on CPU one pool of `workers` threads serves both: a call starts whenever a thread is free, finals
  first, and calls to different models run side by side, so one pair model per listener language
  costs the slowest language, not the sum of all. `from_directory` divides the cores among the
  models: OPUS-MT-shaped pairs run 2.7x slower on two threads than on one (beam 2;
  bench/mt_fanout.py), while one NLLB-600M-shaped model serving every language in one call gains ~20%
  from a second thread;
- on a GPU finals have a worker of their own, so a final never waits for a batch of partials to finish
  (the models are opened with one CUDA stream per worker, see mt/model.py).
Partials are best-effort: when half the engine's capacity is taken, a partial is refused at once
(TranslationBusyError) rather than queued, so they can never crowd finals out. Settled captions and
bulk work are never refused: they wait behind everything more pressing.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from enum import IntEnum
from pathlib import Path

from models import translation_model_directories
from mt import catalogue
from mt.errors import DeviceUnavailableError, ModelLoadError
from mt.families import ModelFamily
from mt.glossary import ProtectedText, expect, protect, restore
from mt.model import DEFAULT_BEAM_SIZE, ScoredText, TranslationModel, load_model, resolve_device
from mt.plan import TargetPlan, Translation, TranslationPlan, copied_note, failed_note
from mt.routing import Hop, Route, plan_route
from mt.scripts import repeats_source
from protocol.captions import TranslationPath
from protocol.glossary import Glossary
from protocol.languages import language
from protocol.privacy import describe_exception

log = logging.getLogger(__name__)

# Specialised pair models first: an OPUS-MT pair is several times faster than a multilingual model and,
# for the pairs it exists for, at least as good.
# Decoder-only instruct models come last: several times slower per token than a seq2seq model of their size.
_FAMILY_PREFERENCE = {
    ModelFamily.ARGOS: 0,
    ModelFamily.MARIAN: 0,
    ModelFamily.NLLB: 1,
    ModelFamily.M2M100: 2,
    ModelFamily.GENERATOR: 3,
}


class Priority(IntEnum):
    """Which queued model calls go first (lower first)."""

    FINAL = 0  # a final caption: a reader is waiting for it
    SETTLED = 1  # a settled caption's new text: the reader already has the final
    PARTIAL = 2  # a partial caption: best-effort, refused when the engine is busy
    BULK = 3  # nobody is watching it happen (a consultation record's export)


class TranslationBusyError(RuntimeError):
    """A partial caption's translation was refused because the engine is busy; the next one may go."""


class UtteranceTranslation:
    """One utterance's translations under way: each target language is handed out when it is ready.

    Made by `TranslationEngine.start`. Never raises for a failed model: that target comes back
    UNTRANSLATED with a note, like a missing model. `cancel()` drops the work still queued.
    """

    def __init__(
        self, targets: dict[str, asyncio.Task[Translation]], hops: list[asyncio.Task[ScoredText]]
    ) -> None:
        self._targets = targets
        self._hops = hops

    @property
    def targets(self) -> frozenset[str]:
        return frozenset(self._targets)

    async def as_ready(self) -> AsyncIterator[tuple[str, Translation]]:
        """(target, translation) pairs in the order they become ready (those already done first)."""
        language_of = {task: target for target, task in self._targets.items()}
        pending: set[asyncio.Task[Translation]] = set(language_of)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(done, key=language_of.__getitem__):
                yield language_of[task], task.result()

    async def result(self) -> dict[str, Translation]:
        """Every target's translation, once the last is ready."""
        try:
            return {target: translation async for target, translation in self.as_ready()}
        finally:
            self.cancel()  # nothing left when all are done; the work still queued when the caller gave up

    def cancel(self) -> None:
        for task in (*self._targets.values(), *self._hops):
            task.cancel()


@dataclass
class _Job:
    model: TranslationModel
    source: str
    target: str
    text: str
    future: asyncio.Future[ScoredText] = field(repr=False)


@dataclass
class _Lane:
    """Worker threads and the queues they take jobs from, in priority order."""

    executor: ThreadPoolExecutor
    workers: int  # the executor's threads: model calls at once
    queues: tuple[list[_Job], ...]
    task: asyncio.Task[None] | None = None  # the dispatcher, while there is work
    # What the dispatcher waits on, besides its running calls, while a thread is free: a new job. A
    # future of the running loop, made per wait (an Event would bind to the first loop that used it).
    arrival: asyncio.Future[None] | None = None

    def next_group(self, busy: set[TranslationModel]) -> list[_Job] | None:
        """Every queued job for the first (model, source language) in priority order whose model is not
        already at work: one batch. Jobs whose caller gave up (a partial superseded by its final) are
        dropped unrun. A busy model's jobs wait and batch up, rather than hold a thread on its lock."""
        for queue in self.queues:
            queue[:] = [job for job in queue if not job.future.done()]
            key = next(((job.model, job.source) for job in queue if job.model not in busy), None)
            if key is not None:
                group = [job for job in queue if (job.model, job.source) == key]
                queue[:] = [job for job in queue if (job.model, job.source) != key]
                return group
        return None


class TranslationEngine:
    def __init__(
        self,
        models: Sequence[TranslationModel],
        *,
        max_pending: int = 64,
        models_dir: Path | None = None,
        cache_size: int = 256,
        finals_lane: bool | None = None,
        workers: int = 1,
        prefer_whisper_english: Iterable[str] = (),
    ) -> None:
        """`finals_lane`: give finals a worker of their own (default: when any model runs on a GPU).
        `workers`: model calls run side by side when there is no finals lane (on CPU).
        `prefer_whisper_english`: spoken languages whose English comes from Whisper's speech translation
        even where a text model translates them into English (see `plan`)."""
        if max_pending < 2:
            raise ValueError("max_pending must be at least 2")
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._models = list(models)
        self._models_dir = models_dir
        self._prefer_whisper = frozenset(prefer_whisper_english)
        for code in self._prefer_whisper:
            language(code)
        self._max_pending = max_pending
        self._slots = asyncio.Semaphore(max_pending)
        self._pending_jobs = 0
        self._queues: dict[Priority, list[_Job]] = {priority: [] for priority in Priority}
        if finals_lane is None:
            finals_lane = any(model.device != "cpu" for model in self._models)
        self._finals_lane = finals_lane
        later = tuple(self._queues[p] for p in Priority if p is not Priority.FINAL)
        if finals_lane:
            self._lanes = [
                _Lane(
                    ThreadPoolExecutor(1, thread_name_prefix="babelcall-mt-finals"),
                    1,
                    (self._queues[Priority.FINAL],),
                ),
                _Lane(ThreadPoolExecutor(1, thread_name_prefix="babelcall-mt-later"), 1, later),
            ]
        else:
            executor = ThreadPoolExecutor(workers, thread_name_prefix="babelcall-mt")
            self._lanes = [_Lane(executor, workers, (self._queues[Priority.FINAL], *later))]
        # Speakers' partial captions repeat the same text; a small cache saves re-translating it. Keyed by
        # the model object (two directories may share a name), the pair and the exact model input, which
        # carries the glossary's placeholders: terms are restored after the cache, per request.
        self._cache: OrderedDict[tuple[TranslationModel, str, str, str], ScoredText] = OrderedDict()
        self._cache_size = cache_size
        self._closed = False

    @classmethod
    def from_directory(
        cls,
        models_dir: Path,
        *,
        device: str = "cpu",
        compute_type: str = "int8",
        cpu_threads: int = 2,
        beam_size: int = DEFAULT_BEAM_SIZE,
        prefer_whisper_english: Iterable[str] = (),
    ) -> TranslationEngine:
        """Load every model subdirectory of `models_dir`; a missing directory gives an empty engine.

        On CPU up to `cpu_threads` calls run side by side, each model on its share of the threads.
        `device` "auto" is the GPU when CTranslate2 sees one, else the CPU (with the CPU's fan-out)."""
        models_dir = Path(models_dir)
        models: list[TranslationModel] = []
        if not models_dir.is_dir():
            log.info("no translation models: %s does not exist", models_dir)
            return cls(models, models_dir=models_dir, prefer_whisper_english=prefer_whisper_english)
        device = resolve_device(device)
        entries = translation_model_directories(models_dir)
        threads_per_model = max(1, cpu_threads // max(1, len(entries)))
        for entry in entries:
            try:
                model = load_model(
                    entry,
                    device=device,
                    compute_type=compute_type,
                    intra_threads=threads_per_model,
                    beam_size=beam_size,
                )
            except DeviceUnavailableError as exc:
                log.error("skipping %s: %s", entry.name, exc)
                continue
            except ModelLoadError as exc:
                log.warning("skipping %s: %s", entry.name, exc)
                continue
            log.info("translation model %s (%s): %s", model.name, model.family.value, sorted(model.languages))
            models.append(model)
        models.sort(key=lambda m: (_FAMILY_PREFERENCE[m.family], m.name))
        engine = cls(
            models,
            models_dir=models_dir,
            workers=max(1, cpu_threads),
            prefer_whisper_english=prefer_whisper_english,
        )
        if any(model.device == "cpu" for model in models):
            log.info(
                "translation on CPU: up to %d model calls at once, %d thread(s) each",
                max(1, cpu_threads),
                threads_per_model,
            )
        return engine

    @property
    def models(self) -> list[TranslationModel]:
        """The loaded models in preference order (a copy)."""
        return list(self._models)

    @property
    def model_names(self) -> list[str]:
        return [m.name for m in self._models]

    @property
    def finals_lane(self) -> bool:
        """Whether finals have a worker of their own (GPU), rather than sharing `workers` threads (CPU)."""
        return self._finals_lane

    @property
    def pending(self) -> int:
        """Model calls accepted and not yet finished (at most `max_pending`)."""
        return self._pending_jobs

    def route(self, source: str, target: str, *, whisper_english: bool) -> Route:
        language(source)
        language(target)
        return plan_route(
            self._models,
            source,
            target,
            whisper_english=whisper_english,
            prefer_whisper=source in self._prefer_whisper,
        )

    def plan(self, source: str, caption_languages: Iterable[str]) -> TranslationPlan:
        """How an utterance in `source` reaches every caption language: decide once per room change.

        For x→en Whisper's speech translation and a text model may both exist: the text model is used
        unless `prefer_whisper_english` names x (measured for zh in bench/RESULTS.md: Whisper base's
        Chinese transcript through the Argos zh→en package beats Whisper base's own translation)."""
        language(source)
        wanted = list(dict.fromkeys(caption_languages))
        targets = {
            target: TargetPlan(
                with_whisper=self.route(source, target, whisper_english=True),
                without_whisper=self.route(source, target, whisper_english=False),
            )
            for target in wanted
            if target != source
        }
        return TranslationPlan(source, targets, original_read=source in wanted)

    def missing_model_hint(self, source: str, target: str) -> str:
        installed = frozenset(m.pair for m in self._models if m.pair is not None)
        return catalogue.missing_model_hint(source, target, self._models_dir, installed)

    async def translate(
        self,
        text: str,
        source: str,
        targets: Iterable[str],
        *,
        whisper_english: str | None = None,
        glossary: Glossary | None = None,
        priority: Priority = Priority.FINAL,
    ) -> dict[str, Translation]:
        """Every target's translation of one utterance, once the last is ready (see `start`)."""
        return await self.start(
            text, source, targets, whisper_english=whisper_english, glossary=glossary, priority=priority
        ).result()

    def start(
        self,
        text: str,
        source: str,
        targets: Iterable[str],
        *,
        whisper_english: str | None = None,
        glossary: Glossary | None = None,
        priority: Priority = Priority.FINAL,
        spoken: bool = True,
    ) -> UtteranceTranslation:
        """Start translating one utterance into each target language; one model call per distinct
        target at most. Call from the event loop.

        Queued work runs in `priority` order; a PARTIAL raises TranslationBusyError instead of queueing
        when the engine is half full. `spoken` False: written text (chat), which no Whisper's English
        will ever accompany; its untranslated notes say so.

        With a glossary, its terms come through untranslated or as their rendering in each target
        language, on every path (direct, Whisper's English, pivot); see mt/glossary.py for the policy.

        A result that repeats the speaker's words in the speaker's script (a model copying its input,
        or Whisper's translate task answering in the spoken language) comes back UNTRANSLATED, with a
        note, never labelled as a translation (mt/scripts.py).
        """
        if self._closed:
            raise RuntimeError("translation engine is closed")
        if priority is Priority.PARTIAL and self._pending_jobs >= self._max_pending // 2:
            raise TranslationBusyError("translation engine busy: partial caption not translated")
        wanted = list(dict.fromkeys(targets))
        plan = self.plan(source, wanted)
        # Whisper's translate task sometimes returns nothing: then the utterance has no English from it.
        given_english = whisper_english is not None and bool(whisper_english.strip())
        routes = plan.routes(given_english)
        protected = protect(text, glossary, source)
        protected_english = None
        if given_english:
            assert whisper_english is not None
            protected_english = expect(
                protect(whisper_english, glossary, "en"), protected.terms + protected.expected
            )
        # Whisper's "English" in the spoken language is no start for a pivot either.
        whisper_copied = given_english and repeats_source(whisper_english or "", text, source, "en")

        # Pivots to several languages share their first hop: each distinct hop runs once.
        hops: dict[Hop, asyncio.Task[ScoredText]] = {}

        def run(hop: Hop, given: asyncio.Task[ScoredText] | None) -> asyncio.Task[ScoredText]:
            if hop not in hops:
                if hop.model is None:  # Whisper's English stands in for this hop
                    assert protected_english is not None
                    work = self._given(protected_english.text)
                elif given is not None:
                    work = self._call_after(hop, given, priority)
                else:
                    work = self._call(hop, protected.text, priority)
                hops[hop] = asyncio.create_task(work)
                hops[hop].add_done_callback(_retrieve)
            return hops[hop]

        async def finish(target: str, route: Route) -> Translation:
            if route.path is TranslationPath.UNTRANSLATED:
                note = plan.targets[target].note(given_english, spoken=spoken)
                return Translation(text, TranslationPath.UNTRANSLATED, None, note)
            if route.uses_whisper and whisper_copied:
                log.warning(
                    "Whisper's English repeats the speaker's %s words: %s→%s not translated",
                    source,
                    source,
                    target,
                )
                return Translation(text, TranslationPath.UNTRANSLATED, None, copied_note("whisper", "en"))
            steps: list[asyncio.Task[ScoredText]] = []
            for hop in route.hops:
                steps.append(run(hop, steps[-1] if steps else None))
            try:
                scored = await steps[-1]
                result = scored.text
                if repeats_source(result, text, route.source, route.target):
                    # A copy of the speaker's words must never be labelled as a translation.
                    log.warning(
                        "%s did not translate %s→%s: its output repeats the speaker's words",
                        route.model_label,
                        route.source,
                        route.target,
                    )
                    note = copied_note(route.model_label, route.target)
                    return Translation(text, TranslationPath.UNTRANSLATED, None, note)
                # Restore with the terms of the text the first hop actually read: the speaker's, or
                # Whisper's.
                used = protected_english if route.hops[0].model is None else protected
                assert used is not None
                scores = [s.logprob for s in (step.result() for step in steps) if s.logprob is not None]
                translation = Translation(
                    result,
                    route.path,
                    route.model_label,
                    None,
                    round(sum(scores), 4) if scores else None,
                    from_whisper_english=route.uses_whisper,
                )
                return _restored(translation, used, route.target)
            except Exception as error:
                # One language's failure costs that language its translation, never the others theirs;
                # the reader gets the words as spoken, marked. Logged by type and place only: the
                # exception's text may hold the speaker's words.
                log.error(
                    "translation %s→%s with %s failed: %s",
                    route.source,
                    route.target,
                    route.model_label,
                    describe_exception(error),
                )
                note = failed_note(route.model_label, route.source, route.target)
                return Translation(text, TranslationPath.UNTRANSLATED, None, note)

        by_target = {target: asyncio.create_task(finish(target, route)) for target, route in routes.items()}
        if plan.original_read:
            by_target[source] = asyncio.create_task(self._given_translation(text))
        return UtteranceTranslation(by_target, list(hops.values()))

    async def aclose(self) -> None:
        self._closed = True
        for queue in self._queues.values():
            for job in queue:
                if not job.future.done():
                    job.future.set_exception(RuntimeError("translation engine closed"))
            queue.clear()
        # Waits for a model call already running; CTranslate2 cannot be interrupted mid-batch.
        for lane in self._lanes:
            await asyncio.to_thread(lane.executor.shutdown, wait=True, cancel_futures=True)

    @staticmethod
    async def _given(text: str) -> ScoredText:
        return ScoredText(text, None)

    @staticmethod
    async def _given_translation(text: str) -> Translation:
        return Translation(text, TranslationPath.ORIGINAL, None, None)

    async def _call_after(self, hop: Hop, given: asyncio.Task[ScoredText], priority: Priority) -> ScoredText:
        return await self._call(hop, (await given).text, priority)

    async def _call(self, hop: Hop, text: str, priority: Priority) -> ScoredText:
        model = hop.model
        assert model is not None
        if not text.strip():
            return ScoredText(text, None)
        cache_key = (model, hop.source, hop.target, text)
        cached = self._cache.get(cache_key)
        if cached is not None:
            self._cache.move_to_end(cache_key)
            return cached
        async with self._slots:
            if self._closed:
                raise RuntimeError("translation engine closed")
            self._pending_jobs += 1
            try:
                future: asyncio.Future[ScoredText] = asyncio.get_running_loop().create_future()
                queue = self._queues[priority]
                queue.append(_Job(model, hop.source, hop.target, text, future))
                for lane in self._lanes:
                    if any(q is queue for q in lane.queues):
                        if lane.arrival is not None and not lane.arrival.done():
                            lane.arrival.set_result(None)
                        if lane.task is None or lane.task.done():
                            lane.task = asyncio.create_task(self._dispatch(lane))
                result = await future
            finally:
                self._pending_jobs -= 1
        self._cache[cache_key] = result
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return result

    async def _dispatch(self, lane: _Lane) -> None:
        """Starts a model call whenever a thread is free, highest priority first: a final that arrives
        while partials are translated goes next, on the first free thread, before any queued partial.
        Ends when nothing is running or queued (the next job starts it again)."""
        running: dict[asyncio.Future[None], TranslationModel] = {}
        while True:
            while len(running) < lane.workers:
                group = lane.next_group(set(running.values()))
                if group is None:
                    break
                running[asyncio.create_task(_run_group(lane, group))] = group[0].model
            if not running:
                return
            lane.arrival = asyncio.get_running_loop().create_future()
            try:
                done, _ = await asyncio.wait({*running, lane.arrival}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                lane.arrival = None
            for finished in done:
                running.pop(finished, None)


async def _run_group(lane: _Lane, jobs: list[_Job]) -> None:
    """One model call for `jobs` (same model and source language): (text, target) rows in, futures set."""
    model, source = jobs[0].model, jobs[0].source
    rows = list(dict.fromkeys((job.text, job.target) for job in jobs))
    try:
        translated = await asyncio.get_running_loop().run_in_executor(
            lane.executor, model.translate_rows, rows, source
        )
        if len(translated) != len(rows):
            raise RuntimeError(f"{model.name} returned {len(translated)} results for {len(rows)} inputs")
        outcome: dict[tuple[str, str], ScoredText] | BaseException = dict(zip(rows, translated, strict=True))
    except Exception as exc:  # includes the executor shut down under us: fail rather than hang callers
        targets = ",".join(sorted({target for _, target in rows}))
        # Type and place only: inputs are medical speech, and an exception's text may quote them.
        log.error(
            "translation with %s failed for %s→%s: %s", model.name, source, targets, describe_exception(exc)
        )
        outcome = exc
    for job in jobs:
        if job.future.done():
            continue
        if isinstance(outcome, BaseException):
            job.future.set_exception(outcome)
        else:
            job.future.set_result(outcome[(job.text, job.target)])


def _retrieve(task: asyncio.Task[ScoredText]) -> None:
    """A hop's failure is reported through the targets that awaited it; one whose targets were
    cancelled first must not surface later as "exception never retrieved"."""
    if not task.cancelled():
        task.exception()


def _restored(translation: Translation, protected: ProtectedText, target: str) -> Translation:
    if not protected.changed:
        return translation
    return replace(translation, text=restore(translation.text, protected, target))
