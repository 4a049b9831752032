// Sending a lesson being recorded to the hub's live ingest, so that a flaky classroom
// Wi-Fi neither duplicates nor drops audio.
//
// Audio is cut into numbered 1-second chunks (POST /recordings/{id}/live?seq=N, raw
// 16 kHz mono s16le). One chunk is in flight at a time and leaves the queue only when
// the hub acknowledged it, so a chunk whose answer was lost is sent again with the same
// number and the hub acknowledges it without appending it twice. While the hub cannot
// be reached the chunks wait here (up to MAX_PENDING_S) and go out in order when it can.
// If the hub closed the recording meanwhile (no audio for speech.live_idle_timeout_s),
// what is still queued becomes a second part, a new recording starting where the first
// one stopped, so nothing recorded is lost. Each chunk is also kept in IndexedDB until the
// hub has it (audio-keep.js): a page closed while the hub could not be reached leaves its
// audio behind, and the next visit sends it as the next part (the `left` option below).

import { api, ApiError, uuid4 } from "./api.js";
import * as keep from "./audio-keep.js";

export const RATE = 16000;
const CHUNK_SAMPLES = RATE; // one second per request: short enough for captions, few requests
export const MAX_PENDING_S = 20 * 60; // 38 MB of memory on the tablet at most
const REQUEST_TIMEOUT_MS = 10000;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 5000;

