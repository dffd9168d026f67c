"""Drives a live view through the dashboard in real headless Chromium (Playwright from PyPI,
Debian's Chromium): Browsers → Open live, then a login with a one-time code on the test site
by clicking the streamed page (the code field by a touch tap, as on a phone), typing and
pressing Enter, and Done. Prints what it saw as JSON for tests/live.rs.

argv: base URL, operator token, site login URL, profile, the three field positions as
"x,y" (user, password, code), user, password, code, screenshot path.
"""
import json
import os
import sys

from playwright.sync_api import sync_playwright

base, token, login_url, profile, user_at, password_at, code_at, user, password, code, shot = sys.argv[1:12]
out = {"console_errors": []}
T = 60_000


def point(page, at):
    """Where the page's (x, y) in CSS pixels is on the screen: the frame (of the page's width
    and height, as its event says) is scaled to fit."""
    x, y = (float(v) for v in at.split(","))
    box = page.locator("#live-screen").bounding_box()
    w = float(page.get_attribute("#live-screen", "data-width"))
    h = float(page.get_attribute("#live-screen", "data-height"))
    return box["x"] + x * box["width"] / w, box["y"] + y * box["height"] / h


def at_address(page, suffix):
    try:
        page.wait_for_function("(s) => document.getElementById('live-address').value.endsWith(s)", arg=suffix, timeout=T)
    except Exception:
        page.screenshot(path=shot)
        raise Exception(f"not at {suffix}: address {page.input_value('#live-address')!r}, status {page.inner_text('#live-status')!r}")


args = ["--no-sandbox"] if os.geteuid() == 0 else []
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args, headless=True)
    try:
        ctx = browser.new_context(viewport={"width": 1000, "height": 900}, has_touch=True)
        page = ctx.new_page()
        # A refused request is logged as "Failed to load resource" (the favicon): not an error here.
        page.on("console", lambda m: out["console_errors"].append(m.text)
                if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
        page.on("pageerror", lambda e: out["console_errors"].append(str(e)))
        page.goto(base + "/ui/")
        page.fill("#token", token)
        page.click("#login")
        page.wait_for_selector("#overview")
        page.goto(base + "/ui/#/browsers")
        page.fill("#live-profile", profile)
        page.fill("#live-url", login_url)
        page.click("#open-live-submit")
        page.wait_for_function("() => (document.getElementById('live-screen') || {}).src?.startsWith('data:image/jpeg')", timeout=T)
        out["hash"] = page.evaluate("() => location.hash")
        at_address(page, "/login")
        page.mouse.click(*point(page, user_at))
        page.keyboard.type(user)
        page.mouse.click(*point(page, password_at))
        page.keyboard.type(password)
        page.keyboard.press("Enter")
        at_address(page, "/code")
        page.touchscreen.tap(*point(page, code_at))
        page.keyboard.type(code)
        page.keyboard.press("Enter")
        at_address(page, "/home")
        out["tabs"] = page.locator(".live-tab").count()
        out["frames"] = int(page.get_attribute("#live-screen", "data-seq"))
        page.screenshot(path=shot)
        page.click("#live-done")
        page.wait_for_selector("#live-status[data-ended]", timeout=T)
        out["ended"] = page.get_attribute("#live-status", "data-ended")
    finally:
        browser.close()
print(json.dumps(out))
