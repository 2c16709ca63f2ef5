"""The built site: offline assets, figures, tables, status page, and a Chromium screenshot.

`make test` builds the book first (`make book`), then runs these (`pytest -m site`).
"""
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from hyperbook.chapters import CHAPTERS, available_chapters
from hyperbook.results import REPO_ROOT
from hyperbook.targets import TARGETS

pytestmark = pytest.mark.site
HTML = REPO_ROOT / "book" / "_build" / "html"
SHOTS = REPO_ROOT / "book" / "_build" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--hide-scrollbars", "--virtual-time-budget=5000"]


@pytest.fixture(scope="module")
def site():
    if not (HTML / "index.html").exists():
        pytest.fail("the site is not built: run `make book` (make test does it before these tests)")
    return HTML


def chapter_pages(site):
    return [site / CHAPTERS[name].replace(".ipynb", ".html") for name in available_chapters()]


def test_no_page_loads_anything_from_the_internet(site):
    asset = re.compile(r"<(script|link|img|iframe)\b[^>]*\b(src|href)=[\"'](https?:)?//", re.I)
    offenders = []
    for page in site.rglob("*.html"):
        for m in asset.finditer(page.read_text(errors="replace")):
            tag = page.read_text(errors="replace")[m.start():m.start() + 160]
            if "<link" in tag.lower() and "stylesheet" not in tag.lower() and "preload" not in tag.lower() \
                    and "icon" not in tag.lower():
                continue                                   # rel=canonical etc. load nothing
            offenders.append(f"{page.relative_to(site)}: {tag}")
    assert not offenders, "\n".join(offenders[:10])


def test_math_is_rendered_by_a_vendored_mathjax(site):
    page = (site / CHAPTERS["hypernets"].replace(".ipynb", ".html")).read_text()
    scripts = re.findall(r"<script[^>]*src=\"([^\"]*mathjax[^\"]*)\"", page, re.I)
    assert scripts, "no MathJax script on the chapter page"
    for src in scripts:
        assert not src.startswith(("http", "//")), src
        assert (site / CHAPTERS["hypernets"]).parent.joinpath(src.split("?")[0]).resolve().exists(), src


def test_every_chapter_page_has_figures_and_tables(site):
    for page in chapter_pages(site):
        html = page.read_text()
        images = re.findall(r"<img[^>]*src=\"([^\"]+\.png)\"", html)
        assert len(images) >= 3, f"{page.name}: {len(images)} figures"
        for src in images:
            assert (page.parent / src).resolve().exists(), src
        assert "<table" in html, f"{page.name}: no table"
        assert "Traceback" not in html, f"{page.name}: a cell raised"


def test_every_target_has_an_anchor_in_its_chapter_and_a_row_on_the_status_page(site):
    status = (site / "status.html").read_text()
    built = set(available_chapters())
    for t in TARGETS:
        assert t.id in status, t.id
        if t.chapter in built:
            page = (site / CHAPTERS[t.chapter].replace(".ipynb", ".html")).read_text()
            assert f'id="{t.id.lower()}"' in page, f"{t.id}: no anchor in {t.chapter}"


def _main(html: str) -> str:
    """The page's article (what the chapter shows), without navigation and theme chrome."""
    m = re.search(r"<main\b.*?</main>", html, re.S)
    return m.group(0) if m else html


def test_no_table_cell_is_cut(site):
    cut = []
    for page in [*chapter_pages(site), site / "status.html"]:
        for cell in re.findall(r"<t[dh]\b[^>]*>(.*?)</t[dh]>", page.read_text(), re.S):
            text = re.sub(r"<[^>]+>", "", cell).strip()
            if text.endswith(("...", "\u2026")) or re.search(r"\w\.\.\.$", text):
                cut.append(f"{page.name}: {text[-80:]}")
    assert not cut, f"{len(cut)} truncated cells, e.g.\n" + "\n".join(cut[:10])


def test_every_figure_has_a_number_a_caption_and_alt_text(site):
    missing = []
    for page in chapter_pages(site):
        main = _main(page.read_text())
        outside = re.sub(r"<figure\b.*?</figure>", "", main, flags=re.S)
        for img in re.findall(r"<img\b[^>]*>", outside):
            missing.append(f"{page.name}: no caption: {img[:120]}")
        for fig in re.findall(r"<figure\b.*?</figure>", main, flags=re.S):
            if "caption-number" not in fig:
                missing.append(f"{page.name}: figure without a numbered caption")
            for alt in re.findall(r"<img\b[^>]*\balt=\"([^\"]*)\"", fig):
                # a file path (no spaces and a slash, or an image suffix), not prose such as "ODS / OIS"
                if not alt.strip() or re.search(r"\.(png|svg|jpg)$", alt) or re.fullmatch(r"\S*/\S*", alt):
                    missing.append(f"{page.name}: alt text {alt!r}")
    assert not missing, f"{len(missing)} problems, e.g.\n" + "\n".join(missing[:10])


