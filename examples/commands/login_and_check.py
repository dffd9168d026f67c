#!/usr/bin/env python3
"""An overseer `command` job: a Playwright script in the job's persistent browser profile.

overseer launches (or reuses) the profile named by the job's `browser_profile`, holds it for
this run alone and hands over its DevTools endpoint in OVERSEER_CDP_URL, so the script drives
the same logged-in profile that `browser` jobs use. It logs in only when the profile is not
signed in yet, asks the quota (through the run token) whether one more message may go out,
and reports what it saw as the run's result.

Job environment: SITE_URL (the site), SITE_USER, SITE_PASSWORD ({"secret": ...}).
"""
import json
import os
import urllib.error
import urllib.request

from playwright.sync_api import sync_playwright

site = os.environ["SITE_URL"].rstrip("/")
api = os.environ["OVERSEER_API_URL"]
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
        with urllib.request.urlopen(req) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


with sync_playwright() as p:
    browser = p.chromium.connect_over_cdp(os.environ["OVERSEER_CDP_URL"])
    context = browser.contexts[0]  # the profile's own context: its cookies, its logins
    page = context.new_page()
    page.goto(site + "/account")
    was_signed_in = "Signed in as" in page.inner_text("#who")
    if not was_signed_in:
        page.goto(site + "/login")
        page.fill("#user", os.environ["SITE_USER"])
        page.fill("#pass", os.environ["SITE_PASSWORD"])
        page.click("#submit")
        page.wait_for_selector("#welcome")
        page.goto(site + "/account")
    who = page.inner_text("#who")
    overseer("POST", f"/api/v1/runs/{os.environ['OVERSEER_RUN_ID']}/progress", {"note": who})
    # May I send one more message? 200 yes, 429 (with Retry-After) no.
    status, answer = overseer("POST", "/api/v1/quotas/messages/consume", {"cost": 1})
    page.close()

with open(os.environ["OVERSEER_OUTPUT"], "w") as out:
    json.dump({"was_signed_in": was_signed_in, "who": who, "may_send": status == 200}, out)
