"""Drives overseer's dashboard in real headless Chromium (Debian's, through Playwright from
PyPI; no browser download) and prints what it saw as JSON, for tests/ui.rs to assert.

argv: base URL, admin token, viewer token, failed run id, screenshots directory.
"""
import json
import os
import sys
import urllib.request

from playwright.sync_api import sync_playwright

base, admin, viewer, failed_run, shots = sys.argv[1:6]
os.makedirs(shots, exist_ok=True)
out = {"console_errors": []}


def watch(page):
    """Script errors and CSP violations (a refused request is expected here: not one)."""
    page.on("console", lambda m: out["console_errors"].append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
    page.on("pageerror", lambda e: out["console_errors"].append(str(e)))


def trigger(job):
    req = urllib.request.Request(f"{base}/api/v1/jobs/{job}/trigger", method="POST",
                                 headers={"Authorization": "Bearer " + admin})
    with urllib.request.urlopen(req) as r:
        return json.load(r)["id"]


def login(ctx, token):
    page = ctx.new_page()
    watch(page)
    page.goto(base + "/ui/")
    page.fill("#token", token)
    page.click("#login")
    page.wait_for_selector("#overview")
    return page


args = ["--no-sandbox"] if os.geteuid() == 0 else []
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args, headless=True)
    try:
        ctx = browser.new_context(viewport={"width": 1200, "height": 800})
        page = ctx.new_page()
        watch(page)
        page.goto(base + "/ui/")
        out["redirected_to_login"] = page.url.endswith("/ui/login")
        out["login_hint"] = page.inner_text(".hint")
        page.screenshot(path=f"{shots}/login.png")
        page.fill("#token", "ovs_not_a_token")
        page.click("#login")
        out["wrong_token_error"] = page.inner_text(".error")
        page.fill("#token", admin)
        page.click("#login")
        try:
            page.wait_for_selector("#overview")
        except Exception:
            print(page.content(), file=sys.stderr)
            raise
        out["readiness"] = page.inner_text("#readiness")
        out["nodes"] = page.locator("tr.node").all_inner_texts()
        out["chart_bars"] = page.locator("#chart-hour rect").count()
        out["chart_day_bars"] = page.locator("#chart-day rect").count()
        cookie = [c for c in ctx.cookies() if c["name"] == "overseer_session"][0]
        out["cookie"] = {"httpOnly": cookie["httpOnly"], "sameSite": cookie["sameSite"]}
        page.screenshot(path=f"{shots}/overview.png", full_page=True)

        # Create a job through the form: a bad cron is shown at its field, then a good one.
        page.click("#nav-jobs")
        page.wait_for_selector("#jobs")
        # The kinds the form offers come from the server (GET /api/v1/kinds), noop first.
        out["form_kinds"] = sorted(page.locator("#form-kind option").all_inner_texts())
        out["form_kind_default"] = page.input_value("#form-kind")
        page.fill("#job-json", json.dumps({"name": "from-ui", "kind": "noop", "schedule": {"cron": "61 * * * *"}}))
        page.click("#create-job")
        page.wait_for_selector("#create-errors li")
        out["field_error_path"] = page.get_attribute("#create-errors li", "data-path")
        # The form per kind: an http job with a bad URL shows the error at that field, then
        # a good one is created.
        page.fill('#kind-form [name="name"]', "form-http")
        page.select_option("#form-kind", "http")
        page.fill('#kind-form [name="schedule.value"]', "0 0 29 2 *")
        page.fill('#kind-form [name="payload.url"]', "ftp://nope")
        page.click("#form-create")
        page.wait_for_selector("#kind-form .field-error")
        out["form_error_for"] = page.get_attribute("#kind-form .field-error", "data-error-for")
        page.fill('#kind-form [name="payload.url"]', base + "/health")
        page.click("#form-create")
        page.wait_for_selector('tr[data-job="form-http"]')

        # The schedule preview: the next 10 fires in the schedule's timezone.
        page.fill("#job-json", json.dumps({"name": "from-ui", "kind": "noop",
                                           "schedule": {"cron": "0 9 * * 1", "timezone": "Europe/Berlin"}}))
        page.click("#preview-schedule")
        page.wait_for_selector("#preview li.fire")
        out["preview_fires"] = page.locator("#preview li.fire").count()
        out["preview_first"] = page.inner_text("#preview li.fire")
        page.fill("#job-json", json.dumps({"name": "from-ui", "kind": "noop", "schedule": {"cron": "0 0 29 2 *"}}))
        page.click("#create-job")
        page.wait_for_selector('tr[data-job="from-ui"]')
        page.screenshot(path=f"{shots}/jobs.png", full_page=True)

        # Pages of a list are links too: two jobs a page.
        page.goto(f"{base}/ui/#/jobs?limit=2")
        page.wait_for_selector("#next-page")
        first_page = page.locator("tr[data-job]").all_inner_texts()
        first_job = page.get_attribute("tr[data-job]", "data-job")
        page.click("#next-page")
        page.wait_for_function(
            "(first) => { const r = document.querySelector('tr[data-job]'); return r && r.dataset.job !== first; }",
            arg=first_job)
        second_page = page.locator("tr[data-job]").all_inner_texts()
        out["pages_differ"] = len(first_page) == 2 and first_page != second_page
        page.goto(f"{base}/ui/#/jobs")
        # The whole list (no next page) has replaced the paged one.
        page.wait_for_function("() => !document.getElementById('next-page')")
        page.wait_for_selector('tr[data-job="from-ui"]')

        # Bulk: select both jobs and pause them; then edit one (a bad field is shown, a good
        # change saved).
        page.check('tr[data-job="from-ui"] input.pick')
        page.check('tr[data-job="second"] input.pick')
        page.click("button.bulk-pause")
        page.wait_for_selector("#notice:has-text('Pause')")
        out["bulk_notice"] = page.inner_text("#notice")
        page.wait_for_selector('tr[data-job="from-ui"] .badge.paused')
        # Edit through the form: a bad cron shows at its field; a good one is saved.
        page.goto(f"{base}/ui/#/jobs/form-http")
        page.wait_for_selector("#form-save")
        out["edit_form_url"] = page.input_value('#kind-form [name="payload.url"]')
        page.fill('#kind-form [name="schedule.value"]', "99 * * * *")
        page.click("#form-save")
        page.wait_for_selector("#kind-form .field-error")
        out["edit_form_error_for"] = page.get_attribute("#kind-form .field-error", "data-error-for")
        page.fill('#kind-form [name="schedule.value"]', "0 12 29 2 *")
        page.click("#form-save")
        page.wait_for_selector("#notice:has-text('saved form-http')")
        page.goto(f"{base}/ui/#/jobs/from-ui")
        # A hash change re-renders without a reload: the previous job's editor is still there
        # until this job's page has replaced it.
        page.wait_for_selector("#job h1:has-text('from-ui')")
        page.wait_for_selector("#edit-json")
        edited = json.loads(page.input_value("#edit-json"))
        edited["tags"] = ["edited-in-ui"]
        edited["schedule"] = {"cron": "not a cron"}
        page.fill("#edit-json", json.dumps(edited))
        page.click("#save-job")
        page.wait_for_selector("#edit-errors li")
        out["edit_error_path"] = page.get_attribute("#edit-errors li", "data-path")
        edited["schedule"] = {"cron": "0 0 29 2 *"}
        page.fill("#edit-json", json.dumps(edited))
        page.click("#save-job")
        page.wait_for_selector("#notice:has-text('saved')")
        out["edit_notice"] = page.inner_text("#notice")
        page.click("#nav-jobs")
        page.wait_for_selector('tr[data-job="from-ui"]')
        page.check('tr[data-job="from-ui"] input.pick')
        page.check('tr[data-job="second"] input.pick')
        page.click("button.bulk-resume")
        page.wait_for_selector('tr[data-job="from-ui"] .badge.active')

        # A run appears on the runs page by itself: the page is not reloaded (a marker survives).
        page.click("#nav-runs")
        page.wait_for_selector("#runs")
        page.evaluate("window.__stayed = 'yes'")
        before = page.locator("tr[data-run]").count()
        new_run = trigger("from-ui")
        page.wait_for_selector(f'tr[data-run="{new_run}"]', timeout=15000)
        # Back on the overview, the chart counts the finished runs of the last hour by itself.
        page.click("#nav-overview")
        page.wait_for_function(
            "() => (document.querySelector('#chart-hour') || {getAttribute: () => ''})"
            ".getAttribute('aria-label').match(/: ([1-9][0-9]*) in all/)", timeout=15000)
        out["chart_label"] = page.get_attribute("#chart-hour", "aria-label")
        page.click("#nav-runs")
        page.wait_for_selector(f'tr[data-run="{new_run}"]')
        out["run_appeared"] = page.locator("tr[data-run]").count() > before
        out["not_reloaded"] = page.evaluate("window.__stayed") == "yes"
        page.screenshot(path=f"{shots}/runs.png", full_page=True)

        # A failed browser run: its screenshot inline, then requeued.
        page.goto(f"{base}/ui/#/runs/{failed_run}")
        page.wait_for_selector("img.shot")
        # A function, not an expression: an expression is evaluated with eval, which the CSP refuses.
        page.wait_for_function("() => document.querySelector('img.shot').complete")
        out["screenshot_width"] = page.evaluate("document.querySelector('img.shot').naturalWidth")
        out["run_error"] = page.inner_text("#run-error")
        page.screenshot(path=f"{shots}/run.png", full_page=True)
        page.click("button.requeue")
        page.wait_for_selector("#notice")
        out["requeue_notice"] = page.inner_text("#notice")
        # The fire's attempts side by side: the requeued one appears beside the first.
        page.wait_for_selector("#attempts li:nth-child(2)")
        out["attempts"] = page.locator("#attempts li").count()

        # The failed run's notification could not be delivered: resend it.
        page.click("#nav-notifications")
        page.wait_for_selector('#notifications tr[data-state="failed"]')
        page.screenshot(path=f"{shots}/notifications.png", full_page=True)
        page.click('#notifications tr[data-state="failed"] button.resend')
        page.wait_for_selector("#notice")
        out["resend_notice"] = page.inner_text("#notice")
        page.click("#nav-browsers")
        page.wait_for_selector('#browsers tr[data-profile="ui"]')
        out["browser_profile_row"] = page.inner_text('#browsers tr[data-profile="ui"]')
        page.screenshot(path=f"{shots}/browsers.png", full_page=True)

        # Flags: notifications off at runtime from the page, shown as such, then back; the
        # audit log shows both changes, filtered by action.
        page.click("#nav-flags")
        page.wait_for_selector('#flags tr[data-flag="notifications"]')
        row = '#flags tr[data-flag="notifications"]'
        page.select_option(f"{row} select.setting", "off")
        page.click(f"{row} button.set")
        page.wait_for_selector(f'{row}[data-source="runtime"]')
        out["flag_value"] = page.inner_text(f"{row} td.value")
        out["flag_source"] = page.inner_text(f"{row} td.source")
        arow = '#flags tr[data-flag="anti_detection"]'
        page.select_option(f"{arow} select.setting", "percent")
        page.fill(f"{arow} input.percent", "40")
        page.click(f"{arow} button.set")
        page.wait_for_selector(f'{arow}[data-source="runtime"]')
        out["rollout_value"] = page.inner_text(f"{arow} td.value")
        page.screenshot(path=f"{shots}/flags.png", full_page=True)
        for r in [row, arow]:
            page.click(f"{r} button.reset")
            page.wait_for_selector(f'{r}[data-source="default"]')
        page.click("#nav-audit")
        page.wait_for_selector("#audit tr[data-audit]")
        page.fill('#audit-filters input[name="action"]', "flag.")
        page.click('#audit-filters button[type="submit"]')
        # The page drawn again for the filter carries it in the field's attribute.
        page.wait_for_selector('#audit-filters input[name="action"][value="flag."]')
        out["audit_flag_actions"] = page.evaluate("[...document.querySelectorAll('#audit tr[data-audit]')].map((r) => r.dataset.action)")
        page.screenshot(path=f"{shots}/audit.png", full_page=True)

        # A change without the CSRF token is refused, even with the session cookie.
        out["post_without_csrf"] = page.evaluate(
            "fetch('/api/v1/jobs/from-ui/pause', {method: 'POST', credentials: 'same-origin'}).then(r => r.status)")
        page.click("#logout")
        page.wait_for_selector("#token")
        out["after_logout"] = page.url
        page.goto(base + "/ui/")
        out["after_logout_redirect"] = page.url
        out["api_after_logout"] = page.evaluate("fetch('/api/v1/jobs', {credentials: 'same-origin'}).then(r => r.status)")

        # A viewer sees no control that changes anything, and a forged change is refused.
        vctx = browser.new_context()
        vpage = login(vctx, viewer)
        vpage.click("#nav-jobs")
        vpage.wait_for_selector('tr[data-job="from-ui"]')
        out["viewer_buttons"] = vpage.locator("#jobs button.trigger, #jobs button.pause, #jobs button.resume, #create").count()
        out["viewer_forged_post"] = vpage.evaluate(
            "fetch('/api/v1/jobs/from-ui/trigger', {method: 'POST', credentials: 'same-origin', "
            "headers: {'X-CSRF-Token': document.querySelector('meta[name=csrf]').content}}).then(r => r.status)")
        vpage.screenshot(path=f"{shots}/viewer-jobs.png", full_page=True)
        out["viewer_audit_link"] = vpage.locator("#nav-audit").count()
        vpage.click("#nav-flags")
        vpage.wait_for_selector('#flags tr[data-flag="notifications"]')
        out["viewer_flag_controls"] = vpage.locator("#flags select, #flags button").count()
        # On a phone: nothing wider than the screen; every control has a name; the keyboard
        # reaches the navigation and follows a link.
        phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
        ppage = login(phone, admin)
        overflow = {}
        for route in ["#/", "#/jobs", "#/runs", "#/quotas", "#/notifications", "#/browsers", "#/flags", "#/audit"]:
            ppage.goto(f"{base}/ui/{route}")
            ppage.wait_for_selector("#main section")
            overflow[route] = ppage.evaluate("document.documentElement.scrollWidth - screen.width")
        out["phone_overflow"] = overflow
        ppage.goto(f"{base}/ui/#/jobs")
        ppage.wait_for_selector("#jobs")
        ppage.screenshot(path=f"{shots}/phone-jobs.png", full_page=True)
        out["unnamed_controls"] = ppage.evaluate("""() => [...document.querySelectorAll('input, select, textarea, button')]
            .filter((e) => e.type !== 'hidden')
            .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !(e.textContent || '').trim())
            .map((e) => e.outerHTML.slice(0, 80))""")
        ppage.goto(f"{base}/ui/#/")
        ppage.wait_for_selector("#overview")
        ppage.focus("#nav-overview")
        ppage.keyboard.press("Tab")
        out["tab_reaches"] = ppage.evaluate("document.activeElement.id")
        ppage.keyboard.press("Enter")
        ppage.wait_for_selector("#jobs")
        out["enter_opened"] = ppage.evaluate("location.hash")
    except Exception:
        # What each open page showed when a step failed: a screenshot and the text of its main
        # area, so a failure on CI can be read without rerunning it.
        for c, context in enumerate(browser.contexts):
            for n, pg in enumerate(context.pages):
                try:
                    pg.screenshot(path=f"{shots}/failure-{c}-{n}.png", full_page=True)
                    main = pg.inner_text("#main", timeout=2000) if pg.query_selector("#main") else ""
                    print(f"page {c}-{n} at {pg.url}:\n{main[:3000]}", file=sys.stderr)
                except Exception as e:  # the page itself may be what broke
                    print(f"page {c}-{n}: {e}", file=sys.stderr)
        raise
    browser.close()

print(json.dumps(out))
