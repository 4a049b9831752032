"""HTTP API of micro-lesson recording: recordings, upload and live audio, transcripts,
exports, search, worker status, and the recordings page of the web UI.

Staff only (the class's teachers and admins): a recording is the teacher's voice
and the lesson's content, and the hub keeps students' access to their own data.
"""

from __future__ import annotations

import uuid as uuidlib
from pathlib import Path
from typing import Any, Literal

from apiflask import APIBlueprint
from flask import Response, request, send_file
from pydantic import Field, field_validator

from edge.auth.guard import STAFF, current_principal, session_auth
from edge.context import current_hub, db
from edge.errors import problem
from edge.schemas import Out, StrictIn
from edge.speech import exports, live, search, service, store
from edge.speech.install import installed_pointer
from edge.speech.model import ModelProblem, check, resolve

bp = APIBlueprint("speech", __name__, tag="Speech")
API = "/api/v1"

_PAGE = Path(__file__).resolve().parent / "page.html"


def _raise(err: service.SpeechError | live.LiveError) -> None:
    extra = getattr(err, "extra", {}) or {}
    problem(err.status, err.slug, str(err), **extra)


def _own_class(class_id: int) -> None:
    if class_id not in current_principal().class_ids:
        problem(404, "no-such-class", f"no class with id {class_id} among yours")


def _recording(recording_id: int) -> dict[str, Any]:
    rec = service.get(db(), recording_id)
    if rec is None or rec["class_id"] not in current_principal().class_ids:
        problem(404, "no-such-recording", "no such recording in your classes")
    return rec


def _enabled() -> None:
    if not current_hub().config.speech.enabled:
        problem(503, "speech-disabled", "speech recording is turned off on this hub (speech.enabled)")


# -- schemas ------------------------------------------------------------------------------


class KnowledgePoint(StrictIn):
    id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=100)
    keywords: list[str] = Field(default_factory=list, max_length=20)

    @field_validator("keywords")
    @classmethod
    def _short(cls, v: list[str]) -> list[str]:
        if any(not 1 <= len(k.strip()) <= 50 for k in v):
            raise ValueError("each keyword has 1-50 characters")
        return [k.strip() for k in v]


class RecordingIn(StrictIn):
    class_id: int = Field(ge=1)
    title: str = Field(min_length=1, max_length=100)
    source: Literal["upload", "live"]
    request_id: str = Field(min_length=1, max_length=64, description="Client-generated UUID: a retried create returns the same recording.")
    knowledge_points: list[KnowledgePoint] = Field(default_factory=list, max_length=50)
    started_at: float | None = Field(None, ge=0, description="Wall clock (Unix seconds) of the recording's first sample; default now.")

    @field_validator("request_id")
    @classmethod
    def _uuid(cls, v: str) -> str:
        try:
            return str(uuidlib.UUID(v))
        except ValueError:
            raise ValueError("request_id must be a UUID") from None


class JobOut(Out):
    state: str
    attempts: int
    rtf: float | None = None
    error: str | None = None


class RecordingOut(Out):
    id: int
    uuid: str
    class_id: int
    title: str
    source: str
    state: str = Field(description="receiving | queued | transcribing | done | failed")
    media_type: str
    media_bytes: int
    started_at: float
    duration_s: float | None = None
    error: str | None = None
    knowledge_points: list[dict[str, Any]]
    audio_available: bool
    created_at: float


class RecordingsOut(Out):
    recordings: list[RecordingOut]


class WordOut(Out):
    word: str
    start: float
    end: float
    conf: float


class SegmentOut(Out):
    idx: int
    start: float
    end: float
    text: str
    chapter: int | None = None
    knowledge_points: list[str]
    words: list[WordOut]


class ChapterOut(Out):
    idx: int
    start: float
    page: str
    title: str


class RecordingDetailOut(RecordingOut):
    chapters: list[ChapterOut]
    segments: list[SegmentOut]
    job: JobOut | None = None


class ListQuery(StrictIn):
    model_config = StrictIn.model_config | {"strict": False}
    class_id: int | None = Field(None, ge=1)


class LiveQuery(StrictIn):
    model_config = StrictIn.model_config | {"strict": False}
    seq: int = Field(ge=1, le=10_000_000, description="Chunk number, 1, 2, 3, ... (a repeated number is acknowledged, not appended)")


class LiveOut(Out):
    appended: bool
    received_s: float


class SearchQuery(StrictIn):
    model_config = StrictIn.model_config | {"strict": False}
    q: str = Field(min_length=1, max_length=200)
    class_id: int | None = Field(None, ge=1)
    limit: int = Field(20, ge=1, le=100)


class SnippetPart(Out):
    text: str
    hit: bool


