#!/usr/bin/env python3
"""An overseer `command` job: log in with Playwright, and hand over to a person for the
one-time code.

overseer holds the job's browser profile (`browser_profile`) for this run and hands over
its DevTools endpoint in OVERSEER_CDP_URL. The script logs in only when the profile is not
logged in yet. When the site asks for a one-time code (sent to the person's phone), it asks
overseer for a person: POST /api/v1/runs/{id}/hand-over with its run token. overseer shows
the run as waiting, sends `run.needs_person` with the dashboard link, and the person types
the code in the live view of this very browser, then presses Continue. The script polls
until then (its job's timeout does not run meanwhile); if nobody comes within the timeout,
overseer ends it and the run fails with `person_timeout`.

Job environment: SITE_URL (the site), SITE_USER, SITE_PASSWORD ({"secret": ...}), and
HAND_OVER_TIMEOUT (how long a person may take; default 30m).
"""
import json
import os
import urllib.error
import urllib.request

from playwright.sync_api import sync_playwright

site = os.environ["SITE_URL"].rstrip("/")
api = os.environ["OVERSEER_API_URL"]
run = os.environ["OVERSEER_RUN_ID"]
token = os.environ["OVERSEER_RUN_TOKEN"]


def overseer(method, path, body=None):
    """Calls overseer's API with this run's token; returns (status, JSON body)."""
    req = urllib.request.Request(
        api + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=400) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def ask_a_person(reason, timeout="30m"):
    """Blocks until the person pressed Continue (True) or nobody came (False)."""
    status, answer = overseer("POST", f"/api/v1/runs/{run}/hand-over",
                              {"reason": reason, "timeout": timeout, "wait": "20s"})
    if status != 200:
        raise SystemExit(f"hand-over refused: {status} {answer}")
    overseer("POST", f"/api/v1/runs/{run}/progress", {"note": f"waiting for a person: {reason}"})
    while answer["state"] == "waiting":
        status, answer = overseer("GET", f"/api/v1/runs/{run}/hand-over?wait=20s")
    return answer["state"] == "done"


with sync_playwright() as p:
    browser = p.chromium.connect_over_cdp(os.environ["OVERSEER_CDP_URL"])
    context = browser.contexts[0]  # the profile's own context: its cookies, its logins
    page = context.new_page()
    page.goto(site + "/home")
    logged_in_before = page.locator("#welcome").count() > 0
    if not logged_in_before:
        page.fill("#user", os.environ["SITE_USER"])
        page.fill("#password", os.environ["SITE_PASSWORD"])
        page.keyboard.press("Enter")
        page.wait_for_selector("h1")
        if page.locator("#code-form").count() > 0:
            if not ask_a_person("one-time code for " + site, os.environ.get("HAND_OVER_TIMEOUT", "30m")):
                raise SystemExit("nobody entered the code")
        page.goto(site + "/home")
    greeting = page.inner_text("#welcome")
    page.close()

with open(os.environ["OVERSEER_OUTPUT"], "w") as out:
    json.dump({"logged_in_before": logged_in_before, "greeting": greeting}, out)
