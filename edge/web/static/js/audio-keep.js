// Audio of a lesson being recorded that the hub has not acknowledged yet, kept in
// IndexedDB beside the upload queue (live-upload.js): if the page is closed or the
// tablet restarts while the Wi-Fi is down, the recorder page finds it on the next
// visit and sends it as the next part of that recording. A chunk is written here when
// it is cut and deleted when the hub acknowledges it; a lesson's record (class, title,
// the parts the hub created) is deleted once the hub has the whole recording.

import { opener, transact } from "./idb.js";

const LESSONS = "lessons";
const CHUNKS = "chunks";
const open = opener("hub-recorder", (db) => {
  db.createObjectStore(LESSONS, { keyPath: "lesson" });
  db.createObjectStore(CHUNKS, { keyPath: ["lesson", "offset"] });
});
const tx = (stores, mode, fn) => transact(open, stores, mode, fn);

const ofLesson = (lesson) => IDBKeyRange.bound([lesson, 0], [lesson, Infinity]);

/** Record (or update) what is needed to resume a lesson: {lesson, classId, title, parts}. */
export function saveLesson(meta) {
  return tx([LESSONS], "readwrite", (t) => t.objectStore(LESSONS).put(meta));
}

/** Keep one chunk: `offset` is its first sample's number since the lesson's first. */
export function putChunk(lesson, offset, pcm) {
  return tx([CHUNKS], "readwrite", (t) => t.objectStore(CHUNKS).put({ lesson, offset, pcm: pcm.buffer.slice(0) }));
}

export function dropChunk(lesson, offset) {
  return tx([CHUNKS], "readwrite", (t) => t.objectStore(CHUNKS).delete([lesson, offset]));
}

/** The hub has the whole lesson (or the teacher discarded it): forget it. */
export function forget(lesson) {
  return tx([LESSONS, CHUNKS], "readwrite", (t) => {
    t.objectStore(LESSONS).delete(lesson);
    t.objectStore(CHUNKS).delete(ofLesson(lesson));
  });
}

// A recorder page that is open says so every ALIVE_MS (meta.aliveAt), so another tab of the
// same browser does not take its lesson for one left behind.
export const ALIVE_MS = 2000;
const STALE_MS = 3 * ALIVE_MS;

/** Lessons left behind by a closed page, with audio the hub never acknowledged: [{meta, chunks: [{offset, pcm: Int16Array}]}]. */
export async function leftovers() {
  const lessons = (await tx([LESSONS], "readonly", (t) => t.objectStore(LESSONS).getAll())) || [];
  const out = [];
  for (const meta of lessons) {
    if (Date.now() - (meta.aliveAt || 0) < STALE_MS) continue;
    const rows = (await tx([CHUNKS], "readonly", (t) => t.objectStore(CHUNKS).getAll(ofLesson(meta.lesson)))) || [];
    if (rows.length) {
      out.push({ meta, chunks: rows.map((r) => ({ offset: r.offset, pcm: new Int16Array(r.pcm) })) });
    } else {
      await forget(meta.lesson); // nothing left to send
    }
  }
  return out;
}
