"""The classroom's web UI in a real Chromium against a real hub: pairing, sign-in,
live attendance, errors people see, language, revocation."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.web.flows import enrol, pick, show_code, sign_in, teacher_login, type_pin

pytestmark = pytest.mark.browser


def test_tablet_pairs_student_signs_in_and_teacher_sees_it_live(hub, new_page):
    teacher = new_page()
    teacher_login(teacher.page, hub)
    code = show_code(teacher.page)
    expect(teacher.page.locator("#code-uses")).to_contain_text("0 /")
    # A marker that a reload would wipe: the roster must update in place.
    teacher.page.evaluate("window.__noReload = true")

    student = hub.student("05")
    tablet = new_page()
    enrol(tablet.page, code, "充电车 05")
    # The open pairing dialog counts the tablet that just used its code.
    expect(teacher.page.locator("#code-uses")).to_contain_text("1 /", timeout=5000)
    teacher.page.locator("#code-close").click()

    tile = teacher.page.locator(f"#roster .tile[data-student-id='{student['id']}']")
    expect(tile).not_to_have_class(re.compile(r"\bpresent\b"))
    sign_in(tablet.page, str(student["name"]), hub.pin("05"))
    expect(tablet.page.locator("#home-hello")).to_have_text(f"你好，{student['name']}")
    expect(tablet.page.locator("#home-days li")).to_have_count(1)

    expect(tile).to_have_class(re.compile(r"\bpresent\b"), timeout=5000)
    expect(teacher.page.locator("#att-count")).to_contain_text("已到 1 /")
    assert teacher.page.evaluate("window.__noReload") is True
    # The new tablet shows up in the teacher's list too (device.enrolled event).
    expect(teacher.page.locator("#devices li", has_text="充电车 05")).to_be_visible()


def test_wrong_pin_and_lockout_show_clear_chinese_messages(hub, new_page):
    tablet = new_page()
    enrol(tablet.page, hub.pairing_code(), "pin-test")
    wrong = "0000" if hub.pin("07") != "0000" else "1111"

    student = hub.student("07")
    pick(tablet.page, str(student["name"]))
    type_pin(tablet.page, wrong)
    expect(tablet.page.locator("#pin-msg")).to_have_text("PIN 不对，请再试一次。")
    expect(tablet.page.locator("#screen-pin")).to_be_visible()

    # Four more wrong PINs lock the sign-in; the next try says for how long.
    for _ in range(4):
        type_pin(tablet.page, wrong)
        expect(tablet.page.locator("#pin-msg")).to_have_text("PIN 不对，请再试一次。")
    type_pin(tablet.page, hub.pin("07"))
    expect(tablet.page.locator("#pin-msg")).to_have_text(re.compile(r"已锁定。请 \d+ 分钟后再试"))
    assert not tablet.page_errors


def test_ui_is_chinese_by_default_and_switches_to_english(hub, new_page):
    watched = new_page()
    page = watched.page
    page.goto("/")
    expect(page.locator("#screen-choose")).to_be_visible()
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    expect(page.locator("#go-student .choice-title")).to_have_text("学生平板")
    expect(page.locator(".lang-switch")).to_have_text("English")

    page.locator(".lang-switch").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#go-student .choice-title")).to_have_text("Student tablet")
    expect(page.locator("#go-teacher .choice-title")).to_have_text("Teacher login")
    assert page.title() == "Classroom Hub"

    # The choice is remembered on this tablet.
    page.goto("/teacher")
    expect(page.locator("#login-form h1")).to_have_text("Staff login")
    page.locator("#login-username").fill("nobody")
    page.locator("#login-password").fill("wrong-password")
    page.locator("#login-form button[type=submit]").click()
    expect(page.locator("#login-msg")).to_have_text("Wrong username or password.")
    # Switching back re-renders messages already on screen.
    page.locator(".lang-switch").click()
    expect(page.locator("#login-msg")).to_have_text("用户名或密码不对。")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")


def test_revoked_tablet_goes_back_to_pairing_on_next_action(hub, new_page):
    tablet = new_page()
    enrol(tablet.page, hub.pairing_code(), "将被移除的平板")
    student = hub.student("11")
    sign_in(tablet.page, str(student["name"]), hub.pin("11"))

    teacher = new_page()
    teacher_login(teacher.page, hub)
    row = teacher.page.locator("#devices li", has_text="将被移除的平板")
    row.locator("button").click()
    dialog = teacher.page.locator("dialog.confirm")
    expect(dialog).to_contain_text("将被移除的平板")
    dialog.locator("button[value=ok]").click()
    expect(row).to_have_count(0)
    expect(teacher.page.locator("#devices-msg")).to_contain_text("已移除")

    tablet.page.locator("#home-refresh").click()
    expect(tablet.page.locator("#screen-pair")).to_be_visible()
    expect(tablet.page.locator("#pair-msg")).to_contain_text("已被老师移除")


def test_pages_load_nothing_from_outside_the_hub_and_log_no_errors(hub, new_page):
    watched = new_page()
    page = watched.page
    page.goto("/")
    expect(page.locator("#screen-choose")).to_be_visible()
    student = hub.student("30")
    enrol(page, hub.pairing_code(), "csp-check")
    sign_in(page, str(student["name"]), hub.pin("30"))
    page.locator("#signout").click()
    expect(page.locator("#screen-pick")).to_be_visible()
    page.goto("/admin")
    page.locator("#login-username").fill(str(hub.creds["admin_username"]))
    page.locator("#login-password").fill(str(hub.creds["admin_password"]))
    page.locator("#login-form button[type=submit]").click()
    expect(page.locator("#users-body tr")).not_to_have_count(0)
    page.locator("#logout").click()
    # The sign-out has reached the hub once the login form is back; going on before that
    # let the teacher page ask /me with the admin's cookie and /classes after the revoke.
    expect(page.locator("#screen-login")).to_be_visible()
    teacher_login(page, hub)
    show_code(page)
    page.locator("#code-close").click()
    page.locator("#roster .tile").first.click()
    expect(page.locator("#student-dialog")).to_be_visible()
    page.locator("#sd-close").click()

    scheme, netloc = hub.origin
    foreign = [u for u in watched.requests if not u.startswith(f"{scheme}://{netloc}/")]
    assert not foreign, f"requests outside the hub: {foreign}"
    assert not watched.unexpected_console_errors(), watched.console_errors
    assert not watched.page_errors


def test_staff_admin_creates_and_disables_a_teacher(hub, new_page):
    page = new_page().page
    page.goto("/admin")
    page.locator("#login-username").fill(str(hub.creds["admin_username"]))
    page.locator("#login-password").fill(str(hub.creds["admin_password"]))
    page.locator("#login-form button[type=submit]").click()
    form = page.locator("#new-user")
    form.locator("[name=username]").fill("li.laoshi")
    form.locator("[name=display_name]").fill("李老师")
    form.locator("[name=password]").fill("short")
    form.locator("button[type=submit]").click()
    expect(page.locator("#new-msg")).to_have_text("密码至少需要 8 个字符。")
    form.locator("[name=password]").fill("long-enough-1")
    form.locator("input[name=class_ids]").first.check()
    form.locator("button[type=submit]").click()
    row = page.locator("#users-body tr", has_text="li.laoshi")
    expect(row).to_contain_text("李老师")
    expect(row).to_contain_text("正常")
    row.locator("button").click()
    expect(row).to_contain_text("已停用")
    status, _ = hub.api("POST", "/auth/login", {"username": "li.laoshi", "password": "long-enough-1"})
    assert status == 403


def test_used_up_and_wrong_codes_tell_the_student_what_to_do(hub, new_page):
    code = hub.pairing_code(max_uses=1)
    first = new_page()
    enrol(first.page, code, "first")

    second = new_page().page
    second.goto("/student")
    second.locator("#pair-code").fill(code)
    second.locator("#pair-form button[type=submit]").click()
    expect(second.locator("#pair-msg")).to_have_text("这个配对码的名额已用完，请老师换一个新码。")
    second.locator("#pair-code").fill("12345")
    second.locator("#pair-form button[type=submit]").click()
    expect(second.locator("#pair-msg")).to_have_text("配对码是 6 位数字。")
    # Letters typed on a full keyboard are dropped: the field keeps digits only.
    second.locator("#pair-code").fill("")
    second.locator("#pair-code").press_sequentially("12ab34")
    expect(second.locator("#pair-code")).to_have_value("1234")


def test_teacher_imports_a_roster_csv_and_sees_the_report(hub, new_page, tmp_path):
    existing = hub.student("03")
    csv = tmp_path / "名单.csv"
    csv.write_text(
        "姓名,学号,班级\n"
        f"{existing['name']},03,{hub.creds['class_name']}\n"
        f"新同学,46,{hub.creds['class_name']}\n"
        "别班的,01,五年级一班\n",
        encoding="utf-8",
    )
    page = new_page().page
    teacher_login(page, hub)
    page.locator("#import-file").set_input_files(str(csv))
    expect(page.locator("#import-filename")).to_have_text("名单.csv")
    page.locator("#import-form button[type=submit]").click()
    expect(page.locator("#import-msg")).to_have_text("导入完成：新增 1 人，更新 1 人，拒绝 1 行。")
    report = page.locator("#import-report")
    expect(report.locator("table").first).to_contain_text("五年级一班")
    pin_row = report.locator("tr", has_text="新同学")
    expect(pin_row.locator("td.pin")).to_have_text(re.compile(r"^\d{4,6}$"))
    # The roster reloads with the new student in it.
    expect(page.locator("#roster .tile", has_text="新同学")).to_be_visible()


def test_each_page_holds_one_live_stream_however_many_panels_listen(hub, new_page):
    # Each open stream holds a hub thread: the student's lessons and quiz panels, and the
    # teacher's class and quiz panels, share one EventSource (live.js).
    student = new_page()
    enrol(student.page, hub.pairing_code(), "one-stream")
    sign_in(student.page, str(hub.student("31")["name"]), hub.pin("31"))
    expect(student.page.locator("#quiz-live[data-state=on]")).to_be_attached()
    teacher = new_page()
    teacher_login(teacher.page, hub)
    teacher.page.wait_for_timeout(500)  # let every panel start
    for watched in (student, teacher):
        streams = [u for u in watched.requests if urlsplit(u).path == "/api/v1/events"]
        assert len(streams) == 1, streams
