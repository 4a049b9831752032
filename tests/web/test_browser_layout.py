"""The main screens on a 10-inch tablet, both ways round: key buttons visible and
big enough to touch, and a screenshot of each for a person to look at."""

from __future__ import annotations

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.web.conftest import LANDSCAPE, PORTRAIT
from tests.web.flows import enrol, pick, show_code, teacher_login

pytestmark = pytest.mark.browser

MIN_TOUCH_PX = 44


def _touchable(locator: Locator) -> None:
    expect(locator).to_be_visible()
    box = locator.bounding_box()
    assert box is not None
    assert box["height"] >= MIN_TOUCH_PX, f"{locator} is {box['height']}px tall"


def _in_view(page: Page, locator: Locator) -> None:
    """Visible without scrolling: inside the viewport."""
    box = locator.bounding_box()
    size = page.viewport_size
    assert box is not None and size is not None
    assert box["y"] >= 0 and box["y"] + box["height"] <= size["height"], f"{locator} at {box} is outside {size}"
    assert box["x"] >= 0 and box["x"] + box["width"] <= size["width"], f"{locator} at {box} is outside {size}"


@pytest.mark.parametrize("viewport", [LANDSCAPE, PORTRAIT], ids=["landscape", "portrait"])
def test_key_buttons_are_visible_and_touch_sized(hub, new_page, shots, viewport):
    tag = "landscape" if viewport == LANDSCAPE else "portrait"

    tablet = new_page(viewport).page
    tablet.goto("/")
    for choice in ("#go-student", "#go-teacher"):
        _touchable(tablet.locator(choice))
    tablet.screenshot(path=shots / f"landing-{tag}.png")
    tablet.goto("/student")
    expect(tablet.locator("#screen-pair")).to_be_visible()
    submit = tablet.locator("#pair-form button[type=submit]")
    _touchable(submit)
    _in_view(tablet, submit)
    tablet.screenshot(path=shots / f"student-pair-{tag}.png")

    enrol(tablet, hub.pairing_code(), f"layout-{tag}")
    names = tablet.locator("#pick-grid .name-btn")
    expect(names).not_to_have_count(0)
    _touchable(names.first)
    _touchable(names.last)
    tablet.screenshot(path=shots / f"student-pick-{tag}.png")

    student = hub.student("20")
    pick(tablet, str(student["name"]))
    for key in ("1", "0", "back", "ok"):
        button = tablet.locator(f"#keypad [data-key='{key}']")
        _touchable(button)
        _in_view(tablet, button)
    tablet.locator("#keypad [data-key='1']").click()
    tablet.screenshot(path=shots / f"student-pin-{tag}.png")

    teacher = new_page(viewport).page
    teacher.goto("/teacher")
    _touchable(teacher.locator("#login-form button[type=submit]"))
    teacher.screenshot(path=shots / f"teacher-login-{tag}.png")
    teacher_login(teacher, hub)
    show = teacher.locator("#show-code")
    _touchable(show)
    _in_view(teacher, show)
    _touchable(teacher.locator("#roster .tile").first)
    _touchable(teacher.locator("#devices li button").first)
    _touchable(teacher.locator(".lang-switch"))
    _touchable(teacher.locator("#logout"))
    teacher.screenshot(path=shots / f"teacher-class-{tag}.png", full_page=True)
    # English strings are longer: the same controls must still fit.
    teacher.locator(".lang-switch").click()
    expect(teacher.locator("#show-code")).to_have_text("Show pairing code")
    _touchable(show)
    _in_view(teacher, show)
    teacher.screenshot(path=shots / f"teacher-class-{tag}-en.png", full_page=True)
    teacher.locator(".lang-switch").click()
    expect(teacher.locator("#show-code")).to_have_text("显示配对码")

    show_code(teacher)
    digits = teacher.locator("#code-digits")
    box = digits.bounding_box()
    assert box is not None and box["height"] >= 150, f"the code is only {box} tall: unreadable from the back row"
    _in_view(teacher, digits)
    _touchable(teacher.locator("#code-close"))
    teacher.screenshot(path=shots / f"teacher-code-{tag}.png")
    teacher.locator("#code-close").click()

    admin = new_page(viewport).page
    admin.goto("/admin")
    admin.locator("#login-username").fill(str(hub.creds["admin_username"]))
    admin.locator("#login-password").fill(str(hub.creds["admin_password"]))
    admin.locator("#login-form button[type=submit]").click()
    expect(admin.locator("#users-body tr")).not_to_have_count(0)
    _touchable(admin.locator("#new-user button[type=submit]"))
    admin.screenshot(path=shots / f"admin-{tag}.png", full_page=True)


def test_signed_in_home_screen(hub, new_page, shots):
    tablet = new_page(LANDSCAPE).page
    enrol(tablet, hub.pairing_code(), "home-shot")
    student = hub.student("21")
    pick(tablet, str(student["name"]))
    for digit in hub.pin("21"):
        tablet.locator(f"#keypad [data-key='{digit}']").click()
    tablet.locator("#keypad [data-key=ok]").click()
    expect(tablet.locator("#home-hello")).to_have_text(f"你好，{student['name']}")
    _touchable(tablet.locator("#signout"))
    tablet.screenshot(path=shots / "student-home-landscape.png")
    tablet.locator("#signout").click()
    expect(tablet.locator("#screen-pick")).to_be_visible()
    expect(tablet.locator("#pick-msg")).to_contain_text("已退出")
