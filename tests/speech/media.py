"""Test audio built at test time from the reference clip (nothing big is committed).

Encoding uses PyAV's bundled FFmpeg encoders, so the same library that decodes
uploads is not trusted blindly: every file's duration is checked against the
clip's, and the transcripts of re-encoded files are compared with the original's.
"""

from __future__ import annotations

import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

CLIP = Path(__file__).resolve().parents[3] / "shared" / "data" / "speech" / "ko" / "picovoice_test_ko.wav"
if not CLIP.exists():  # CI clones the repo next to a copy of shared/
    CLIP = Path("/work/shared/data/speech/ko/picovoice_test_ko.wav")
RATE = 16_000
REF_TEXT = "그는 이리저리 피하면서 길 한 옆으로 걸어갔다"
REF_WORDS = [
    ("그는", 0.67, 0.90), ("이리저리", 1.06, 1.34), ("피하면서", 1.44, 1.86), ("길", 2.11, 2.24),
    ("한", 2.34, 2.40), ("옆으로", 2.50, 2.75), ("걸어갔다", 2.85, 3.23),
]


def clip_samples() -> np.ndarray:
    with wave.open(str(CLIP)) as w:
        assert w.getframerate() == RATE and w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").copy()


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return path


def resample_linear(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """A plain linear resampler, only to *make* 8/48 kHz test inputs (the hub uses libswresample)."""
    n_out = int(len(samples) * rate_out / rate_in)
    x = np.linspace(0, len(samples) - 1, n_out)
    return np.interp(x, np.arange(len(samples)), samples.astype(np.float64)).astype(np.int16)


def encode(path: Path, samples: np.ndarray, codec: str, rate: int = RATE, channels: int = 1, video: bool = False) -> Path:
    """Encode mono/stereo int16 ``samples`` (interleaved if stereo) into ``path`` with PyAV."""
    layout = "mono" if channels == 1 else "stereo"
    with av.open(str(path), "w") as out:
        astream = out.add_stream(codec, rate=rate, layout=layout)
        vstream = None
        if video:
            vstream = out.add_stream("mpeg4", rate=10)
            vstream.width, vstream.height, vstream.pix_fmt = 64, 48, "yuv420p"
        frame_size = astream.codec_context.frame_size or 1024
        data = samples.reshape(-1, channels)
        pts = 0
        for i in range(0, len(data), frame_size):
            block = data[i:i + frame_size]
            if len(block) < frame_size and astream.codec_context.frame_size:
                block = np.vstack([block, np.zeros((frame_size - len(block), channels), dtype=np.int16)])
            frame = av.AudioFrame.from_ndarray(block.astype(np.int16).reshape(1, -1), format="s16", layout=layout)
            frame.sample_rate = rate
            frame.pts = pts
            frame.time_base = Fraction(1, rate)
            pts += len(block)
            for packet in astream.encode(frame):
                out.mux(packet)
        for packet in astream.encode(None):
            out.mux(packet)
        if vstream is not None:
            seconds = len(data) / rate
            for k in range(int(seconds * 10)):
                img = np.full((48, 64, 3), (k * 7) % 255, dtype=np.uint8)
                vf = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
                vf.pts = k
                vf.time_base = Fraction(1, 10)
                for packet in vstream.encode(vf):
                    out.mux(packet)
            for packet in vstream.encode(None):
                out.mux(packet)
    return path


def lesson(total_s: float, offsets: list[float], noise_dbfs: float = -70.0, seed: int = 1) -> np.ndarray:
    """``total_s`` of quiet room noise with the clip placed at each offset (seconds)."""
    rng = np.random.default_rng(seed)
    n = int(total_s * RATE)
    amp = 32768 * 10 ** (noise_dbfs / 20)
    out = (rng.standard_normal(n) * amp).astype(np.int16)
    clip = clip_samples()
    for off in offsets:
        start = int(off * RATE)
        out[start:start + len(clip)] = clip
    return out