class HitOut(Out):
    recording_id: int
    recording_title: str
    class_id: int
    segment_id: int
    start_s: float
    end_s: float
    chapter: str | None = None
    knowledge_points: list[str]
    snippet: list[SnippetPart]
    media_url: str


class SearchOut(Out):
    hits: list[HitOut]


class StatusOut(Out):
    enabled: bool
    model: str
    model_state: str = Field(description="ready | loading | missing | corrupt | unknown (no worker has reported)")
    detail: str
    queued_jobs: int
    workers: list[dict[str, Any]]


# -- recordings ------------------------------------------------------------------------------


@bp.post(API + "/recordings")
@bp.auth_required(session_auth, roles=STAFF)
@bp.input(RecordingIn, arg_name="body")
@bp.output(RecordingOut, status_code=201)
@bp.doc(summary="Start a recording: 'upload' (then PUT its file to /media) or 'live' (then POST PCM chunks to /live)",
        responses={404: "Not one of your classes", 503: "Disk reserve reached, or speech disabled (speech.enabled)"})
def create_recording(body: RecordingIn) -> tuple[dict[str, Any], int]:
    _enabled()
    _own_class(body.class_id)
    hub = current_hub()
    try:
        rec, _created = service.create(
            hub.config, db(), class_id=body.class_id, user_id=current_principal().user_id, title=body.title, source=body.source,
            request_id=body.request_id, knowledge_points=[k.model_dump() for k in body.knowledge_points], started_at=body.started_at,
        )
    except service.SpeechError as err:
        _raise(err)
    if rec["class_id"] != body.class_id:
        problem(409, "request-id-reused", "this request_id was used for another recording")
    # A retried create (same request_id) gets the same answer as the first one.
    return rec, 201


@bp.get(API + "/recordings")
@bp.auth_required(session_auth, roles=STAFF)
@bp.input(ListQuery, location="query", arg_name="query")
@bp.output(RecordingsOut)
@bp.doc(summary="Recordings of your classes (or of one class), newest first", responses=[404])
def list_recordings(query: ListQuery) -> dict[str, Any]:
    ids = current_principal().class_ids
    if query.class_id is not None:
        _own_class(query.class_id)
        ids = [query.class_id]
    return {"recordings": service.list_for(db(), ids)}


@bp.get(API + "/recordings/<int:recording_id>")
@bp.auth_required(session_auth, roles=STAFF)
@bp.output(RecordingDetailOut)
@bp.doc(summary="A recording with its chapters and timed transcript (words with confidences)", responses=[404])
def get_recording(recording_id: int) -> dict[str, Any]:
    _recording(recording_id)
    return service.detail(db(), recording_id) or {}


@bp.put(API + "/recordings/<int:recording_id>/media")
@bp.auth_required(session_auth, roles=STAFF)
@bp.output(RecordingOut)
@bp.doc(
    summary="Upload the recording's file (raw body: wav, mp3, m4a/aac, ogg/opus, webm, mp4); it is queued for transcription",
    responses={404: "No such recording", 409: "Already uploaded or a live recording", 413: "Larger than speech.max_upload_bytes",
               422: "Not readable audio (empty, truncated before any audio, no audio track)", 503: "Disk reserve reached, or speech disabled (speech.enabled)"},
)
def upload_recording(recording_id: int) -> dict[str, Any]:
    _enabled()
    _recording(recording_id)
    hub = current_hub()
    request.max_content_length = hub.config.speech.max_upload_bytes
    try:
        return service.store_upload(hub.config, db(), recording_id, request.stream, request.content_length)
    except service.SpeechError as err:
        _raise(err)


@bp.post(API + "/recordings/<int:recording_id>/live")
@bp.auth_required(session_auth, roles=STAFF)
@bp.input(LiveQuery, location="query", arg_name="query")
@bp.output(LiveOut)
@bp.doc(
    summary="Append one chunk of live audio: raw 16 kHz mono signed 16-bit little-endian PCM (Content-Type audio/L16 or "
    "application/octet-stream), at most 10 s per chunk, numbered by ?seq=",
    responses={404: "No such live recording", 409: "Finished, or a chunk is missing (expected_seq says which)", 413: "Chunk too large or recording too long",
               422: "Odd number of bytes", 503: "Disk reserve reached, or speech disabled (speech.enabled)"},
)
def live_audio(recording_id: int, query: LiveQuery) -> dict[str, Any]:
    _enabled()
    _recording(recording_id)
    hub = current_hub()
    request.max_content_length = live.MAX_CHUNK_BYTES
    pcm = request.get_data(cache=False)
    try:
        appended, received = live.append(hub.config, db(), recording_id, query.seq, pcm)
    except live.LiveError as err:
        _raise(err)
    return {"appended": appended, "received_s": round(received, 3)}


