"""Transcribing a stream of 16 kHz PCM with one shared vosk model.

One ``vosk.Model`` is loaded per process and shared; recognizers are pooled and
reused between jobs. vosk's word times count all audio a recognizer was ever fed
(also across ``Reset``), so each pooled recognizer remembers how much it has been
fed, and every job maps recognizer time back to recording time itself.

Long quiet stretches (below ``speech.silence_dbfs`` for over a second) are not fed
to the recognizer: a lesson is mostly pauses, and skipping them is where most of
the speed comes from. Time still counts: the map from fed time to recording time
has one entry per contiguous stretch fed, so words at minute 44 land at minute 44.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.speech.audio import RATE

log = logging.getLogger(__name__)

BLOCK = RATE // 10          # 0.1 s: the silence gate's resolution
HANGOVER_BLOCKS = 10        # keep feeding 1 s of quiet after speech (vosk endpoints on it)
PREROLL_BLOCKS = 3          # and 0.3 s before speech resumes (soft word onsets)
PARTIAL_EVERY_BLOCKS = 5    # at most two partial results per second of audio


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    end: float
    conf: float


class SpeechModel:
    """A loaded vosk model and a pool of reusable recognizers."""

    def __init__(self, path: Path) -> None:
        # Kaldi/OpenBLAS must not start a thread per core inside each recognizer:
        # concurrency is chosen by speech.concurrency, one core per job.
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        import vosk

        vosk.SetLogLevel(-1)
        self._vosk = vosk
        self.path = path
        self.model = vosk.Model(str(path))  # raises on a broken model folder
        self._pool: list[_PooledRecognizer] = []
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Decode a second of noise so the first real job does not pay for lazy set-up."""
        rng = np.random.default_rng(0)
        noise = (rng.standard_normal(RATE) * 300).astype("<i2").tobytes()
        rec = self.acquire()
        try:
            rec.accept(noise)
            rec.final()
        finally:
            self.release(rec)

    def acquire(self) -> _PooledRecognizer:
        with self._lock:
            if self._pool:
                return self._pool.pop()
        rec = self._vosk.KaldiRecognizer(self.model, RATE)
        rec.SetWords(True)
        rec.SetPartialWords(False)
        return _PooledRecognizer(rec)

    def release(self, rec: _PooledRecognizer) -> None:
        rec.reset()
        with self._lock:
            self._pool.append(rec)


@dataclass
class _PooledRecognizer:
    rec: object
    fed_samples: int = 0

    @property
    def fed_s(self) -> float:
        return self.fed_samples / RATE

    def accept(self, pcm: bytes) -> bool:
        self.fed_samples += len(pcm) // 2
        return bool(self.rec.AcceptWaveform(pcm))  # type: ignore[attr-defined]

    def result(self) -> dict:
        return json.loads(self.rec.Result())  # type: ignore[attr-defined]

    def partial(self) -> dict:
        return json.loads(self.rec.PartialResult())  # type: ignore[attr-defined]

    def final(self) -> dict:
        return json.loads(self.rec.FinalResult())  # type: ignore[attr-defined]

    def reset(self) -> None:
        self.rec.Reset()  # type: ignore[attr-defined]


@dataclass
class Transcriber:
    """Feed a recording's PCM in order; utterances come out through ``on_utterance``.

    ``on_partial(text, start_s)`` receives the current hypothesis (live captions)
    when set; leave it None for offline jobs, partial results cost CPU.
    """

    model: SpeechModel
    silence_dbfs: float
    on_utterance: Callable[[list[Word]], None]
    on_partial: Callable[[str, float], None] | None = None
    _rec: _PooledRecognizer | None = None
    _pos: int = 0                      # samples of the recording seen so far
    _pending: bytearray = field(default_factory=bytearray)
    _quiet_run: int = 0
    _preroll: deque = field(default_factory=lambda: deque(maxlen=PREROLL_BLOCKS))
    _map: list[tuple[float, float]] = field(default_factory=list)  # (fed_s, recording_s) at each stretch start
    _next_fed_pos: int | None = None   # recording sample the next fed block must start at to need no new map entry
    _blocks_since_partial: int = 0
    _threshold: float = 0.0

    def __post_init__(self) -> None:
        self._rec = self.model.acquire()
        # RMS of int16 samples at the threshold; compare squares to skip a sqrt per block.
        rms = 32768.0 * 10 ** (self.silence_dbfs / 20)
        self._threshold = rms * rms

    @property
    def position_s(self) -> float:
        return self._pos / RATE

    def feed(self, pcm: bytes) -> None:
        self._pending += pcm
        whole = len(self._pending) // (BLOCK * 2) * BLOCK * 2
        if not whole:
            return
        data = bytes(self._pending[:whole])
        del self._pending[:whole]
        samples = np.frombuffer(data, dtype="<i2").reshape(-1, BLOCK).astype(np.float32)
        energy = (samples * samples).mean(axis=1)
        for i, e in enumerate(energy):
            self._block(data[i * BLOCK * 2:(i + 1) * BLOCK * 2], bool(e >= self._threshold))

    def _block(self, block: bytes, loud: bool) -> None:
        start = self._pos
        self._pos += BLOCK
        if loud:
            while self._preroll:
                pos, quiet = self._preroll.popleft()
                self._feed_block(pos, quiet)
            self._quiet_run = 0
            self._feed_block(start, block)
            return
        self._quiet_run += 1
        if self._quiet_run <= HANGOVER_BLOCKS:
            self._feed_block(start, block)
            if self._quiet_run == HANGOVER_BLOCKS:
                self._flush()  # the utterance is over: close it before skipping
        else:
            self._preroll.append((start, block))

    def _feed_block(self, pos: int, block: bytes) -> None:
        rec = self._rec
        assert rec is not None
        if self._next_fed_pos != pos:
            self._map.append((rec.fed_s, pos / RATE))
        self._next_fed_pos = pos + BLOCK
        if rec.accept(block):
            self._emit(rec.result())
            self._blocks_since_partial = 0
        elif self.on_partial is not None:
            self._blocks_since_partial += 1
            if self._blocks_since_partial >= PARTIAL_EVERY_BLOCKS:
                self._blocks_since_partial = 0
                text = rec.partial().get("partial", "")
                if text:
                    self.on_partial(text, self._to_recording(self._map[-1][0]))

    def _flush(self) -> None:
        assert self._rec is not None
        self._emit(self._rec.final())

    def finish(self) -> None:
        """Feed what is left (a last partial block included) and emit the last utterance."""
        if self._pending:
            real = len(self._pending) // 2
            tail = bytes(self._pending[: real * 2]) + b"\0\0" * (BLOCK - real)
            self._pending.clear()
            self._feed_block(self._pos, tail)
            self._pos += real  # the padding is not part of the recording
        self._flush()

    def close(self) -> None:
        if self._rec is not None:
            self.model.release(self._rec)
            self._rec = None

    def _to_recording(self, fed_s: float) -> float:
        # The last stretch that began at or before fed_s (the map is short: one entry per pause).
        lo, hi = 0, len(self._map) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._map[mid][0] <= fed_s + 1e-6:
                lo = mid
            else:
                hi = mid - 1
        fed0, rec0 = self._map[lo] if self._map else (0.0, 0.0)
        return rec0 + (fed_s - fed0)

    def _emit(self, result: dict) -> None:
        raw = result.get("result") or []
        words = [
            Word(w["word"], round(self._to_recording(w["start"]), 3), round(self._to_recording(w["end"]), 3), round(float(w.get("conf", 1.0)), 3))
            for w in raw
            if w.get("word")
        ]
        if words:
            self.on_utterance(words)
