"""Lessons in a real headless Chromium: a lesson keeps working offline (service
worker cache), the class follows the teacher's page within a second, and a tablet
that drops off the network lands on the teacher's current page when it is back."""

from __future__ import annotations

import re
import socket
import threading
import time

from playwright.sync_api import expect

from tests.web.conftest import LANDSCAPE
from tests.web.flows import enrol, sign_in, teacher_login

LESSON_TITLE = "认识几分之一"
FILES_IN_DEMO_LESSON = 8


def _student(hub, new_page, number: str):  # type: ignore[no-untyped-def]
    watched = new_page()
    page = watched.page
    enrol(page, hub.pairing_code(), f"lesson-tablet-{number}")
    student = hub.student(number)
    sign_in(page, str(student["name"]), hub.pin(number))
    expect(page.locator("#lesson-list .lesson-btn", has_text=LESSON_TITLE)).to_be_visible()
    return watched


_AUDIO_STATE = """async () => {
  const a = document.querySelector('#viewer-stage audio');
  const cache = await caches.open('hub-lessons-v1');
  const src = a ? new URL(a.currentSrc || a.src).pathname : null;
  return {found: !!a, src, readyState: a && a.readyState, networkState: a && a.networkState,
          duration: a && a.duration, error: a && a.error && [a.error.code, a.error.message],
          cached: src ? !!(await cache.match(src)) : null,
          controller: !!navigator.serviceWorker.controller};
}"""


def _wait_for_audio_metadata(page) -> None:  # type: ignore[no-untyped-def]
    """Wait for the audio page's metadata; on a timeout say what state the element was in."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function("() => { const a = document.querySelector('#viewer-stage audio'); return a && a.readyState >= 1 && a.duration > 1; }",
                               timeout=20000)
    except PlaywrightTimeout:
        raise AssertionError(f"the cached audio never got its metadata offline: {page.evaluate(_AUDIO_STATE)}") from None


def _teacher_opens_lesson(hub, new_page):  # type: ignore[no-untyped-def]
    watched = new_page()
    page = watched.page
    teacher_login(page, hub)
    expect(page.locator("#lesson-open")).to_be_enabled()
    page.locator("#lesson-select").select_option(label=f"数学 · {LESSON_TITLE}")
    page.locator("#lesson-open").click()
    expect(page.locator("#teacher-lesson")).to_be_visible()
    # the teacher resumes where the class is (an earlier push), else on page 1
    expect(page.locator("#t-viewer-pushed")).to_have_attribute("data-page", re.compile(r"^\d+$"))
    return watched


def _goto_teacher_page(teacher, n: int) -> None:  # type: ignore[no-untyped-def]
    """Turn the teacher's pages until page n (each turn pushes)."""
    pushed = teacher.locator("#t-viewer-pushed")
    current = int(pushed.get_attribute("data-page") or "1")
    while current != n:
        teacher.locator("#t-viewer-next" if n > current else "#t-viewer-prev").click()
        current += 1 if n > current else -1
        expect(pushed).to_have_attribute("data-page", str(current))


def test_open_lesson_keeps_rendering_pages_and_media_offline(hub, new_page) -> None:  # type: ignore[no-untyped-def]
    watched = _student(hub, new_page, "41")
    page = watched.page
    page.locator("#lesson-list .lesson-btn", has_text=LESSON_TITLE).click()
    stage = page.locator("#viewer-stage")
    expect(stage).to_have_attribute("data-page", "1")
    page.wait_for_function("() => navigator.serviceWorker && navigator.serviceWorker.controller !== null")
    # Every file of the day's plan is in the cache, each by its own URL (a count of keys
    # could be reached while one file was missing).
    page.wait_for_function(
        """async () => {
            const plan = await (await fetch('/api/v1/me/prefetch')).json();
            const cache = await caches.open('hub-lessons-v1');
            const kept = await Promise.all(plan.files.map((f) => cache.match(f.url)));
            return plan.files.length >= FILES && kept.every(Boolean);
        }""".replace("FILES", str(FILES_IN_DEMO_LESSON)), polling=200, timeout=10000
    )
    page.context.set_offline(True)
    try:
        assert page.evaluate("() => fetch('/api/v1/hub').then(() => 'reached', () => 'offline')") == "offline"
        page.locator("#viewer-next").click()  # page 2: an image never shown before going offline
        expect(stage).to_have_attribute("data-page", "2")
        page.wait_for_function("() => { const i = document.querySelector('#viewer-stage img'); return i && i.complete && i.naturalWidth > 0; }")
        page.locator("#viewer-next").click()
        page.locator("#viewer-next").click()  # page 4: audio, loaded from the cache with Range requests
        expect(stage).to_have_attribute("data-kind", "audio")
        _wait_for_audio_metadata(page)
        page.locator("#viewer-next").click()
        expect(stage).to_have_attribute("data-page", "5")
        page.wait_for_function("() => { const i = document.querySelector('#viewer-stage img'); return i && i.complete && i.naturalWidth > 0; }")
    finally:
        page.context.set_offline(False)
    assert not watched.page_errors, watched.page_errors