@bp.post(API + "/recordings/<int:recording_id>/finish")
@bp.auth_required(session_auth, roles=STAFF)
@bp.output(RecordingOut)
@bp.doc(summary="End a live recording; the transcript is completed from what arrived", responses=[404])
def finish_recording(recording_id: int) -> dict[str, Any]:
    _recording(recording_id)
    try:
        return service.finish_live(current_hub().config, db(), recording_id)
    except service.SpeechError as err:
        _raise(err)


@bp.get(API + "/recordings/<int:recording_id>/media")
@bp.auth_required(session_auth, roles=STAFF)
@bp.doc(summary="The recording's audio (or video) for the player; honours Range requests so it can seek",
        responses={200: "The media file", 206: "Part of it (Range)", 404: "No such recording or its audio was deleted (retention)"})
def recording_media(recording_id: int) -> Response:
    rec = _recording(recording_id)
    row = db().execute("SELECT uuid, media_file FROM speech_recordings WHERE id = ?", (recording_id,)).fetchone()
    if not row[1] or not rec["audio_available"]:
        problem(404, "no-audio", "this recording has no audio (not uploaded yet, or deleted by the retention policy)")
    path = store.media_path(current_hub().config, row[0], row[1])
    if not path.is_file():
        problem(404, "no-audio", "this recording's audio file is missing")
    resp = send_file(path, mimetype=rec["media_type"] or "application/octet-stream", conditional=True, max_age=0)
    resp.headers["Cache-Control"] = "private, no-cache"
    return resp


_EXPORTS = {
    "vtt": ("text/vtt", exports.to_webvtt),
    "srt": ("application/x-subrip", exports.to_srt),
    "html": ("text/html", exports.to_html),
}


@bp.get(API + "/recordings/<int:recording_id>/transcript.<string:fmt>")
@bp.auth_required(session_auth, roles=STAFF)
@bp.doc(summary="The transcript as WebVTT (vtt), SRT (srt) or a readable lesson record with chapters (html, 课堂实录)",
        responses={200: "The export", 404: "No such recording or format"})
def export_transcript(recording_id: int, fmt: str) -> Response:
    rec = _recording(recording_id)
    if fmt not in _EXPORTS:
        problem(404, "no-such-format", "exports are transcript.vtt, transcript.srt and transcript.html")
    mimetype, render = _EXPORTS[fmt]
    data = exports.load(db(), recording_id)
    assert data is not None
    resp = Response(render(data), mimetype=mimetype)
    resp.charset = "utf-8"
    resp.headers["Content-Disposition"] = f"inline; filename=\"recording-{rec['id']}.{fmt}\""
    return resp


# -- search and status ------------------------------------------------------------------------


@bp.get(API + "/speech/search")
@bp.auth_required(session_auth, roles=STAFF)
@bp.input(SearchQuery, location="query", arg_name="query")
@bp.output(SearchOut)
@bp.doc(summary="Search every transcript of your classes (Chinese, Korean, English); ranked hits with recording, chapter, time and snippet",
        responses=[404, 422])
def search_transcripts(query: SearchQuery) -> dict[str, Any]:
    ids = current_principal().class_ids
    if query.class_id is not None:
        _own_class(query.class_id)
        ids = [query.class_id]
    try:
        hits = search.search(db(), query.q, ids, limit=query.limit)
    except search.QueryError as exc:
        problem(422, "bad-query", str(exc))
    return {"hits": [{**h.__dict__, "media_url": f"/api/v1/recordings/{h.recording_id}/media#t={h.start_s:.2f}"} for h in hits]}


@bp.get(API + "/speech/status")
@bp.auth_required(session_auth, roles=STAFF)
@bp.output(StatusOut)
@bp.doc(summary="Whether transcription works here: the model's state as the worker reports it, and the queue")
def speech_status() -> dict[str, Any]:
    hub = current_hub()
    pointer = resolve(hub.config.speech, installed_pointer(hub.config))
    workers = service.model_status(db())
    if workers:
        state, detail = workers[0]["model_state"], workers[0]["detail"]
    else:
        # No worker has reported: at least say whether the model is there at all.
        try:
            check(pointer, verify_hash=False)
            state, detail = "unknown", "the classroom-speech worker has not reported yet"
        except ModelProblem as exc:
            state, detail = exc.state, str(exc)
    return {"enabled": hub.config.speech.enabled, "model": pointer.name, "model_state": state, "detail": detail,
            "queued_jobs": service.queue_depth(db()), "workers": workers}


# -- the web page -----------------------------------------------------------------------------


@bp.get("/speech")
@bp.doc(hide=True)
def speech_page() -> Response:
    """The recordings page (public shell, data comes from the API)."""
    from edge.web import static_prefix

    resp = Response(_PAGE.read_text(encoding="utf-8").replace("{{static}}", static_prefix()), mimetype="text/html")
    resp.charset = "utf-8"
    resp.headers["Cache-Control"] = "no-cache"
    return resp
