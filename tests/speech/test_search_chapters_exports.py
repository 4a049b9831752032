"""Search over Chinese, Korean and English transcripts; chapters from page changes;
knowledge-point tags; WebVTT, SRT and the HTML lesson record."""

from __future__ import annotations

import json
import re
import time

import pytest

from edge.speech import transcript
from edge.speech.recognizer import Word
from edge.storage.db import connect, transaction
from tests.hub.support import HubEnv, assert_problem, bearer

from .conftest import class_a, create_recording, teacher

LESSON = [
    # (start, text as a recogniser would emit it, word by word)
    (1.0, "同学们 今天 我们 学习 分数 的 加法"),
    (8.0, "先 看 第一 个 例子 二分之一 加 四分之一"),
    (65.0, "그는 이리저리 피하면서 길 한 옆으로 걸어갔다"),
    (130.0, "the area of a rectangle is length times width"),
    (200.0, "分母 相同 的 分数 相加 分母 不 变"),
    (260.0, "<script>alert(1)</script> & 符号 --> 不是 字幕 时间"),
]


def _words(start: float, text: str) -> list[Word]:
    out, t = [], start
    for w in text.split():
        out.append(Word(w, round(t, 3), round(t + 0.4, 3), 0.9))
        t += 0.5
    return out


@pytest.fixture
def lesson(hub: HubEnv) -> dict:
    kps = [{"id": "kp-frac-add", "name": "同分母分数加法", "keywords": ["分母", "加法"]}, {"id": "kp-area", "name": "长方形面积", "keywords": ["area"]}]
    # A week ago, so the demo classroom's own page changes (seeded "now") are not in it.
    started = time.time() - 7 * 86400
    rec = create_recording(hub, title="分数的加法", knowledge_points=kps, started_at=started)
    db = connect(hub.config.db_path)
    try:
        cid = class_a(hub)
        # The page push during the lesson: one page showing before it started, two changes during it,
        # a repeat of the same page (no new chapter), and one from the lessons capability's live event.
        with transaction(db):
            transcript.record_page_change(db, cid, "p1", "导入", at=started - 60)
            transcript.record_page_change(db, cid, "p2", "例题", at=started + 60)
            transcript.record_page_change(db, cid, "p2", "例题", at=started + 90)
            transcript.record_page_change(db, cid, "p9", "别的课", at=started + 99999)
            db.conn.execute(
                "INSERT INTO live_events (channel, type, data, created_at) VALUES (?, 'lesson.page', ?, ?)",
                (f"class:{cid}", json.dumps({"lesson_id": "L1", "lesson": 1, "page": 3, "at": started + 190}), started + 190),
            )
            db.conn.execute("UPDATE speech_recordings SET state = 'transcribing' WHERE id = ?", (rec["id"],))
        for start, text in LESSON:
            transcript.add_segments(db, rec["id"], transcript.split_utterance(_words(start, text)))
        transcript.finalize(db, rec["id"], duration_s=300.0, rtf=0.1)
    finally:
        db.conn.close()
    return rec


def _search(hub: HubEnv, q: str, who: str = "teacher", **params: object) -> list[dict]:
    resp = hub.client().get("/api/v1/speech/search", query_string={"q": q, **params}, headers=bearer(hub.staff_token(who)))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()["hits"]


@pytest.mark.parametrize(
    "query, start",
    [
        ("分数的加法", 1.0),          # Chinese, 3+ characters, across the recogniser's word spaces
        ("二分之一", 8.0),
        ("분수", None),               # not said: no hit
        ("피하면서", 65.0),           # Korean inside a sub-word split ("피 하면서")
        ("옆으로 걸어", 65.0),        # two terms, both must occur
        ("RECTANGLE", 130.0),         # English, case-insensitive
        ("相加", 200.0),              # two-character Chinese word (below the trigram length)
        ("길", 65.0),                 # one Hangul syllable
        ("다", 65.0),                 # one syllable at the end of a word (걸어갔다)
        ("分母 不", 200.0),           # a two-character and a one-character term together
        ("长方形", None),
    ],
)
def test_search_finds_the_moment_in_chinese_korean_and_english(hub: HubEnv, lesson: dict, query: str, start: float | None) -> None:
    hits = _search(hub, query)
    if start is None:
        assert hits == []
        return
    assert hits, query
    top = hits[0]
    assert top["recording_id"] == lesson["id"] and top["recording_title"] == "分数的加法"
    assert abs(top["start_s"] - start) < 0.01
    assert top["media_url"].endswith(f"/recordings/{lesson['id']}/media#t={start:.2f}")
    assert any(part["hit"] for part in top["snippet"])


