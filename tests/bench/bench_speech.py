"""Speech: real-time factor, accuracy on the reference clip, worker memory, the quiz burst
while transcribing, and search over 1,000 hours of transcripts.

    .venv/bin/python tests/bench/bench_speech.py [--minutes 45] [--baseline-minutes 3] [--hours 1000] [--rounds 20]

- RTF: a lesson of ``--minutes`` (the reference clip every 8 s in quiet room noise, so the
  teacher speaks about half the time) written as a WAV, transcribed by the worker's code:
  PyAV decoding + resampling + silence gate + vosk, one job on one core. Reported as wall
  and CPU time per second of audio (CPU RTF is the per-core figure). Baseline, same run:
  vosk alone (the same model, the raw PCM already in memory, fed in 0.5 s chunks, no
  decoding, no gate) over the first ``--baseline-minutes`` of the same lesson, and our
  pipeline over that same excerpt, for the ratio.
- Accuracy on the reference clip: CER against its transcript, and mean absolute error of
  word start times against its reference word times (sub-word pieces matched through a
  character alignment, see tests/speech/quality.py).
- Worker RSS: the real ``classroom-speech`` process with the model loaded and warmed up.
- Quiz burst: bench_quiz's burst (55 students answer at once, ``--rounds`` rounds) against
  the deployed hub, first with the speech worker idle, then while it transcribes a long
  lesson (the worker lowers its own priority: nice 10, SCHED_BATCH, as under its unit).
- Search: ``--hours`` of generated transcript segments (5 s each; Chinese, Korean and
  English words), queries of 3+ characters (trigram index) and of 2 characters (the
  short-term path), p50/p99 through ``edge.speech.search.search``. Baseline, same run and
  data: the same 3+ character queries as a plain LIKE scan (what you get without FTS).
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import _benchlib as b
import numpy as np

sys.path.insert(0, str(b.REPO))

from edge.config import load_config
from edge.speech import search as speech_search
from edge.speech.audio import RATE, decode_pcm
from edge.speech.model import check, resolve
from edge.speech.recognizer import SpeechModel, Transcriber, Word
from edge.speech.text import bigram_form, display_text, search_form
from edge.storage.db import connect, transaction
from edge.storage.setup import prepare_storage
from tests.speech.media import CLIP, REF_TEXT, REF_WORDS, lesson, write_wav
from tests.speech.quality import cer, word_start_errors


def lesson_offsets(minutes: float, every_s: float = 8.0) -> list[float]:
    return [t for t in np.arange(1.0, minutes * 60 - 5, every_s)]


# -- RTF --------------------------------------------------------------------------------------

def pipeline(model: SpeechModel, path: Path, silence_dbfs: float) -> tuple[float, float, float, list[list[Word]]]:
    """(audio_s, wall_s, cpu_s, utterances) for decode + gate + vosk, as the worker runs it."""
    out: list[list[Word]] = []
    t0, c0 = time.monotonic(), time.process_time()
    tr = Transcriber(model, silence_dbfs, out.append)
    for chunk in decode_pcm(path):
        tr.feed(chunk)
    tr.finish()
    tr.close()
    return tr.position_s, time.monotonic() - t0, time.process_time() - c0, out


def vosk_alone(model: SpeechModel, pcm: bytes) -> tuple[float, float, float]:
    import vosk

    rec = vosk.KaldiRecognizer(model.model, RATE)
    rec.SetWords(True)
    t0, c0 = time.monotonic(), time.process_time()
    step = RATE  # 0.5 s
    for i in range(0, len(pcm), step):
        rec.AcceptWaveform(pcm[i:i + step])
    rec.FinalResult()
    return len(pcm) / 2 / RATE, time.monotonic() - t0, time.process_time() - c0


# -- search corpus ------------------------------------------------------------------------------

ZH = ("同学们 今天 我们 学习 分数 的 加法 先 看 例子 分母 相同 分子 相加 这个 问题 请 大家 思考 一下 面积 长方形 正方形 "
      "周长 计算 公式 答案 是 多少 举手 回答 很好 继续 下面 第二 题 注意 单位 小数 乘法 除法 比较 大小 图形 观察 发现 规律 "
      "复习 上节课 内容 练习 作业 课本 页 读 一遍 写 下来 讨论 小组 合作 展示 总结 知识点").split()
KO = "그는 이리저리 피하면서 길 한 옆으로 걸어갔다 오늘 우리는 분수 덧셈 을 배웁니다 선생님 학생 문제".split()
EN = "the area of a rectangle is length times width fraction numerator denominator add".split()


def build_corpus(db_path: Path, hours: float, seed: int = 7) -> int:
    rng = random.Random(seed)
    db = connect(db_path, synchronous="NORMAL")
    seg_s = 5.0
    per_rec = int(45 * 60 / seg_s)
    n_recs = int(hours * 3600 / (45 * 60))
    class_id = db.execute("SELECT id FROM classes LIMIT 1").fetchone()[0]
    total = 0
    for r in range(n_recs):
        with transaction(db):
            cur = db.conn.execute(
                "INSERT INTO speech_recordings (uuid, class_id, title, source, state, media_type, started_at, duration_s, created_at) "
                "VALUES (?, ?, ?, 'upload', 'done', 'audio/wav', ?, 2700, ?)",
                (str(uuid.uuid4()), class_id, f"第{r}课", time.time(), time.time()),
            )
            rid = cur.lastrowid
            rows = []
            for i in range(per_rec):
                vocab = KO if i % 20 == 0 else EN if i % 20 == 1 else ZH
                words = [rng.choice(vocab) for _ in range(rng.randint(6, 12))]
                text = " ".join(words)
                shown = display_text(words)
                form = search_form(shown)
                rows.append((rid, i, i * seg_s, i * seg_s + seg_s - 0.5, shown, form, bigram_form(form), "[]"))
            db.conn.executemany(
                "INSERT INTO speech_segments (recording_id, idx, start_s, end_s, text, search_text, bigrams, words) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows
            )
            total += len(rows)
            del text
    db.conn.execute("INSERT INTO speech_fts (speech_fts) VALUES ('optimize')")
    db.conn.execute("INSERT INTO speech_fts_bigram (speech_fts_bigram) VALUES ('optimize')")
    db.conn.close()
    return total


def time_queries(db_path: Path, queries: list[str], fn) -> list[float]:  # type: ignore[no-untyped-def]
    db = connect(db_path)
    out = []
    for q in queries:
        t0 = time.perf_counter()
        fn(db, q)
        out.append((time.perf_counter() - t0) * 1000)
    db.conn.close()
    return out


def like_scan(db, q: str) -> list:  # type: ignore[no-untyped-def]
    return db.execute(
        "SELECT s.id FROM speech_segments s WHERE s.search_text LIKE ? ORDER BY s.recording_id DESC, s.idx LIMIT 20",
        ("%" + q.replace(" ", "") + "%",),
    ).fetchall()


class _Lines(list):
    """Summary lines, also printed as soon as measured (a later failure loses nothing)."""

    def append(self, line: str) -> None:  # type: ignore[override]
        print(line, flush=True)
        super().append(line)


# -- main -----------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=45)
    ap.add_argument("--baseline-minutes", type=float, default=3)
    ap.add_argument("--hours", type=float, default=1000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--skip", default="", help="comma list of parts to skip: rtf,accuracy,rss,quiz,search")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    print(f"machine: {b.machine()}")
    work = b.tmpdir("bench-speech-")
    cfg = load_config(environ={})
    lines: list[str] = _Lines()

    model = None
    if not {"rtf", "accuracy"} <= skip:
        t0 = time.monotonic()
        model = SpeechModel(check(resolve(cfg.speech)))
        model.warm_up()
        print(f"model loaded and warmed up in {time.monotonic() - t0:.1f} s")

    if "accuracy" not in skip:
        assert model is not None
        _, _, _, utts = pipeline(model, CLIP, cfg.speech.silence_dbfs)
        ws = [{"word": w.word, "start": w.start} for u in utts for w in u]
        hyp = " ".join(w["word"] for w in ws)
        errs = word_start_errors(REF_WORDS, ws)
        lines.append(f"reference clip: CER {cer(REF_TEXT, hyp):.3f} (hyp: {hyp}); word-start MAE {statistics.mean(errs):.3f} s over "
                     f"{len(errs)} of {len(REF_WORDS)} words, max {max(errs):.2f} s (target MAE <= 0.15 s)")

    if "rtf" not in skip:
        assert model is not None
        offsets = lesson_offsets(args.minutes)
        samples = lesson(args.minutes * 60, offsets)
        path = write_wav(work / "lesson.wav", samples)
        base_pcm = samples[: int(args.baseline_minutes * 60 * RATE)].astype("<i2").tobytes()
        excerpt = write_wav(work / "excerpt.wav", samples[: int(args.baseline_minutes * 60 * RATE)])
        a_s, a_wall, a_cpu = vosk_alone(model, base_pcm)
        e_s, e_wall, e_cpu, _ = pipeline(model, excerpt, cfg.speech.silence_dbfs)
        f_s, f_wall, f_cpu, utts = pipeline(model, path, cfg.speech.silence_dbfs)
        found = {min(offsets, key=lambda o: abs(u[0].start - o)) for u in utts}
        lines.append(f"RTF over a {args.minutes:.0f}-minute lesson (clip every 8 s, decoding included): CPU {f_cpu / f_s:.3f} per core, "
                     f"wall {f_wall / f_s:.3f} ({f_s:.0f} s audio in {f_wall:.0f} s; clips found {len(found)}/{len(offsets)}) (target <= 0.25)")
        lines.append(f"  baseline vosk alone (no decoding, no gate) on the first {args.baseline_minutes:.0f} min: "
                     f"CPU RTF {a_cpu / a_s:.3f}, wall {a_wall / a_s:.3f}; our pipeline on the same excerpt: "
                     f"CPU RTF {e_cpu / e_s:.3f}, wall {e_wall / e_s:.3f}; ratio CPU {b.ratio(e_cpu / e_s, a_cpu / a_s)}")

    if "rss" not in skip:
        data = work / "rss"
        config = load_config(environ={}, overrides={"hub": {"data_dir": str(data)}})
        prepare_storage(config)
        proc = subprocess.Popen([str(b.VENV_BIN / "classroom-speech"), "--data-dir", str(data)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 300
            rss = None
            while time.monotonic() < deadline:
                with sqlite3.connect(config.db_path) as c:
                    row = c.execute("SELECT model_state FROM speech_worker_status").fetchone()
                if row and row[0] == "ready":
                    import psutil

                    rss = psutil.Process(proc.pid).memory_info().rss
                    break
                time.sleep(0.5)
            lines.append(f"worker RSS with the model loaded and warmed up: {rss / 1_048_576:.0f} MB (classroom-speech, idle)"
                         if rss else "worker RSS: worker did not get ready")
        finally:
            proc.terminate()
            proc.wait(30)

    if "quiz" not in skip:
        import bench_quiz as bq

        data = work / "quiz"
        room = b.seed_classroom(data)
        port = b.free_port()
        logs = work / "logs"
        logs.mkdir(exist_ok=True)
        srv = b.start_hub_cli(data, port, logs)
        srv.wait_ready()
        teacher, class_id, clients = bq.setup(port, room, 55)
        worker = subprocess.Popen([str(b.VENV_BIN / "classroom-speech"), "--data-dir", str(data)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            config = load_config(environ={}, overrides={"hub": {"data_dir": str(data)}})
            while True:
                with sqlite3.connect(config.db_path) as c:
                    row = c.execute("SELECT model_state FROM speech_worker_status").fetchone()
                if row and row[0] == "ready":
                    break
                time.sleep(0.5)
            session, items = bq.new_session(port, teacher, class_id, args.rounds)
            idle_rows = bq.run_clients(port, clients, "burst", {"kind": "answer", "rounds": args.rounds, "session": session, "items": items})
            # Queue a long lesson and wait until the worker is transcribing it.
            wav = write_wav(work / "quiz-lesson.wav", lesson(20 * 60, lesson_offsets(20, every_s=5.0)))
            body = {"class_id": class_id, "title": "bench", "source": "upload", "request_id": str(uuid.uuid4())}
            st, rec = b.api(port, "POST", "/api/v1/recordings", body, headers=teacher)
            import requests

            url = f"http://{b.HOST}:{port}/api/v1/recordings/{rec['id']}/media"
            r = requests.put(url, data=wav.read_bytes(), headers={**teacher, "Content-Type": "audio/wav"}, timeout=60)
            assert r.status_code == 200, r.text
            while True:
                with sqlite3.connect(config.db_path) as c:
                    n = c.execute("SELECT COUNT(*) FROM speech_segments WHERE recording_id = ?", (rec["id"],)).fetchone()[0]
                if n:
                    break
                time.sleep(0.2)
            session2, items2 = bq.new_session(port, teacher, class_id, args.rounds)
            busy_rows = bq.run_clients(port, clients, "burst", {"kind": "answer", "rounds": args.rounds, "session": session2, "items": items2})
            with sqlite3.connect(config.db_path) as c:
                still = c.execute("SELECT state FROM speech_jobs WHERE recording_id = ?", (rec["id"],)).fetchone()[0]
            idle = bq.lat([x for x in idle_rows if x[1] == 201])
            busy = bq.lat([x for x in busy_rows if x[1] == 201])
            lines.append(f"quiz burst (55 x {args.rounds}) while transcribing (job {still} at the end): p50 {b.pct(busy, 50):.1f} ms, "
                         f"p99 {b.pct(busy, 99):.1f} ms, errors {len(busy_rows) - len(busy)}")
            lines.append(f"  baseline same burst, worker idle: p50 {b.pct(idle, 50):.1f} ms, p99 {b.pct(idle, 99):.1f} ms; "
                         f"ratio p99 {b.ratio(b.pct(busy, 99), b.pct(idle, 99))} (target <= 1.5x)")
        finally:
            worker.terminate()
            worker.wait(30)
            srv.stop()

    if "search" not in skip:
        data = work / "search"
        config = load_config(environ={}, overrides={"hub": {"data_dir": str(data)}})
        prepare_storage(config)
        with connect(config.db_path) as _:
            pass
        db = connect(config.db_path)
        with transaction(db):
            db.conn.execute("INSERT INTO classes (name, created_at) VALUES ('bench', 0)")
        db.conn.close()
        t0 = time.monotonic()
        n = build_corpus(config.db_path, args.hours)
        size = config.db_path.stat().st_size
        lines.append(f"search corpus: {args.hours:.0f} h = {n} segments, database {size / 1_048_576:.0f} MB, built in {time.monotonic() - t0:.0f} s")
        rng = random.Random(3)
        long_q = [q for q in ZH if len(q) >= 3] + ["分数的加法", "옆으로", "걸어갔다", "rectangle", "denominator", "长方形面积", "没有这个词"]
        short_q = [q for q in ZH if len(q) == 2] + ["분수", "길", "不存"]
        ql = [rng.choice(long_q) for _ in range(args.queries)]
        qs = [rng.choice(short_q) for _ in range(args.queries)]

        def ours(db, q):  # type: ignore[no-untyped-def]
            return speech_search.search(db, q, None, limit=20)

        time_queries(config.db_path, ql[:20], ours)  # warm the page cache like a running hub
        t_long = time_queries(config.db_path, ql, ours)
        t_short = time_queries(config.db_path, qs, ours)
        t_base = time_queries(config.db_path, ql[: max(20, args.queries // 10)], like_scan)
        lines.append(f"search over {args.hours:.0f} h, queries of 3+ characters (trigram FTS5, bm25 among the newest 200 matches): "
                     f"p50 {b.pct(t_long, 50):.1f} ms, "
                     f"p99 {b.pct(t_long, 99):.1f} ms (target p99 <= 50 ms)")
        lines.append(f"  1-2 character queries (bigram index): p50 {b.pct(t_short, 50):.1f} ms, p99 {b.pct(t_short, 99):.1f} ms")
        lines.append(f"  baseline same 3+ character queries as a LIKE scan: p50 {b.pct(t_base, 50):.1f} ms, p99 {b.pct(t_base, 99):.1f} ms; "
                     f"ratio p99 {b.ratio(b.pct(t_long, 99), b.pct(t_base, 99))}")
    b.summary(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
