"""Debian's chromium, headless, driven by selenium through the system chromedriver.

``make browser`` installs both. Chromium runs with the flags that keep it off the network
(no background networking, component updates or sync) and a new empty profile; its
performance log carries the DevTools Network events, so a test sees every request the page
made from the browser's side.

``python -m tests.dashboard.browser URL OUT.png`` writes a full-page screenshot (the README's
``docs/dashboard.png`` is made this way against the demo's dashboard).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
)


def missing() -> str | None:
    """Why the browser cannot run here (None when it can)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            return (
                f"{path} is missing: the browser tests need Debian's chromium and "
                "chromium-driver (`make browser` installs them as root: apt-get install "
                "chromium chromium-driver)"
            )
    return None


@contextmanager
def chrome(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A headless Chromium session with a fresh profile, stopped (and its profile removed)
    at the end."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    why = missing()
    if why:
        raise RuntimeError(why)
    profile = tempfile.mkdtemp(prefix="rebalancer-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def requested_urls(driver: Any) -> list[str]:
    """Every URL the page asked for since the last call (DevTools Network events)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
        elif message.get("method") == "Network.webSocketCreated":
            urls.append(message["params"]["url"])
    return urls


def full_screenshot(driver: Any, out: Path, *, colours: int = 0) -> Path:
    """The whole page as PNG (beyond the window), optionally reduced to ``colours`` colours
    to keep a committed picture small."""
    import base64

    size = driver.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
    )
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1},
        },
    )
    out.write_bytes(base64.b64decode(shot["data"]))
    if colours:
        from PIL import Image

        with Image.open(out) as img:
            img.convert("RGB").quantize(colours, method=Image.Quantize.MEDIANCUT).save(
                out, optimize=True
            )
    return out


if __name__ == "__main__":
    import time

    url, target = sys.argv[1], Path(sys.argv[2])
    with chrome(width=1400, height=900) as d:
        d.get(url)
        time.sleep(3)  # the live panels and the charts
        print(full_screenshot(d, target, colours=128))
