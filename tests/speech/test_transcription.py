"""Real vosk on the real reference clip: words, times, confidences, the district event,
and timestamps that stay true across a 45-minute lesson."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from edge.speech.recognizer import SpeechModel
from tests.hub.support import HubEnv

from .conftest import recording, run_worker, upload, words
from .media import CLIP, REF_TEXT, REF_WORDS, lesson, write_wav
from .quality import cer, word_start_errors


def test_reference_clip_is_transcribed_with_word_times_and_confidences(hub: HubEnv, speech_model: SpeechModel) -> None:
    rec_id, resp = upload(hub, CLIP, "audio/wav")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["state"] == "queued"
    run_worker(hub, speech_model)
    rec = recording(hub, rec_id)
    assert rec["state"] == "done" and rec["job"]["state"] == "done"
    assert abs(rec["duration_s"] - 3.888) < 0.01
    assert rec["job"]["rtf"] > 0
    ws = words(rec)
    assert all(0 <= w["conf"] <= 1 and w["start"] <= w["end"] for w in ws)
    text = " ".join(seg["text"] for seg in rec["segments"])
    assert cer(REF_TEXT, text) <= 0.4, text
    errors = word_start_errors(REF_WORDS, ws)
    assert len(errors) == len(REF_WORDS)
    assert statistics.mean(errors) <= 0.15, errors
    # The transcript (text and times, no audio) went to the district in the same commit.
    rows = hub.sql("SELECT payload FROM outbox WHERE type = 'speech.transcript'")
    assert len(rows) == 1
    payload = json.loads(rows[0][0])
    assert payload["recording"] == rec["uuid"] and payload["segments"][0]["words"]
    assert "audio" not in payload


def test_words_at_minute_44_point_at_minute_44(hub: HubEnv, speech_model: SpeechModel, tmp_path: Path) -> None:
    # A 45-minute lesson of quiet room noise with the clip at known offsets,
    # the last one at 44:00 and some at odd sub-second offsets.
    offsets = [7.3, 301.05, 905.5, 1500.0, 1804.77, 2401.2, 2640.0, 2695.31]
    path = write_wav(tmp_path / "lesson.wav", lesson(45 * 60, offsets))
    rec_id, resp = upload(hub, path, "audio/wav")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    run_worker(hub, speech_model)
    rec = recording(hub, rec_id)
    assert rec["state"] == "done"
    assert abs(rec["duration_s"] - 2700) < 0.1
    found = {}
    for seg in rec["segments"]:
        first = seg["words"][0]
        nearest = min(offsets, key=lambda off: abs(first["start"] - off))
        found.setdefault(nearest, []).append(seg["words"])
    assert sorted(found) == offsets, f"clips found at {sorted(found)}"
    for off, groups in found.items():
        ws = [w for g in groups for w in g]
        errors = word_start_errors(REF_WORDS, ws, offset=off)
        assert errors and max(errors) <= 0.5, (off, errors)
