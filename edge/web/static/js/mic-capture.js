// The teacher's microphone as 16 kHz mono signed 16-bit PCM, in blocks of 100 ms,
// with the peak level of each block (for a level meter). The conversion runs in an
// AudioWorklet (pcm16k-worklet.js, served by the hub like every other asset).

export class CaptureError extends Error {
  /** reason: "insecure" (no getUserMedia: not HTTPS or localhost), "denied", "no-mic", "failed". */
  constructor(reason, cause) {
    super(reason);
    this.reason = reason;
    this.cause = cause;
  }
}

export class MicCapture {
  /**
   * onPcm(Int16Array) receives every block in order; onLevel(peak 0..1) every 100 ms;
   * onEnded() when the microphone goes away by itself (unplugged, permission revoked).
   */
  constructor({ onPcm, onLevel, onEnded }) {
    this.onPcm = onPcm;
    this.onLevel = onLevel || (() => {});
    this.onEnded = onEnded || (() => {});
    this.stream = null;
    this.ctx = null;
    this.node = null;
    this.flushed = null;
  }

  async start() {
    // getUserMedia exists only in a secure context (HTTPS, or http://localhost).
    if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) throw new CaptureError("insecure");
    try {
      // Raw voice: the recogniser copes with level changes better than with the
      // artefacts of echo cancellation and noise suppression.
      this.stream = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
      });
    } catch (err) {
      const name = err && err.name;
      if (name === "NotAllowedError" || name === "SecurityError") throw new CaptureError("denied", err);
      if (name === "NotFoundError" || name === "OverconstrainedError") throw new CaptureError("no-mic", err);
      throw new CaptureError("failed", err);
    }
    try {
      this.ctx = new AudioContext();
      await this.ctx.audioWorklet.addModule(new URL("./pcm16k-worklet.js", import.meta.url));
      const source = this.ctx.createMediaStreamSource(this.stream);
      this.node = new AudioWorkletNode(this.ctx, "pcm16k", { numberOfInputs: 1, numberOfOutputs: 0 });
      let done;
      this.flushed = new Promise((resolve) => {
        done = resolve;
      });
      this.node.port.onmessage = (ev) => {
        const { pcm, peak, last } = ev.data;
        if (pcm.byteLength) this.onPcm(new Int16Array(pcm));
        this.onLevel(peak);
        if (last) done();
      };
      source.connect(this.node);
      await this.ctx.resume();
    } catch (err) {
      this.release();
      throw new CaptureError("failed", err);
    }
    for (const track of this.stream.getAudioTracks()) track.addEventListener("ended", () => this.onEnded());
  }

  /** The rate the browser captures at (the worklet converts it to 16 kHz). */
  get inputRate() {
    return this.ctx ? this.ctx.sampleRate : 0;
  }

  /** Stop: every sample captured so far has been handed to onPcm when this resolves. */
  async stop() {
    if (this.node) {
      this.node.port.postMessage("flush");
      // A closed or suspended context never answers; do not hang the stop button on it.
      await Promise.race([this.flushed, new Promise((resolve) => setTimeout(resolve, 1000))]);
    }
    this.release();
  }

  release() {
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    if (this.node) this.node.port.onmessage = null;
    if (this.ctx && this.ctx.state !== "closed") this.ctx.close().catch(() => {});
    this.stream = this.ctx = this.node = null;
  }
}