def test_ranked_hits_carry_chapter_and_knowledge_points(hub: HubEnv, lesson: dict) -> None:
    hits = _search(hub, "分母")
    assert [h["start_s"] for h in hits] == [200.0]
    assert hits[0]["chapter"] == "第 3 页"
    assert hits[0]["knowledge_points"] == ["kp-frac-add"]
    first = _search(hub, "同学们")[0]
    assert first["chapter"] == "导入" and first["knowledge_points"] == ["kp-frac-add"]  # 加法
    assert _search(hub, "length")[0]["knowledge_points"] == ["kp-area"]


def test_chapters_follow_the_page_changes(hub: HubEnv, lesson: dict) -> None:
    rec = hub.client().get(f"/api/v1/recordings/{lesson['id']}", headers=teacher(hub)).get_json()
    chapters = [(round(c["start"], 2), c["title"]) for c in rec["chapters"]]
    assert chapters == [(0.0, "导入"), (60.0, "例题"), (190.0, "第 3 页")]
    assert [s["chapter"] for s in rec["segments"]] == [0, 0, 1, 1, 2, 2]


def test_search_is_limited_to_your_classes(hub: HubEnv, lesson: dict) -> None:
    assert _search(hub, "二分之一", who="other_teacher") == []
    assert _search(hub, "二分之一", who="admin")
    resp = hub.client().get("/api/v1/speech/search", query_string={"q": "二分之一", "class_id": class_a(hub)}, headers=bearer(hub.staff_token("other_teacher")))
    assert_problem(resp, 404)
    assert hub.client().get(f"/api/v1/recordings/{lesson['id']}", headers=bearer(hub.staff_token("other_teacher"))).status_code == 404


@pytest.mark.parametrize("query", ['"', "AND", "分数 OR", "*", "NEAR(a b)", "%", "_", "a\\b", "'; DROP TABLE speech_segments; --", "^分"])
def test_search_syntax_in_queries_is_plain_text(hub: HubEnv, lesson: dict, query: str) -> None:
    resp = hub.client().get("/api/v1/speech/search", query_string={"q": query}, headers=teacher(hub))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    for hit in resp.get_json()["hits"]:
        joined = "".join(p["text"] for p in hit["snippet"]).lower()
        assert all(t in joined.replace(" ", "") for t in query.lower().split()), (query, joined)
    assert hub.count("speech_segments") == len(LESSON)


@pytest.mark.parametrize("query", ["", "   ", "字" * 201, " ".join("ab" for _ in range(9))])
def test_bad_queries_get_a_clear_error(hub: HubEnv, query: str) -> None:
    resp = hub.client().get("/api/v1/speech/search", query_string={"q": query}, headers=teacher(hub))
    assert_problem(resp, 422)


def test_webvtt_and_srt_are_well_formed(hub: HubEnv, lesson: dict) -> None:
    vtt = hub.client().get(f"/api/v1/recordings/{lesson['id']}/transcript.vtt", headers=teacher(hub))
    assert vtt.status_code == 200 and vtt.mimetype == "text/vtt"
    text = vtt.get_data(as_text=True)
    assert text.startswith("WEBVTT\n\n")
    cues = re.findall(r"^(\d\d:\d\d:\d\d\.\d\d\d) --> (\d\d:\d\d:\d\d\.\d\d\d)$", text, re.M)
    assert len(cues) == len(LESSON) and cues[2][0] == "00:01:05.000"
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert text.count("-->") == len(LESSON)  # a "-->" in speech cannot fake a timing line
    assert "NOTE 例题" in text
    srt = hub.client().get(f"/api/v1/recordings/{lesson['id']}/transcript.srt", headers=teacher(hub)).get_data(as_text=True)
    blocks = srt.strip().split("\n\n")
    assert len(blocks) == len(LESSON)
    for i, block in enumerate(blocks, start=1):
        lines = block.split("\n")
        assert lines[0] == str(i)
        assert re.fullmatch(r"\d\d:\d\d:\d\d,\d\d\d --> \d\d:\d\d:\d\d,\d\d\d", lines[1])
    assert "00:02:10,000 --> " in srt


def test_html_lesson_record_has_chapters_and_escapes_speech(hub: HubEnv, lesson: dict) -> None:
    resp = hub.client().get(f"/api/v1/recordings/{lesson['id']}/transcript.html", headers=teacher(hub))
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    page = resp.get_data(as_text=True)
    assert "<h1>课堂实录 · 分数的加法</h1>" in page
    assert page.index('id="ch0">导入') < page.index('id="ch1">例题') < page.index('id="ch2">第 3 页')
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "00:01:05" in page and "[kp-frac-add]" in page
    assert_problem(hub.client().get(f"/api/v1/recordings/{lesson['id']}/transcript.docx", headers=teacher(hub)), 404)
