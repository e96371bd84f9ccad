"""The translation engine: routes each utterance to every listener language, off the event loop.

Model calls run in worker threads, never on the event loop. Calls that pile up while a worker is busy
are grouped, so concurrent utterances from the same language share one batch. Finals (urgent) always go
before partials:
- on CPU one worker serves both, finals first: CTranslate2 already uses `intra_threads` cores per call;
- on a GPU finals have a worker of their own, so a final never waits for a batch of partials to finish
  (the models are opened with one CUDA stream per worker, see mt/model.py).
Partials are best-effort: when half the engine's capacity is taken, a partial is refused at once
(TranslationBusyError) rather than queued, so they can never crowd finals out.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from mt import catalogue
from mt.families import ModelFamily
from mt.glossary import ProtectedText, expect, protect, restore
from mt.model import DEFAULT_BEAM_SIZE, DeviceUnavailableError, ModelLoadError, TranslationModel, load_model
from mt.routing import Hop, Route, plan_route
from protocol.captions import TranslationPath
from protocol.glossary import Glossary
from protocol.languages import language

log = logging.getLogger(__name__)

# Specialised pair models first: an OPUS-MT pair is several times faster than a multilingual model and,
# for the pairs it exists for, at least as good.
# Decoder-only instruct models come last: several times slower per token than a seq2seq model of their size.
_FAMILY_PREFERENCE = {
    ModelFamily.MARIAN: 0,
    ModelFamily.NLLB: 1,
    ModelFamily.M2M100: 2,
    ModelFamily.GENERATOR: 3,
}


@dataclass(frozen=True)
class Translation:
    text: str
    path: TranslationPath
    model: str | None  # model name(s) used, "+"-joined for pivots; "whisper" for Whisper's English
    note: str | None  # why the text is not a translation; None when it is one


class TranslationBusyError(RuntimeError):
    """A partial caption's translation was refused because the engine is busy; the next one may go."""


@dataclass
class _Job:
    model: TranslationModel
    source: str
    target: str
    text: str
    future: asyncio.Future[str] = field(repr=False)


# id(model), source: one translate_rows call per group, every target language in it (multilingual
# models serve them all in one model call).
_GroupKey = tuple[int, str]


@dataclass
class _Lane:
    """One worker thread and the queues it takes jobs from, in priority order."""

    executor: ThreadPoolExecutor
    queues: tuple[list[_Job], ...]
    task: asyncio.Task[None] | None = None


