// "Record this lesson" on the lesson-record page: the teacher's microphone (MicCapture)
// streamed to the hub's live ingest (LiveUploader), with a level meter, the elapsed
// time, and the state of the upload. Live captions of the recording arrive on the page's
// event stream like any other caption. Audio a closed page left on this device (the hub
// could not be reached) is offered for sending when the page opens again.

import { api } from "./api.js";
import * as keep from "./audio-keep.js";
import { CaptureError, MicCapture } from "./mic-capture.js";
import { LiveUploader, RATE } from "./live-upload.js";

const LEFTOVER_CHECK_MS = 5000;

/**
 * Wire the recorder card. `s(key, params)` translates, `say(el, key, params)` shows a
 * message that follows language switches, `stamp(seconds)` formats a time,
 * `onSaved()` runs when a recording (or a part of it) is created and when it is complete on the hub.
 */
export async function setupRecorder({ s, say, stamp, onSaved }) {
  const card = document.getElementById("recorder");
  const classSelect = document.getElementById("rec-class");
  const titleInput = document.getElementById("rec-title");
  const startBtn = document.getElementById("rec-start");
  const stopBtn = document.getElementById("rec-stop");
  const meter = document.getElementById("rec-level");
  const time = document.getElementById("rec-time");
  const msg = document.getElementById("rec-msg");
  const leftoverBox = document.getElementById("rec-leftover");
  const leftoverMsg = document.getElementById("rec-leftover-msg");
  meter.setAttribute("aria-label", s("recorder.level"));

  const { classes } = await api("GET", "/classes");
  card.hidden = false;
  if (!classes.length) {
    startBtn.disabled = true;
    say(msg, "recorder.noClass");
    return;
  }
  classSelect.replaceChildren(...classes.map((c) => new Option(c.name, String(c.id))));

  let mic = null;
  let uploader = null;
  let stopping = false;
  let partsShown = 0;
  let left = null; // a lesson a closed page left behind, offered for sending

  const offerLeftover = async () => {
    if (uploader || left) return;
    let found = [];
    try {
      found = await keep.leftovers();
    } catch {
      return; // no IndexedDB here: nothing was kept either
    }
    if (!found.length || uploader || left) return;
    left = found[0];
    const seconds = left.chunks.reduce((n, c) => n + c.pcm.length, 0) / RATE;
    say(leftoverMsg, "recorder.leftover.found", { title: left.meta.title, pending: stamp(seconds) });
    leftoverBox.hidden = false;
  };

  // An upload is over (saved or failed): the list shows a saved one; what else is kept is offered next.
  const uploadEnded = (up) => {
    uploader = null;
    if (up.state === "saved") onSaved();
    offerLeftover();
  };

  const show = (up) => {
    card.dataset.state = up.state;
    if (up.parts.length !== partsShown) {
      partsShown = up.parts.length;
      onSaved(); // the list shows it as "recording"
    }
    time.textContent = stamp(up.capturedS);
    const pending = stamp(up.pendingS);
    if (up.state === "failed") {
      say(msg, "recorder.state.failed", { detail: (up.error && up.error.problem.detail) || up.error?.message || "" });
    } else if (up.state === "saved" && up.parts.length > 1) {
      say(msg, "recorder.parts", { parts: up.parts.length });
    } else {
      say(msg, `recorder.state.${up.state}`, { pending });
    }
    msg.className = up.state === "failed" || up.state === "behind" ? "msg error" : "msg";
    card.dataset.recordingId = up.recordingId ?? "";
    card.dataset.capturedSamples = String(up.captured);
  };

  const stop = async (reasonKey) => {
    if (stopping || !uploader) return;
    stopping = true;
    stopBtn.disabled = true;
    const up = uploader;
    if (mic) await mic.stop();
    mic = null;
    meter.value = 0;
    const finished = up.finish();
    if (reasonKey) say(msg, reasonKey);
    await finished;
    show(up);
    if (reasonKey && up.state !== "failed") say(msg, reasonKey);
    stopping = false;
    stopBtn.hidden = true;
    stopBtn.disabled = false;
    startBtn.hidden = false;
    classSelect.disabled = titleInput.disabled = false;
    uploadEnded(up);
  };

  document.getElementById("rec-leftover-send").addEventListener("click", async () => {
    if (!left || uploader) return;
    const found = left;
    left = null;
    leftoverBox.hidden = true;
    startBtn.disabled = true;
    partsShown = 0;
    const up = new LiveUploader({ left: found, onChange: show });
    uploader = up;
    show(up);
    await up.finish();
    show(up);
    startBtn.disabled = false;
    uploadEnded(up);
  });

  document.getElementById("rec-leftover-drop").addEventListener("click", async () => {
    if (!left) return;
    const found = left;
    left = null;
    leftoverBox.hidden = true;
    await keep.forget(found.meta.lesson).catch(() => {});
    offerLeftover();
  });

  startBtn.addEventListener("click", async () => {
    if (uploader) return;
    startBtn.disabled = true;
    // What a closed page left stays kept; it is offered again when this recording stops.
    left = null;
    leftoverBox.hidden = true;
    msg.className = "msg";
    say(msg, "recorder.state.connecting", {});
    const when = new Date();
    const date = `${when.getFullYear()}-${String(when.getMonth() + 1).padStart(2, "0")}-${String(when.getDate()).padStart(2, "0")} ${String(when.getHours()).padStart(2, "0")}:${String(when.getMinutes()).padStart(2, "0")}`;
    const title = titleInput.value.trim() || s("recorder.defaultTitle", { date });
    let up = null;
    const capture = new MicCapture({
      onPcm: (pcm) => {
        // push refuses when the hub refused the recording (the card shows why) or the buffer is full.
        if (up && !up.push(pcm)) stop(up.state === "failed" ? null : "recorder.full");
      },
      onLevel: (peak) => {
        // -60 dBFS .. 0 dBFS onto the meter
        meter.value = peak > 0 ? Math.max(0, Math.min(1, (20 * Math.log10(peak) + 60) / 60)) : 0;
      },
      onEnded: () => stop("recorder.micEnded"),
    });
    try {
      // The microphone first: a refused permission must not leave an empty recording behind.
      await capture.start();
    } catch (err) {
      const key = err instanceof CaptureError ? { insecure: "recorder.insecure", denied: "recorder.denied", "no-mic": "recorder.noMic" }[err.reason] : null;
      msg.className = "msg error";
      say(msg, key || "recorder.failedStart");
      startBtn.disabled = false;
      return;
    }
    partsShown = 0;
    up = new LiveUploader({ classId: Number(classSelect.value), title, onChange: show });
    mic = capture;
    uploader = up;
    card.dataset.inputRate = String(capture.inputRate);
    startBtn.hidden = true;
    startBtn.disabled = false;
    stopBtn.hidden = false;
    classSelect.disabled = titleInput.disabled = true;
    show(up);
  });

  stopBtn.addEventListener("click", () => stop(null));

  // Closing the page stops the recording; audio not yet on the hub stays on this device
  // (but for the last second's partial chunk) and is offered again on the next visit.
  window.addEventListener("beforeunload", (ev) => {
    if (uploader && (mic || uploader.pendingS > 0)) ev.preventDefault();
  });

  // Elapsed time keeps moving even when no upload state changes.
  setInterval(() => {
    if (uploader) show(uploader);
  }, 500);

  offerLeftover();
  setInterval(offerLeftover, LEFTOVER_CHECK_MS);
}
