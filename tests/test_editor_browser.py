"""The editor in a real browser: headless Chromium (Debian's package, driven through Playwright) loads the page,
uploads an image, chooses a target and reads the result, which is `stargan translate`'s PNG for the command the
page shows, pixel for pixel; the download is that PNG; bad uploads get a one-line message, no trace.

Skipped, with the reason, where Gradio (`pip install -e ".[app]"`), Playwright (`pip install playwright`) or
Chromium (`apt-get install chromium`; never downloaded by the test) is missing. Set EDITOR_SCREENSHOT=PATH to
keep the page's screenshot (of a random tiny model)."""
from __future__ import annotations

import os
import shlex
import shutil
import socket
import urllib.request
from pathlib import Path
from urllib.parse import urljoin, urlparse

import numpy as np
import pytest
from conftest import make_image_folder
from conftest import run_cli as run
from PIL import Image

CHROMIUM = Path(os.environ.get("EDITOR_TEST_CHROMIUM", "/usr/bin/chromium"))
# A browser that touches nothing but the page: no GPU, no background or update traffic, no first-run UI.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
WAIT_MS = 120_000  # the first page load and the first translation share 2 CPU cores with other work

pytest.importorskip("gradio", reason='the app extra is not installed: pip install -e ".[app]"')
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install playwright")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::Warning:gradio.queueing"),  # Gradio's own use of pandas
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
]

from test_editor import SHAPES, stargan_checkpoint  # noqa: E402
from test_translate_safety import _cyclegan_checkpoint  # noqa: E402

from common.labels.space import LabelSpace  # noqa: E402  (after the skips: these need the app extra)
from stargan.editor.app import build_app, serve  # noqa: E402
from stargan.editor.session import EditorSession  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(checkpoint: Path):
    session = EditorSession.open(checkpoint, "cpu")
    blocks = build_app(session)
    try:
        yield session, serve(blocks, "127.0.0.1", free_port())
    finally:
        blocks.close()
        session.close()


@pytest.fixture(scope="module")
def editor(tmp_path_factory):
    yield from _serve(stargan_checkpoint(tmp_path_factory.mktemp("editor") / "stargan.pt",
                                         LabelSpace(["shapes"], [SHAPES])))


@pytest.fixture(scope="module")
def cyclegan_editor(tmp_path_factory):
    yield from _serve(_cyclegan_checkpoint(tmp_path_factory.mktemp("editor") / "cyclegan.pt", "resnet_6blocks"))


@pytest.fixture
def page(tmp_path):
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            accept_downloads=True)
        try:
            yield context.new_page()
        finally:
            context.close()


def command_shown(page) -> str:
    return page.locator("#command textarea").input_value()


def wait_for_command(page, fragment: str) -> str:
    page.wait_for_function("f => (document.querySelector('#command textarea')?.value || '').includes(f)",
                           arg=fragment, timeout=WAIT_MS)
    return command_shown(page)


def assert_result_is_translates_png(page, url: str, shown: str, image: Path, tmp_path: Path) -> None:
    """The page's result image and its download are the PNG of the command line it shows."""
    args = shlex.split(shown)[1:]
    args[args.index("--input") + 1] = str(image)
    args[args.index("--output") + 1] = str(tmp_path / "cli")
    run(args)
    cli_png = tmp_path / "cli" / f"{image.stem}.png"

    src = page.locator("#result-image img").get_attribute("src")
    with urllib.request.urlopen(urljoin(url, src), timeout=30) as response:
        (tmp_path / "shown.png").write_bytes(response.read())
    shown_pixels = np.asarray(Image.open(tmp_path / "shown.png").convert("RGB"))
    assert shown_pixels.shape == np.asarray(Image.open(image)).shape
    assert np.array_equal(shown_pixels, np.asarray(Image.open(cli_png)))

    with page.expect_download(timeout=WAIT_MS) as download:
        page.locator("#download").click()
    assert download.value.suggested_filename == cli_png.name
    assert Path(download.value.path()).read_bytes() == cli_png.read_bytes()