class TranslationEngine:
    def __init__(
        self,
        models: Sequence[TranslationModel],
        *,
        max_pending: int = 64,
        models_dir: Path | None = None,
        cache_size: int = 256,
        finals_lane: bool | None = None,
    ) -> None:
        """`finals_lane`: give finals a worker of their own (default: when any model runs on a GPU)."""
        if max_pending < 2:
            raise ValueError("max_pending must be at least 2")
        self._models = list(models)
        self._models_dir = models_dir
        self._max_pending = max_pending
        self._slots = asyncio.Semaphore(max_pending)
        self._pending_jobs = 0
        self._urgent: list[_Job] = []
        self._background: list[_Job] = []
        if finals_lane is None:
            finals_lane = any(model.device != "cpu" for model in self._models)
        if finals_lane:
            self._lanes = [
                _Lane(ThreadPoolExecutor(1, thread_name_prefix="babelcall-mt-finals"), (self._urgent,)),
                _Lane(ThreadPoolExecutor(1, thread_name_prefix="babelcall-mt-partials"), (self._background,)),
            ]
        else:
            executor = ThreadPoolExecutor(1, thread_name_prefix="babelcall-mt")
            self._lanes = [_Lane(executor, (self._urgent, self._background))]
        # Speakers' partial captions repeat the same text; a small cache saves re-translating it. Keyed by
        # the model object (two directories may share a name), the pair and the exact model input, which
        # carries the glossary's placeholders: terms are restored after the cache, per request.
        self._cache: OrderedDict[tuple[TranslationModel, str, str, str], str] = OrderedDict()
        self._cache_size = cache_size
        self._closed = False

    @classmethod
    def from_directory(
        cls,
        models_dir: Path,
        *,
        device: str = "cpu",
        compute_type: str = "int8",
        intra_threads: int = 2,
        beam_size: int = DEFAULT_BEAM_SIZE,
    ) -> TranslationEngine:
        """Load every model subdirectory of `models_dir`; a missing directory gives an empty engine."""
        models_dir = Path(models_dir)
        models: list[TranslationModel] = []
        if not models_dir.is_dir():
            log.info("no translation models: %s does not exist", models_dir)
            return cls(models, models_dir=models_dir)
        for entry in sorted(models_dir.iterdir()):
            if not entry.is_dir() or entry.name.startswith("."):
                continue
            try:
                model = load_model(
                    entry,
                    device=device,
                    compute_type=compute_type,
                    intra_threads=intra_threads,
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
        return cls(models, models_dir=models_dir)

    @property
    def models(self) -> list[TranslationModel]:
        """The loaded models in preference order (a copy)."""
        return list(self._models)

    @property
    def model_names(self) -> list[str]:
        return [m.name for m in self._models]

    @property
    def pending(self) -> int:
        """Model calls accepted and not yet finished (at most `max_pending`)."""
        return self._pending_jobs

    def route(self, source: str, target: str, *, whisper_english: bool) -> Route:
        language(source)
        language(target)
        return plan_route(self._models, source, target, whisper_english=whisper_english)

    def missing_model_hint(self, source: str, target: str) -> str:
        return catalogue.missing_model_hint(source, target, self._models_dir)

    async def translate(
        self,
        text: str,
        source: str,
        targets: Iterable[str],
        *,
        whisper_english: str | None = None,
        glossary: Glossary | None = None,
        urgent: bool = True,
    ) -> dict[str, Translation]:
        """Translate one utterance into each target language; one model call per distinct target at most.

        `urgent=False` marks best-effort work (partial captions): queued urgent work (finals) runs first,
        and when the engine is half full it raises TranslationBusyError instead of queueing.

        With a glossary, its terms come through untranslated or as their rendering in each target
        language, on every path (direct, Whisper's English, pivot); see mt/glossary.py for the policy.
        """
        if self._closed:
            raise RuntimeError("translation engine is closed")
        if not urgent and self._pending_jobs >= self._max_pending // 2:
            raise TranslationBusyError("translation engine busy: partial caption not translated")
        language(source)
        distinct_targets = list(dict.fromkeys(targets))
        for target in distinct_targets:
            language(target)
        routes = {
            t: self.route(source, t, whisper_english=whisper_english is not None) for t in distinct_targets
        }
        protected = protect(text, glossary, source)
        protected_english = None
        if whisper_english is not None:
            protected_english = expect(
                protect(whisper_english, glossary, "en"), protected.terms + protected.expected
            )

        # Pivots to several languages share their first hop, so run every first hop once, then the seconds.
        first_hops = {_hop_key(r.hops[0]): r.hops[0] for r in routes.values() if r.hops}
        first_results = await self._run_hops(
            first_hops.values(),
            protected.text,
            protected_english.text if protected_english is not None else None,
            urgent,
        )
        second_hops: dict[tuple[str, str, str], Hop] = {}
        second_inputs: dict[tuple[str, str, str], str | BaseException] = {}
        for route in routes.values():
            if len(route.hops) > 1:
                key = _hop_key(route.hops[1])
                second_hops[key] = route.hops[1]
                second_inputs[key] = first_results[_hop_key(route.hops[0])]
        second_results = await self._run_hops_on(second_hops, second_inputs, urgent)

        translations = {}
        for target, route in routes.items():
            translation = self._translation(text, route, first_results, second_results)
            if translation.path in (TranslationPath.ORIGINAL, TranslationPath.UNTRANSLATED):
                translations[target] = translation
                continue
            # Restore with the terms of the text the first hop actually read: the speaker's, or Whisper's.
            used = protected_english if route.hops[0].model is None else protected
            assert used is not None
            translations[target] = _restored(translation, used, target)
        return translations

    async def aclose(self) -> None:
        self._closed = True
        for queue in (self._urgent, self._background):
            for job in queue:
                if not job.future.done():
                    job.future.set_exception(RuntimeError("translation engine closed"))
            queue.clear()
        # Waits for a model call already running; CTranslate2 cannot be interrupted mid-batch.
        for lane in self._lanes:
            await asyncio.to_thread(lane.executor.shutdown, wait=True, cancel_futures=True)

    def _translation(
        self,
        original: str,
        route: Route,
        first_results: dict[tuple[str, str, str], str | BaseException],
        second_results: dict[tuple[str, str, str], str | BaseException],
    ) -> Translation:
        if route.path is TranslationPath.ORIGINAL:
            return Translation(original, TranslationPath.ORIGINAL, None, None)
        if route.path is TranslationPath.UNTRANSLATED:
            note = f"not translated: no model for {route.source}→{route.target}"
            return Translation(original, TranslationPath.UNTRANSLATED, None, note)
        result = first_results[_hop_key(route.hops[0])]
        if len(route.hops) > 1 and not isinstance(result, BaseException):
            result = second_results[_hop_key(route.hops[1])]
        if isinstance(result, BaseException):
            note = f"not translated: {route.model_label} failed for {route.source}→{route.target}"
            return Translation(original, TranslationPath.UNTRANSLATED, None, note)
        return Translation(result, route.path, route.model_label, None)

    async def _run_hops(
        self, hops: Iterable[Hop], text: str, whisper_english: str | None, urgent: bool
    ) -> dict[tuple[str, str, str], str | BaseException]:
        inputs: dict[tuple[str, str, str], str] = {}
        model_hops: dict[tuple[str, str, str], Hop] = {}
        results: dict[tuple[str, str, str], str | BaseException] = {}
        for hop in hops:
            key = _hop_key(hop)
            if hop.model is None:
                results[key] = whisper_english or ""
            else:
                model_hops[key] = hop
                inputs[key] = text
        results.update(await self._run_hops_on(model_hops, inputs, urgent))
        return results

    async def _run_hops_on(
        self,
        hops: dict[tuple[str, str, str], Hop],
        inputs: dict[tuple[str, str, str], str | BaseException],
        urgent: bool,
    ) -> dict[tuple[str, str, str], str | BaseException]:
        keys = list(hops)
        outcomes = await asyncio.gather(
            *(self._call(hops[k], inputs[k], urgent) for k in keys), return_exceptions=True
        )
        return dict(zip(keys, outcomes, strict=True))

    async def _call(self, hop: Hop, text: str | BaseException, urgent: bool) -> str:
        if isinstance(text, BaseException):
            raise text
        model = hop.model
        assert model is not None
        if not text.strip():
            return text
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
                future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
                queue = self._urgent if urgent else self._background
                queue.append(_Job(model, hop.source, hop.target, text, future))
                for lane in self._lanes:
                    if any(q is queue for q in lane.queues) and (lane.task is None or lane.task.done()):
                        lane.task = asyncio.create_task(self._drain(lane))
                result = await future
            finally:
                self._pending_jobs -= 1
        self._cache[cache_key] = result
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return result

    async def _drain(self, lane: _Lane) -> None:
        loop = asyncio.get_running_loop()
        while queue := next((q for q in lane.queues if q), None):
            # Each round takes the first non-empty queue whole: finals that arrive while partials are
            # being translated go next, before any partial that queued meanwhile. Jobs whose caller
            # gave up (a partial superseded by its final) are dropped unrun.
            jobs = [job for job in queue if not job.future.done()]
            queue.clear()
            if not jobs:
                continue
            groups: dict[_GroupKey, list[_Job]] = {}
            for job in jobs:
                groups.setdefault((id(job.model), job.source), []).append(job)
            work = [(g[0].model, g[0].source, _distinct_rows(g)) for g in groups.values()]
            try:
                outcomes = await loop.run_in_executor(lane.executor, _run_batches, work)
            except RuntimeError as exc:  # the executor was shut down under us: fail rather than hang callers
                outcomes = [exc] * len(work)
            for group, outcome in zip(groups.values(), outcomes, strict=True):
                for job in group:
                    if job.future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        job.future.set_exception(outcome)
                    else:
                        job.future.set_result(outcome[(job.text, job.target)])


def _restored(translation: Translation, protected: ProtectedText, target: str) -> Translation:
    if not protected.changed:
        return translation
    return Translation(
        restore(translation.text, protected, target), translation.path, translation.model, translation.note
    )


def _hop_key(hop: Hop) -> tuple[str, str, str]:
    return (hop.model.name if hop.model is not None else "whisper", hop.source, hop.target)


def _distinct_rows(jobs: list[_Job]) -> list[tuple[str, str]]:
    return list(dict.fromkeys((job.text, job.target) for job in jobs))


def _run_batches(
    work: list[tuple[TranslationModel, str, list[tuple[str, str]]]],
) -> list[dict[tuple[str, str], str] | BaseException]:
    """Runs in the worker thread: one model call per group, (text, target) rows in, translations out."""
    outcomes: list[dict[tuple[str, str], str] | BaseException] = []
    for model, source, rows in work:
        targets = sorted({target for _, target in rows})
        try:
            translated = model.translate_rows(rows, source)
            if len(translated) != len(rows):
                raise RuntimeError(f"{model.name} returned {len(translated)} results for {len(rows)} inputs")
            outcomes.append(dict(zip(rows, translated, strict=True)))
        except Exception as exc:
            # The traceback names the model and pair only; inputs are medical speech and never logged.
            log.exception("translation with %s failed for %s→%s", model.name, source, ",".join(targets))
            outcomes.append(exc)
    return outcomes
