"""Offline lessons: signed lesson packages, the content-addressed store, serving,
the day's schedule and the page the class follows (issue 3)."""