def _ids(path: Path, cache={}) -> set:
    if path not in cache:
        cache[path] = set(re.findall(r"\bid=\"([^\"]+)\"", path.read_text(errors="replace")))
    return cache[path]


def test_no_internal_link_is_dead(site):
    dead = []
    for page in site.rglob("*.html"):
        if "_static" in page.parts or "_sources" in page.parts:
            continue
        for href in re.findall(r"<a\b[^>]*\bhref=\"([^\"]+)\"", page.read_text(errors="replace")):
            if re.match(r"^(https?:|mailto:|data:|javascript:)", href) or href.startswith("//"):
                continue
            target, _, frag = href.partition("#")
            path = (page.parent / target).resolve() if target else page
            if target and not path.exists():
                dead.append(f"{page.relative_to(site)}: {href} (no such file)")
            elif frag and path.suffix == ".html" and frag not in _ids(path):
                dead.append(f"{page.relative_to(site)}: {href} (no id {frag!r})")
    assert not dead, f"{len(dead)} dead links, e.g.\n" + "\n".join(dead[:10])


def test_status_links_reach_every_target_in_its_chapter(site):
    status = (site / "status.html").read_text()
    links = set(re.findall(r"href=\"(chapters/[^\"]+#[a-z0-9-]+)\"", status))
    built = set(available_chapters())
    expect = {t.id.lower() for t in TARGETS if t.chapter in built}
    assert {h.split("#")[1] for h in links} >= expect


def test_no_page_names_another_host_in_a_script(site):
    for page in site.rglob("*.html"):
        html = page.read_text(errors="replace")
        for script in re.findall(r"<script\b[^>]*>(.*?)</script>", html, re.S):
            assert not re.search(r"https?://(?!www\.w3\.org)", script), f"{page.name}: {script[:200]}"
        assert "thebe" not in html.lower(), f"{page.name}: Thebe leftovers"


def screenshot(url: str, out: Path, size: str) -> np.ndarray:
    from skimage.io import imread
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([CHROMIUM, *CHROME_FLAGS, f"--user-data-dir={out.parent / 'profile'}",
                    f"--window-size={size}", f"--screenshot={out}", url],
                   check=True, capture_output=True, timeout=120)
    return imread(out)[..., :3]


def dom(url: str) -> str:
    return subprocess.run([CHROMIUM, *CHROME_FLAGS, f"--user-data-dir={SHOTS / 'profile'}", "--dump-dom", url],
                          check=True, capture_output=True, text=True, timeout=120).stdout


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is absent (Debian: apt-get install chromium); "
                                              "the screenshot check needs it")
@pytest.mark.parametrize("page, size", [("index.html", "1280,900"), ("status.html", "1400,2400"),
                                         (CHAPTERS["hypernets"].replace(".ipynb", ".html"), "1280,4200"),
                                         (CHAPTERS["hecnn"].replace(".ipynb", ".html"), "1280,4200")])
def test_chromium_renders_theme_navigation_figure_and_table(site, page, size):
    url = (site / page).as_uri()
    rendered = dom(url)
    assert "bd-sidebar" in rendered or "bd-docs-nav" in rendered, "no navigation sidebar"
    assert "HyperNets" in rendered
    assert "<table" in rendered, "no table"
    if page.startswith("chapters"):
        assert re.search(r"<img[^>]+\.png", rendered), "no figure"
        assert "MathJax" in rendered or "mjx-" in rendered, "math not typeset"
    external = re.findall(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=\"((?:https?:)?//[^\"]+)\"", rendered)
    external = [e for e in external if "canonical" not in e]
    assert not external, f"the rendered page requests other hosts: {external[:5]}"
    img = screenshot(url, SHOTS / (Path(page).stem + ".png"), size)
    # the theme paints a white page with coloured navigation, text and figures: many colours, not blank
    colours = len(np.unique(img.reshape(-1, 3) // 16, axis=0))
    assert colours > 20, f"screenshot of {page} looks blank ({colours} colour bins)"
    assert (img.mean(axis=2) < 128).mean() > 0.005, "hardly any dark pixels (no text?)"
