"""Browser tests of quizzes reuse the web UI fixtures: one real demo hub (gunicorn) and real headless Chromium."""

from tests.web.conftest import browser, hub, new_page, shots  # noqa: F401
