"""The case page in headless Chromium (the shared ``browser`` fixture): shown, scrollable, offline, phone-sized."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from kicc_analysis.teaching import TeachingCase, key_image, render_case
from kicc_analysis.teaching.images import apply_window


@pytest.fixture(scope="module")
def page_path(shared_dir, tmp_path_factory):
    root = shared_dir / "data" / "ct" / "covid_ny_sbu" / "A002304" / "axial"
    if not root.is_dir():
        pytest.skip(f"{root} absent: the real COVID CT slices are needed")
    from kicc_analysis.imaging import load_ct

    slices = [load_ct(p) for p in sorted(root.glob("*.dcm"))]
    text = {"en": "Case", "ko": "증례"}
    case = TeachingCase(
        title=text,
        presentation={"en": "Patient aged 55-59 years, male.", "ko": "55-59세 남성."},
        question={"en": "Diagnosis?", "ko": "진단은?"},
        options=[{"en": "COVID-19 pneumonia", "ko": "코로나19 폐렴"}],
        answer={"en": "COVID-19 pneumonia", "ko": "코로나19 폐렴"},
        discussion=text,
        teaching_points=[text],
        key_images={"ct_axial": key_image(slices[-1])},
        stack=[apply_window(sitk.GetArrayFromImage(s)[0], -600, 1500)[::4, ::4] for s in slices] * 2,
        stack_window="W 1500 / L -600 HU",
        identifying_values=["Stony Brook"],
    )
    return render_case(case, tmp_path_factory.mktemp("page") / "case", quiz=True)


def test_case_page_in_browser(browser, page_path):
    page = browser.new_page(width=1280, height=900)
    page.open(page_path)
    shot = page.screenshot("teaching_case_desktop")
    from PIL import Image

    with Image.open(shot) as im:
        grey = np.asarray(im.convert("L"), dtype=float)
    assert grey.std() > 20  # not blank: the CT images are drawn
    assert page.evaluate("document.getElementById('answer').hidden") is True
    assert page.evaluate("getComputedStyle(document.getElementById('answer')).display") == "none"
    assert page.evaluate("document.getElementById('counter').textContent") == "1 / 4"
    page.page.mouse.move(200, 200)
    page.evaluate("document.getElementById('stack').scrollIntoView()")
    page.page.focus("#stack")
    page.page.keyboard.press("ArrowDown")
    assert page.evaluate("document.getElementById('counter').textContent") == "2 / 4"
    page.page.fill("#slider", "4")
    page.page.dispatch_event("#slider", "input")
    assert page.evaluate("document.getElementById('counter').textContent") == "4 / 4"
    shown = "[...document.querySelectorAll('#stack img.slice')].map(e => getComputedStyle(e).display !== 'none')"
    assert page.evaluate(shown) == [False, False, False, True]  # only the current slice is displayed
    page.page.click("#reveal")
    assert page.evaluate("document.getElementById('answer').hidden") is False
    assert page.network_requests(external_only=True) == []


def test_injected_external_image_is_blocked_by_csp(browser, page_path):
    page = browser.new_page()
    page.open(page_path)
    failures: list[str] = []
    page.page.on("requestfailed", lambda request: failures.append(f"{request.url} {request.failure}"))
    page.evaluate(
        """() => { window.__csp = []; document.addEventListener('securitypolicyviolation',
        e => window.__csp.push(e.blockedURI)); const i = document.createElement('img');
        i.src = 'https://example.org/tracker.png'; document.body.appendChild(i); }"""
    )
    page.wait_until("window.__csp.length > 0", timeout_s=10)
    assert page.evaluate("window.__csp")[0].startswith("https://example.org")
    # Chromium reports the attempt as a request, which CSP blocks before anything leaves the machine
    external = page.network_requests(external_only=True)
    assert external == ["https://example.org/tracker.png"]
    assert external == page.failed_requests
    assert failures == ["https://example.org/tracker.png csp"]  # failure reason: blocked by the CSP


def test_case_page_fits_a_phone(browser, page_path):
    page = browser.new_page(width=390, height=844)
    page.open(page_path)
    page.screenshot("teaching_case_phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
