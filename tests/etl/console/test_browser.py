"""The console in a real headless browser: the pages render, a sync started from the form runs
on a real Celery worker against the sandbox, and its progress shows until it is done."""

from __future__ import annotations

import re

from tests.browser import chromium
from tests.helpers.console import PASSWORD, USER
from tests.helpers.sync import wait_until


def test_a_sync_started_from_the_form_runs_and_shows_its_progress(console, worker, store):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    with chromium(basic_auth=(USER, PASSWORD)) as browser:
        browser.get(console.url + "/runs")
        assert browser.title == "Runs · vtex-synerise"
        assert "No runs yet" in browser.find_element(By.ID, "runs").text

        browser.find_element(By.ID, "new-sync").click()
        assert browser.current_url.endswith("/runs/new")
        Select(browser.find_element(By.ID, "scope")).select_by_value("customers_created")
        for field, day in (("from", "2025-06-01"), ("to", "2026-06-01")):  # the sandbox's year
            browser.execute_script(
                "arguments[0].value = arguments[1]", browser.find_element(By.ID, field), day
            )
        browser.find_element(By.ID, "start").click()

        wait_until(lambda: re.search(r"/runs/\d+\?notice=started$", browser.current_url),
                   timeout=30, what="the redirect to the new run")  # fmt: skip
        assert browser.find_element(By.ID, "notice").text == "Sync started."
        run_id = int(re.search(r"/runs/(\d+)", browser.current_url).group(1))
        assert browser.find_element(By.ID, "progress").is_displayed()

        def finished() -> bool:  # the page refreshes itself every 3 s while the run is active
            heading = browser.find_element(By.TAG_NAME, "h1").text
            return heading.endswith("· done")

        wait_until(finished, timeout=120, interval=0.5, what="the page to show the run done")
        run = store.runs.get(run_id)
        assert run.status == "done" and run.sent_count > 0
        total = run.records_total
        assert f"{total} / {total} (100.0%)" in browser.find_element(By.ID, "progress").text
        counts = browser.find_element(By.ID, "counts").text
        assert f"sent {run.sent_count}" in counts and f"rejected {run.rejected_count}" in counts
        bar = browser.find_element(By.CSS_SELECTOR, "#progress .bar")
        assert bar.get_attribute("data-percent") == "100.0"
        sent_part = bar.find_element(By.CSS_SELECTOR, ".part-sent")
        assert sent_part.size["width"] > 0, "the bar draws the sent share"
        assert browser.find_elements(By.CSS_SELECTOR, "#rejects tbody tr"), "rejects by reason"

        browser.find_element(By.LINK_TEXT, "Runs").click()
        row = browser.find_element(By.ID, f"run-{run_id}")
        assert "done" in row.text and f"{total} / {total} (100.0%)" in row.text

        browser.find_element(By.LINK_TEXT, "Cursors").click()
        assert browser.find_element(By.ID, "cursors").is_displayed()
        browser.find_element(By.LINK_TEXT, "Realtime").click()
        assert browser.find_element(By.ID, "realtime").is_displayed()

        # Named records instead of dates: a selection run of exactly those.
        browser.get(console.url + "/runs/new")
        Select(browser.find_element(By.ID, "scope")).select_by_value("orders")
        for field in ("from", "to"):
            browser.find_element(By.ID, field).clear()
        browser.find_element(By.ID, "records").send_keys("1000000000001-01\n1000000000002-01")
        browser.find_element(By.ID, "start").click()
        wait_until(lambda: re.search(r"/runs/\d+\?notice=started$", browser.current_url),
                   timeout=30, what="the redirect to the selection run")  # fmt: skip
        selected = store.runs.get(int(re.search(r"/runs/(\d+)", browser.current_url).group(1)))
        assert (selected.scope, selected.kind) == ("orders", "selection")
