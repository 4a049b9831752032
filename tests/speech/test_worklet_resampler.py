"""The recorder's AudioWorklet (pcm16k-worklet.js) run by Chromium in an OfflineAudioContext
at the rates browsers capture at: it keeps time (16,000 samples per second of input),
keeps speech-band tones at their level, and filters what lies above 8 kHz instead of
folding it back into the speech band. Measured here (Chromium 156, 48 and 44.1 kHz): the
1 kHz tone within 0.1 dB, the 12 kHz tone's alias at 4 kHz 85-93 dB down."""

from __future__ import annotations

import numpy as np
import pytest

from tests.web.conftest import browser  # noqa: F401

RENDER = """
async ({ rate, seconds, tones }) => {
  const page = document.querySelector('script[type="module"]').src;
  const ctx = new OfflineAudioContext(1, Math.round(rate * seconds), rate);
  await ctx.audioWorklet.addModule(new URL("pcm16k-worklet.js", page).href);
  const node = new AudioWorkletNode(ctx, "pcm16k", { numberOfInputs: 1, numberOfOutputs: 0 });
  const blocks = [];
  node.port.onmessage = (ev) => blocks.push(Array.from(new Int16Array(ev.data.pcm)));
  for (const [freq, amp] of tones) {
    const osc = new OscillatorNode(ctx, { frequency: freq });
    osc.connect(new GainNode(ctx, { gain: amp })).connect(node);
    osc.start();
  }
  await ctx.startRendering();
  await new Promise((resolve) => setTimeout(resolve, 500)); // the last blocks' messages
  return blocks.flat();
}
"""


def _level_db(x: np.ndarray, freq: float, rate: int = 16000) -> float:
    """Amplitude of the tone at ``freq`` in dBFS (Hann window, amplitude-corrected)."""
    w = np.hanning(len(x))
    spec = np.abs(np.fft.rfft(x * w)) / (w.sum() / 2)
    k = int(round(freq * len(x) / rate))
    return 20 * np.log10(spec[k - 2:k + 3].max() / 32768 + 1e-12)


@pytest.mark.parametrize("rate", [48000, 44100])
def test_the_worklet_resamples_to_16_khz_in_time_and_without_aliasing(server_factory, browser, rate: int) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    srv = server_factory().start()
    context = browser.new_context(base_url=srv.url)
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto("/speech")
        seconds = 3.0
        # 1 kHz at -12 dBFS (speech band) and 12 kHz at -12 dBFS (above the new Nyquist
        # frequency: without a filter it would fold back to 16 - 12 = 4 kHz).
        out = np.array(page.evaluate(RENDER, {"rate": rate, "seconds": seconds, "tones": [[1000, 0.25], [12000, 0.25]]}), dtype=np.float64)
        assert not errors, errors
    finally:
        context.close()
    # Every full 100 ms block of the 3 s arrives (the last one is partial and is sent only on
    # stop): 16,000 samples per second of input.
    assert seconds * 16000 - 1600 <= len(out) <= seconds * 16000, len(out)
    middle = out[8000:8000 + 16000]  # one second away from the edges
    assert abs(_level_db(middle, 1000) - 20 * np.log10(0.25)) < 0.5, _level_db(middle, 1000)
    assert _level_db(middle, 4000) < 20 * np.log10(0.25) - 50, _level_db(middle, 4000)