function transient(err) {
  if (!(err instanceof ApiError)) return false;
  if (err.status === 0 || err.status === 429 || err.status === 502 || err.status === 504) return true;
  // 503 is "disk full" or "speech disabled" from the hub itself, which waiting will not fix;
  // a bare 503 without a problem body comes from something in between.
  if (err.status === 503) return !err.slug;
  return err.status >= 500;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class LiveUploader {
  /**
   * onChange(uploader) is called whenever state, pendingS or parts change. `left` (from
   * audio-keep.leftovers) resumes a lesson a closed page left behind: its audio is queued
   * and goes out as the recording's next part when finish() is called.
   */
  constructor({ classId, title, onChange, left = null }) {
    this.classId = left ? left.meta.classId : classId;
    this.title = left ? left.meta.title : title;
    this.lesson = left ? left.meta.lesson : uuid4();
    this.onChange = onChange || (() => {});
    this.queue = []; // {seq, pcm: Int16Array, offset: samples since the lesson's first}
    this.chunk = new Int16Array(CHUNK_SAMPLES);
    this.fill = 0;
    this.captured = 0; // samples received from the microphone
    this.chunkStart = 0; // sample number of this.chunk[0]
    this.nextSeq = 1;
    this.parts = []; // recordings created, in order: {id, started_at}
    this.requestId = uuid4(); // of the part being created: a retried create is the same recording
    this.partStartSample = 0;
    this.state = "connecting"; // connecting | live | behind | saving | saved | failed
    this.error = null; // ApiError of a failure that retrying cannot fix
    this.finishing = false;
    this.wake = null;
    if (left) {
      // The page that recorded it is gone, so is its part's stream: this audio starts a new part.
      this.parts = left.meta.parts.map((p) => ({ ...p, closed: true }));
      left.chunks.forEach((c) => this.queue.push({ seq: this.nextSeq++, pcm: c.pcm, offset: c.offset }));
      const last = this.queue[this.queue.length - 1];
      this.captured = this.chunkStart = last.offset + last.pcm.length;
      this.partStartSample = this.queue[0].offset;
    }
    this.keepAlive();
    this.alive = setInterval(() => this.keepAlive(), keep.ALIVE_MS);
    this.done = this.run().finally(() => clearInterval(this.alive));
  }

  /** Tell other pages this lesson is not left behind (and store how to resume it). */
  keepAlive() {
    const parts = this.parts.map(({ id, started_at }) => ({ id, started_at }));
    keep.saveLesson({ lesson: this.lesson, classId: this.classId, title: this.title, parts, aliveAt: Date.now() }).catch(() => {});
  }

  /** Forget the kept copy of a chunk the hub acknowledged (best effort: a copy that outlives a closed page would be sent again in its next part). */
  acked(chunk) {
    keep.dropChunk(this.lesson, chunk.offset).catch(() => {});
  }

  /** Seconds captured but not yet acknowledged by the hub. */
  get pendingS() {
    return (this.queue.reduce((n, c) => n + c.pcm.length, 0) + this.fill) / RATE;
  }

  get capturedS() {
    return this.captured / RATE;
  }

  get recordingId() {
    return this.parts.length ? this.parts[this.parts.length - 1].id : null;
  }

  /** Add microphone samples; false when too much is waiting to be sent (stop recording then). */
  push(samples) {
    if (this.finishing || this.state === "failed") return false;
    let i = 0;
    while (i < samples.length) {
      if (this.fill === 0) this.chunkStart = this.captured;
      const n = Math.min(samples.length - i, CHUNK_SAMPLES - this.fill);
      this.chunk.set(samples.subarray(i, i + n), this.fill);
      this.fill += n;
      this.captured += n;
      i += n;
      if (this.fill === CHUNK_SAMPLES) this.enqueue();
    }
    return this.pendingS < MAX_PENDING_S;
  }

  /** Send what is left, then tell the hub the recording is complete. Resolves when done or failed. */
  async finish() {
    this.finishing = true;
    if (this.fill) this.enqueue();
    this.notify();
    this.kick();
    await this.done;
  }

  enqueue() {
    const chunk = { seq: this.nextSeq++, pcm: this.chunk.slice(0, this.fill), offset: this.chunkStart };
    this.queue.push(chunk);
    this.fill = 0;
    // Without IndexedDB (private mode, quota) the chunk still goes out; only a closed page would lose it.
    keep.putChunk(this.lesson, chunk.offset, chunk.pcm).catch(() => {});
    this.kick();
  }

  kick() {
    if (this.wake) {
      this.wake();
      this.wake = null;
    }
  }

  notify() {
    try {
      this.onChange(this);
    } catch {
      // the page's display must not stop the upload
    }
  }

  setState(state) {
    if (this.state !== state) {
      this.state = state;
      this.notify();
    }
  }

  async run() {
    let backoff = BACKOFF_MIN_MS;
    const retry = async () => {
      this.setState("behind");
      await sleep(backoff);
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    };
    for (;;) {
      try {
        if (!this.parts.length || this.parts[this.parts.length - 1].closed) {
          await this.createPart();
        } else if (this.queue.length) {
          await this.sendHead();
        } else if (this.finishing) {
          await api("POST", `/recordings/${this.recordingId}/finish`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
          clearInterval(this.alive);
          await keep.forget(this.lesson).catch(() => {});
          this.setState("saved");
          return;
        } else {
          await new Promise((resolve) => {
            this.wake = resolve;
          });
          continue;
        }
        backoff = BACKOFF_MIN_MS;
        this.setState(this.finishing ? "saving" : "live");
      } catch (err) {
        if (transient(err)) {
          await retry();
        } else if (!this.recover(err)) {
          this.error = err instanceof ApiError ? err : new ApiError(0, { detail: String(err) });
          this.setState("failed");
          return;
        }
      }
    }
  }

  async createPart() {
    const body = { class_id: this.classId, title: this.title, source: "live", request_id: this.requestId };
    if (this.parts.length) {
      // Part 2, 3, ...: it starts where its audio starts, on the hub's clock.
      body.title = `${this.title} (${this.parts.length + 1})`;
      body.started_at = this.parts[0].started_at + this.partStartSample / RATE;
    }
    const rec = await api("POST", "/recordings", { json: body, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    this.parts.push({ id: rec.id, started_at: rec.started_at, closed: false });
    this.keepAlive();
    this.notify();
  }

  async sendHead() {
    const head = this.queue[0];
    const path = `/recordings/${this.recordingId}/live?seq=${head.seq}`;
    // Int16Array bytes are in the platform's order, little-endian on every tablet CPU (ARM, x86).
    await api("POST", path, { body: head.pcm, contentType: "audio/L16", signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    if (this.queue[0] === head) {
      this.queue.shift();
      this.acked(head);
    }
    this.notify();
  }

  /** Handle an answer that is not a plain failure; false if it is one. */
  recover(err) {
    if (!(err instanceof ApiError) || err.status !== 409) return false;
    if (err.slug === "chunk-out-of-order") {
      // The hub already has chunks up to expected_seq - 1 (their answers were lost).
      const expected = Number(err.problem.expected_seq);
      if (!(expected > this.queue[0]?.seq)) return false;
      while (this.queue.length && this.queue[0].seq < expected) this.acked(this.queue.shift());
      return true;
    }
    if (err.slug === "recording-closed" && this.queue.length) {
      // Closed by the hub while we could not reach it: continue in a new part.
      this.parts[this.parts.length - 1].closed = true;
      this.partStartSample = this.queue[0].offset;
      this.requestId = uuid4();
      this.queue.forEach((c, i) => {
        c.seq = i + 1;
      });
      this.nextSeq = this.queue.length + 1;
      return true;
    }
    return false;
  }
}
