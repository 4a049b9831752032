"""What a person does on the tablet, step by step, as the tests reuse it."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.web.conftest import Hub


def teacher_login(page: Page, hub: Hub) -> None:
    page.goto("/teacher")
    page.locator("#login-username").fill(str(hub.creds["teacher_username"]))
    page.locator("#login-password").fill(str(hub.creds["teacher_password"]))
    page.locator("#login-form button[type=submit]").click()
    expect(page.locator("#screen-class")).to_be_visible()
    expect(page.locator("#live-state.on")).to_be_visible()


def show_code(page: Page) -> str:
    page.locator("#show-code").click()
    digits = page.locator("#code-digits")
    expect(digits).to_have_attribute("data-code", re.compile(r"^\d{6}$"))
    code = digits.get_attribute("data-code") or ""
    # What the class reads off the screen is the same six digits.
    assert re.sub(r"\s", "", digits.inner_text()) == code
    return code


def enrol(page: Page, code: str, name: str) -> None:
    page.goto("/student")
    expect(page.locator("#screen-pair")).to_be_visible()
    page.locator("#pair-code").fill(code)
    page.locator("#pair-name").fill(name)
    page.locator("#pair-form button[type=submit]").click()
    expect(page.locator("#screen-pick")).to_be_visible()


def type_pin(page: Page, pin: str) -> None:
    for digit in pin:
        page.locator(f"#keypad [data-key='{digit}']").click()
    page.locator("#keypad [data-key=ok]").click()


def pick(page: Page, name: str) -> None:
    page.locator("#pick-grid .name-btn", has_text=name).click()
    expect(page.locator("#screen-pin")).to_be_visible()


def sign_in(page: Page, name: str, pin: str) -> None:
    pick(page, name)
    type_pin(page, pin)
    expect(page.locator("#home-hello")).to_contain_text(name)
