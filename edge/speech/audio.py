"""Decoding recordings to the recognizer's input: 16 kHz, mono, signed 16-bit PCM.

Containers and codecs are read by PyAV (FFmpeg's libraries: wav, mp3, m4a/aac,
ogg/opus, webm, mp4 video), and resampled/downmixed by PyAV's ``AudioResampler``
(libswresample), whose filters are anti-aliased and exact about sample counts;
a hand-written resampler would be slower and worse. Decoding is streamed: a
45-minute lesson never sits in memory.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from pathlib import Path

# PyAV (FFmpeg) is imported inside the functions: it costs every web worker
# ~20 MB of memory, and only uploads and the speech worker need it.

log = logging.getLogger(__name__)

RATE = 16_000
BYTES_PER_SECOND = RATE * 2
WAV_HEADER_BYTES = 44


class AudioError(Exception):
    """The file is not audio we can read; the message is for people."""


def probe(path: Path, max_duration_s: float) -> float | None:
    """Check that ``path`` holds a decodable audio track; its duration in seconds if known.

    Reads only the container header and the first frames, so an upload is refused
    at once, not minutes later in the worker.
    """
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioError("the file has no audio track")
            stream = container.streams.audio[0]
            duration = None
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / 1_000_000
            if duration is not None and duration > max_duration_s:
                raise AudioError(f"the recording is {duration / 60:.0f} minutes long; at most {max_duration_s / 60:.0f} are accepted")
            for _frame in container.decode(stream):
                return duration
            raise AudioError("the audio track is empty")
    except AudioError:
        raise
    except (av.FFmpegError, UnicodeDecodeError, IndexError, ValueError) as exc:
        raise AudioError(f"not a readable audio or video file ({_reason(exc)})") from None


def decode_pcm(path: Path, chunk_s: float = 0.5) -> Iterator[bytes]:
    """Yield the recording as 16 kHz mono s16le PCM in chunks of about ``chunk_s``.

    A file truncated mid-way yields what could be decoded and then stops (a
    warning is logged); a file that yields nothing at all raises AudioError.
    """
    import av

    chunk = int(chunk_s * RATE) * 2
    buf = bytearray()
    produced = 0
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
    try:
        container = av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise AudioError(f"not a readable audio or video file ({_reason(exc)})") from None
    with container:
        if not container.streams.audio:
            raise AudioError("the file has no audio track")
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        frames = container.decode(stream)
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except av.FFmpegError as exc:
                # Truncated or damaged from here on: keep what came before.
                log.warning("audio decoding stopped early", extra={"path": str(path), "error": _reason(exc), "decoded_s": produced / BYTES_PER_SECOND})
                break
            frame.pts = None  # let the resampler count samples itself; broken pts must not shift time
            for out in resampler.resample(frame):
                buf += out.to_ndarray().tobytes()
            while len(buf) >= chunk:
                produced += chunk
                yield bytes(buf[:chunk])
                del buf[:chunk]
        for out in resampler.resample(None):
            buf += out.to_ndarray().tobytes()
    if buf:
        produced += len(buf)
        yield bytes(buf)
    if produced == 0:
        raise AudioError("the file contains no audio samples")


def wav_header(data_bytes: int) -> bytes:
    """A canonical 44-byte header for 16 kHz mono s16le PCM of ``data_bytes``."""
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", 36 + data_bytes, b"WAVE", b"fmt ", 16, 1, 1, RATE, BYTES_PER_SECOND, 2, 16, b"data", data_bytes,
    )


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
