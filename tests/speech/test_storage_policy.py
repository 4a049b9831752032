"""Recordings on disk: the disk reserve refuses new audio early; retention deletes old
audio and keeps the transcript."""

from __future__ import annotations

import uuid
from pathlib import Path

from edge.speech import store
from edge.storage.db import connect, transaction
from tests.hub.support import HubEnv, assert_problem, build_hub

from .conftest import class_a, create_recording, recording, teacher, upload
from .media import CLIP


def test_the_disk_reserve_refuses_new_recordings_and_live_audio(template, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    hub = build_hub(template, tmp_path / "hub")
    live = create_recording(hub, source="live")
    # Now the reserve is larger than the disk: nothing new may be written.
    full = build_hub(template, tmp_path / "full", storage={"disk_reserve_mb": 10**9})
    body = {"class_id": class_a(full), "title": "满了", "source": "upload", "request_id": str(uuid.uuid4())}
    resp = full.client().post("/api/v1/recordings", json=body, headers=teacher(full))
    problem = assert_problem(resp, 503, "disk-full")
    assert "reserve" in problem["detail"]
    assert full.count("speech_recordings", "title = '满了'") == 0
    full.config.storage.disk_reserve_mb = 0
    rec = create_recording(full)
    full.config.storage.disk_reserve_mb = 10**9
    resp = full.client().put(f"/api/v1/recordings/{rec['id']}/media", data=CLIP.read_bytes(), content_type="audio/wav", headers=teacher(full))
    assert_problem(resp, 503, "disk-full")
    assert not list((full.config.hub.data_dir / "speech").rglob("*.part"))
    hub.config.storage.disk_reserve_mb = 10**9
    resp = hub.client().post(f"/api/v1/recordings/{live['id']}/live?seq=1", data=b"\0\0" * 1600, content_type="audio/L16", headers=teacher(hub))
    assert_problem(resp, 503, "disk-full")
    assert hub.sql("SELECT live_seq FROM speech_recordings WHERE id = ?", (live["id"],))[0][0] == 0


def test_retention_deletes_old_audio_and_keeps_the_transcript(hub: HubEnv) -> None:
    rec_id, resp = upload(hub, CLIP, "audio/wav")
    assert resp.status_code == 200
    db = connect(hub.config.db_path)
    try:
        with transaction(db):
            db.conn.execute("UPDATE speech_recordings SET state = 'done', created_at = created_at - 200 * 86400 WHERE id = ?", (rec_id,))
            db.conn.execute(
                "INSERT INTO speech_segments (recording_id, idx, start_s, end_s, text, search_text, words) VALUES (?, 0, 0.6, 3.2, '그는', '그는', '[]')",
                (rec_id,),
            )
        fresh_id, _ = upload(hub, CLIP, "audio/wav")
        assert store.purge_expired(hub.config, db) == 1
    finally:
        db.conn.close()
    old = recording(hub, rec_id)
    assert not old["audio_available"] and old["segments"][0]["text"] == "그는"
    assert not (hub.config.hub.data_dir / "speech" / old["uuid"]).exists()
    assert_problem(hub.client().get(f"/api/v1/recordings/{rec_id}/media", headers=teacher(hub)), 404, "no-audio")
    assert hub.client().get(f"/api/v1/recordings/{fresh_id}/media", headers=teacher(hub)).status_code == 200
