"""Transcript exports: WebVTT and SRT captions, and the readable lesson record (课堂实录) in HTML."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass

from edge.storage.db import Database


@dataclass
class Transcript:
    title: str
    class_name: str
    started_at: float
    duration_s: float | None
    chapters: list[tuple[int, float, str]]            # (idx, start_s, title)
    segments: list[tuple[float, float, str, int | None, list[str]]]  # (start, end, text, chapter idx, knowledge points)


def load(db: Database, recording_id: int) -> Transcript | None:
    rec = db.execute(
        "SELECT r.title, c.name, r.started_at, r.duration_s FROM speech_recordings r JOIN classes c ON c.id = r.class_id WHERE r.id = ?",
        (recording_id,),
    ).fetchone()
    if rec is None:
        return None
    chapters = [(int(i), float(s), str(t)) for i, s, t in db.execute(
        "SELECT idx, start_s, title FROM speech_chapters WHERE recording_id = ? ORDER BY idx", (recording_id,)
    ).fetchall()]
    segments = [(float(s), float(e), str(t), c, json.loads(k or "[]")) for s, e, t, c, k in db.execute(
        "SELECT start_s, end_s, text, chapter_idx, knowledge_points FROM speech_segments WHERE recording_id = ? ORDER BY idx", (recording_id,)
    ).fetchall()]
    return Transcript(rec[0], rec[1], rec[2], rec[3], chapters, segments)


def _clock(seconds: float, sep: str) -> str:
    ms = int(round(max(0.0, seconds) * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _cue_text(text: str) -> str:
    # A blank line would end the cue and "-->" would be read as timing.
    return " ".join(text.split()).replace("-->", "->")


def to_webvtt(t: Transcript) -> str:
    lines = ["WEBVTT", ""]
    titles = {idx: title for idx, _, title in t.chapters}
    current = None
    for i, (start, end, text, chapter, _kp) in enumerate(t.segments, start=1):
        if chapter is not None and chapter != current:
            current = chapter
            lines += [f"NOTE {_cue_text(titles.get(chapter, ''))}", ""]
        # WebVTT cue payloads are HTML-like: escape &, < and >.
        lines += [str(i), f"{_clock(start, '.')} --> {_clock(max(end, start + 0.001), '.')}", html.escape(_cue_text(text), quote=False), ""]
    return "\n".join(lines)


def to_srt(t: Transcript) -> str:
    lines: list[str] = []
    for i, (start, end, text, _c, _kp) in enumerate(t.segments, start=1):
        lines += [str(i), f"{_clock(start, ',')} --> {_clock(max(end, start + 0.001), ',')}", _cue_text(text), ""]
    return "\n".join(lines)


def to_html(t: Transcript, media_url: str | None = None) -> str:
    """A standalone, printable lesson record: chapters, then timed paragraphs."""
    esc = html.escape
    import datetime as dt

    when = dt.datetime.fromtimestamp(t.started_at).strftime("%Y-%m-%d %H:%M")
    out = [
        "<!DOCTYPE html>",
        '<html lang="zh-CN"><head><meta charset="utf-8">',
        f"<title>课堂实录 · {esc(t.title)}</title></head><body>",
        f"<h1>课堂实录 · {esc(t.title)}</h1>",
        f"<p>{esc(t.class_name)} · {esc(when)}" + (f" · {_clock(t.duration_s, '.')[:8]}" if t.duration_s else "") + "</p>",
    ]
    if t.chapters:
        out.append("<nav><h2>目录</h2><ol>")
        out += [f'<li><a href="#ch{idx}">{esc(title)}</a> <time>{_clock(start, ".")[:8]}</time></li>' for idx, start, title in t.chapters]
        out.append("</ol></nav>")
    current: int | None = -1
    for start, _end, text, chapter, kps in t.segments:
        if chapter != current:
            current = chapter
            title = next((ti for i, _s, ti in t.chapters if i == chapter), None)
            if title is not None:
                out.append(f'<h2 id="ch{chapter}">{esc(title)}</h2>')
        stamp = _clock(start, ".")[:8]
        tags = f' <small>[{esc(", ".join(kps))}]</small>' if kps else ""
        out.append(f'<p><time datetime="PT{start:.1f}S">{stamp}</time> {esc(text)}{tags}</p>')
    out.append("</body></html>")
    return "\n".join(out)