def test_page_result_is_translates_png(editor, page, tmp_path):
    session, url = editor
    image = make_image_folder(tmp_path / "in", 1, size=(27, 21), seed=5)[0]
    [reading] = session.read(image)
    colour = next(n for n, v in zip(SHAPES.groups[0].names, reading.decided) if v < 0.5)  # one it does not read

    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(url)
    page.locator("#input-image input[type=file]").set_input_files(str(image))
    wait_for_command(page, "--target ")
    assert "probability" in page.locator("#reading").inner_text()
    read_choice = session.initial_values(0, reading)[0]  # the controls start at what D reads
    assert page.locator(f"#attr-0-0 input[value='{read_choice}']").is_checked()

    page.locator(f"#attr-0-0 [data-testid='{colour}-radio-label']").click()
    shown = wait_for_command(page, f"--target {colour}=1 ")
    assert shown == f"stargan translate --checkpoint {session.source} --input {image.name} --output edited " \
                    f"--target {colour}=1 --device cpu"

    assert_result_is_translates_png(page, url, shown, image, tmp_path)
    assert any(u.startswith(url) for u in requested)  # the listener saw the page's own files
    outside = [u for u in requested if urlparse(u).scheme in ("http", "https") and urlparse(u).hostname != "127.0.0.1"]
    assert not outside, f"the page loaded files from elsewhere: {outside}"

    page.screenshot(path=str(tmp_path / "editor.png"), full_page=True)
    assert Image.open(tmp_path / "editor.png").size[0] > 0
    if os.environ.get("EDITOR_SCREENSHOT"):
        shutil.copyfile(tmp_path / "editor.png", os.environ["EDITOR_SCREENSHOT"])


def test_cyclegan_direction_on_the_page(cyclegan_editor, page, tmp_path):
    session, url = cyclegan_editor
    image = make_image_folder(tmp_path / "in", 1, size=(30, 17), seed=6)[0]
    page.goto(url)
    assert page.locator("#reading").inner_text().strip() == ""  # no labels to read
    page.locator("#input-image input[type=file]").set_input_files(str(image))
    wait_for_command(page, "--direction AtoB ")
    page.locator("#option-direction [data-testid='BtoA-radio-label']").click()
    shown = wait_for_command(page, "--direction BtoA ")
    assert shown == f"stargan translate --checkpoint {session.source} --input {image.name} --output edited " \
                    "--direction BtoA --device cpu"
    assert_result_is_translates_png(page, url, shown, image, tmp_path)


def _broken(path: Path) -> None:
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really an image")


def _too_big(path: Path) -> None:
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(21 * 2**20))


def _too_wide(path: Path) -> None:
    Image.new("RGB", (4100, 10)).save(path)


@pytest.mark.parametrize("make, message, sent", [
    (_broken, "upload.png: cannot read image", True),
    # Gradio's own limit, checked in the browser: the file is never sent and the previous image stays.
    (_too_big, 'exceed the maximum allowed size of 20.0 Mb: "upload.png"', False),
    (_too_wide, "upload.png: 4100x10 pixels; the editor takes up to 4096 pixels a side", True),
])
def test_bad_uploads_are_a_message_on_the_page(editor, page, tmp_path, make, message, sent):
    _, url = editor
    good = make_image_folder(tmp_path / "in", 1, size=(16, 16))[0]
    upload = tmp_path / "upload.png"
    make(upload)
    page.goto(url)
    page.locator("#input-image input[type=file]").set_input_files(str(good))
    before = wait_for_command(page, "--target ")
    page.locator("#input-image input[type=file]").set_input_files(str(upload))  # in place of the good one
    page.get_by_text(message).wait_for(timeout=WAIT_MS)
    assert "Traceback" not in page.content()
    if sent:  # nothing of the previous image is left to edit
        assert command_shown(page) == "" and page.locator("#result-image img").count() == 0
    else:
        assert command_shown(page) == before and page.locator("#result-image img").count() == 1
