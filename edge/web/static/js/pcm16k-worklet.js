// AudioWorklet processor: the microphone's float samples at the audio context's rate
// (usually 48 kHz) become 16 kHz mono signed 16-bit PCM, the hub's live-ingest format.
// Blocks of 100 ms are posted to the page with their peak level (for the meter).
//
// Downsampling is a windowed-sinc low-pass (cutoff 7.2 kHz, under the new Nyquist
// frequency, so speech energy above 8 kHz does not fold back as noise the recogniser
// hears) evaluated only where an output sample needs it, then linear interpolation
// between the two filtered neighbours for rates that are not a whole multiple (44.1 kHz).
// It runs on the audio thread: fixed buffers, no allocation per render quantum.

const OUT_RATE = 16000;
const BLOCK = OUT_RATE / 10; // 100 ms
const TAPS = 63; // odd, so the filter has a centre tap
const MID = (TAPS - 1) / 2;
const HISTORY = 8192; // input samples kept: the filter's span plus one render quantum needs under 300

function lowpass(inRate) {
  const fc = Math.min(7200, 0.45 * inRate) / inRate;
  const h = new Float32Array(TAPS);
  let sum = 0;
  for (let i = 0; i < TAPS; i++) {
    const n = i - MID;
    const sinc = n === 0 ? 2 * fc : Math.sin(2 * Math.PI * fc * n) / (Math.PI * n);
    const blackman = 0.42 - 0.5 * Math.cos((2 * Math.PI * i) / (TAPS - 1)) + 0.08 * Math.cos((4 * Math.PI * i) / (TAPS - 1));
    h[i] = sinc * blackman;
    sum += h[i];
  }
  for (let i = 0; i < TAPS; i++) h[i] /= sum; // unity gain at 0 Hz
  return h;
}

class Pcm16kProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / OUT_RATE; // input samples per output sample
    this.taps = this.step === 1 ? null : lowpass(sampleRate);
    // Input history; MID leading zeros stand for the silence before the first sample.
    this.buf = new Float32Array(HISTORY);
    this.len = this.taps ? MID : 0;
    this.pos = this.len; // fractional index in buf of the next output sample
    this.out = new Int16Array(BLOCK);
    this.n = 0;
    this.peak = 0;
    this.stopped = false;
    this.port.onmessage = (ev) => {
      if (ev.data === "flush") {
        // The page is stopping: hand over the last partial block, then end.
        this.post(true);
        this.stopped = true;
      }
    };
  }

  filtered(i) {
    const h = this.taps;
    const x = this.buf;
    let acc = 0;
    const base = i - MID;
    for (let j = 0; j < TAPS; j++) acc += h[j] * x[base + j];
    return acc;
  }

  emit(value) {
    const v = value > 1 ? 1 : value < -1 ? -1 : value;
    const a = v < 0 ? -v : v;
    if (a > this.peak) this.peak = a;
    this.out[this.n++] = v < 0 ? Math.round(v * 32768) : Math.round(v * 32767);
    if (this.n === BLOCK) this.post(false);
  }

  post(last) {
    const pcm = this.out.slice(0, this.n);
    this.port.postMessage({ pcm: pcm.buffer, peak: this.peak, last }, [pcm.buffer]);
    this.n = 0;
    this.peak = 0;
  }

  process(inputs) {
    if (this.stopped) return false;
    const input = inputs[0];
    if (!input || input.length === 0) return true; // no track connected (yet)
    const frames = input[0].length;
    const channels = input.length;
    for (let k = 0; k < frames; k++) {
      let s = 0;
      for (let c = 0; c < channels; c++) s += input[c][k];
      this.buf[this.len + k] = s / channels;
    }
    this.len += frames;
    if (!this.taps) {
      for (let k = 0; k < this.len; k++) this.emit(this.buf[k]);
      this.len = this.pos = 0;
      return true;
    }
    // An output sample at fractional input index p needs filtered values at floor(p)
    // and floor(p)+1, i.e. input up to floor(p)+1+MID.
    while (Math.floor(this.pos) + 1 + MID < this.len) {
      const i = Math.floor(this.pos);
      const frac = this.pos - i;
      const a = this.filtered(i);
      this.emit(frac === 0 ? a : a + (this.filtered(i + 1) - a) * frac);
      this.pos += this.step;
    }
    // Drop input no future output needs, keeping the filter's left half.
    const drop = Math.floor(this.pos) - MID;
    if (drop > 0) {
      this.buf.copyWithin(0, drop, this.len);
      this.len -= drop;
      this.pos -= drop;
    }
    return true;
  }
}

registerProcessor("pcm16k", Pcm16kProcessor);