def test_teacher_pushes_page_3_and_the_student_shows_it_within_a_second(hub, new_page) -> None:  # type: ignore[no-untyped-def]
    student = _student(hub, new_page, "42").page
    teacher = _teacher_opens_lesson(hub, new_page).page
    expect(student.locator("#lesson-viewer")).to_be_visible()  # the push opened the lesson on the tablet
    _goto_teacher_page(teacher, 2)
    expect(student.locator("#viewer-stage")).to_have_attribute("data-page", "2")
    t0 = time.monotonic()
    teacher.locator("#t-viewer-next").click()
    expect(student.locator("#viewer-stage")).to_have_attribute("data-page", "3", timeout=1000)
    elapsed = time.monotonic() - t0
    assert elapsed < 1.0, elapsed
    # page 3 is interactive HTML in a sandboxed frame: its script ran, in an opaque origin
    frame = student.frame_locator("#viewer-stage iframe")
    expect(frame.locator("#answer")).to_have_text("每份是 1/2")
    frame.locator("button[data-parts='4']").click()
    expect(frame.locator("#answer")).to_have_text("每份是 1/4")
    origin = student.locator("#viewer-stage iframe").evaluate("f => { try { return f.contentWindow.document.cookie; } catch (e) { return 'blocked'; } }")
    assert origin == "blocked"


class DropProxy:
    """The classroom Wi-Fi between one tablet and the hub: a TCP relay on loopback
    that the test can cut (every open connection reset, new ones refused) and restore."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.down = False
        self.open: set[socket.socket] = set()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self.lock:
                self.open |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def drop(self) -> None:
        self.down = True
        with self.lock:
            for sock in self.open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.open.clear()

    def restore(self) -> None:
        self.down = False

    def close(self) -> None:
        self.drop()
        self.listener.close()


def test_a_tablet_back_from_a_drop_lands_on_the_teachers_current_page(hub, new_page, browser) -> None:  # type: ignore[no-untyped-def]
    proxy = DropProxy(int(hub.url.rsplit(":", 1)[1]))
    context = browser.new_context(viewport=LANDSCAPE, base_url=f"http://127.0.0.1:{proxy.port}")
    context.set_default_timeout(8000)
    try:
        student = context.new_page()
        enrol(student, hub.pairing_code(), "lesson-tablet-43")
        sign_in(student, str(hub.student("43")["name"]), hub.pin("43"))
        teacher = _teacher_opens_lesson(hub, new_page).page
        _goto_teacher_page(teacher, 2)
        expect(student.locator("#viewer-stage")).to_have_attribute("data-page", "2")
        expect(student.locator("#viewer-follow.on")).to_be_visible()
        proxy.drop()
        expect(student.locator("#viewer-follow.off")).to_be_visible()  # the stream really dropped
        _goto_teacher_page(teacher, 5)
        time.sleep(1.5)
        expect(student.locator("#viewer-stage")).to_have_attribute("data-page", "2")  # missed while away
        proxy.restore()
        expect(student.locator("#viewer-stage")).to_have_attribute("data-page", "5", timeout=10000)
        expect(student.locator("#viewer-follow.on")).to_be_visible()
    finally:
        context.close()
        proxy.close()


def test_teacher_sets_a_lesson_for_a_period_today(hub, new_page) -> None:  # type: ignore[no-untyped-def]
    page = new_page().page
    teacher_login(page, hub)
    expect(page.locator("#lesson-assign")).to_be_enabled()
    page.locator("#lesson-select").select_option(label=f"数学 · {LESSON_TITLE}")
    page.locator("#lesson-period").select_option("3")
    page.locator("#lesson-assign").click()
    expect(page.locator("#lesson-today li[data-period='3']")).to_contain_text(LESSON_TITLE)
    day = page.locator("#lesson-today").get_attribute("data-day")
    status, schedule = hub.api("GET", f"/classes/1/schedule?day={day}", token=hub.teacher_token())
    assert status == 200 and 3 in [p["period"] for p in schedule["periods"]]  # type: ignore[index]
