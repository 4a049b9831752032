"""Micro-lesson recording: audio ingest, the transcription queue and worker, transcripts, search, exports."""
