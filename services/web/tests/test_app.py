"""The web client's routes, headers and errors, through Starlette's test client."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from html.parser import HTMLParser

import pytest
from starlette.testclient import TestClient

from opencouch.web.app import PAGES_DIR, STATIC_DIR, create_app
from opencouch.web.settings import Settings

SETTINGS = Settings(
    api_base_url="https://voice-api.example.org/",
    realtime_origin="https://realtime.example.org/v1",
)

EXPECTED_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "connect-src 'self' https://voice-api.example.org https://realtime.example.org; "
    "media-src 'self' blob:; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(SETTINGS), raise_server_exceptions=False) as test_client:
        yield test_client


def assert_security_headers(headers: Mapping[str, str]) -> None:
    assert headers["content-security-policy"] == EXPECTED_CSP
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cross-origin-opener-policy"] == "same-origin"
    policy = headers["permissions-policy"]
    assert "microphone=(self)" in policy
    # Every other listed feature is switched off entirely.
    others = [
        part.strip() for part in policy.split(",") if not part.strip().startswith("microphone")
    ]
    assert others
    assert all(part.endswith("=()") for part in others)


@pytest.mark.parametrize(
    "path",
    [
        "/voice",
        "/voice/realtime-dev",
        "/config.json",
        "/healthz",
        "/static/css/voice.css",
        "/static/js/voice.js",
        "/no/such/page",
        "/static/no-such-file.js",
    ],
)
def test_every_response_carries_the_security_headers(client: TestClient, path: str) -> None:
    assert_security_headers(client.get(path).headers)


def test_root_redirects_to_the_voice_page(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)
    assert response.status_code in (302, 307)
    assert response.headers["location"] == "/voice"
    assert_security_headers(response.headers)


@pytest.mark.parametrize(
    ("path", "marker"),
    [("/voice", 'id="transcript"'), ("/voice/realtime-dev", 'id="events"')],
)
def test_pages_are_served_as_html(client: TestClient, path: str, marker: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"
    assert marker in response.text


def test_head_is_answered_like_get(client: TestClient) -> None:
    response = client.head("/voice")
    assert response.status_code == 200
    assert response.content == b""


def test_config_json_gives_the_api_base_url(client: TestClient) -> None:
    response = client.get("/config.json")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    # The trailing slash of the setting is dropped, so the page can append "/api/...".
    assert response.json() == {"api_base_url": "https://voice-api.example.org"}


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["/nope", "/static/js/nope.js", "/voice/other"])
def test_unknown_paths_are_a_json_not_found(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"]["code"] == "not_found"
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]


def test_wrong_method_is_a_json_error_with_allow(client: TestClient) -> None:
    response = client.post("/voice")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert "GET" in response.headers["allow"]
    assert_security_headers(response.headers)


@pytest.mark.parametrize(
    ("path", "media_type"),
    [("/static/js/voice.js", "text/javascript"), ("/static/css/voice.css", "text/css")],
)
def test_assets_have_types_that_pass_nosniff(
    client: TestClient, path: str, media_type: str
) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == media_type


def test_default_settings_allow_the_local_gateway_and_emulator() -> None:
    with TestClient(create_app(Settings())) as local:
        csp = local.get("/healthz").headers["content-security-policy"]
        config = local.get("/config.json").json()
    assert "connect-src 'self' http://127.0.0.1:8000 http://127.0.0.1:8090;" in csp
    assert config == {"api_base_url": "http://127.0.0.1:8000"}


def test_settings_reject_a_non_http_api_base_url() -> None:
    with pytest.raises(ValueError, match="http"):
        Settings(api_base_url="javascript:alert(1)")


# -- the static files themselves -------------------------------------------------------------


class _PageScan(HTMLParser):
    """Collects what a page loads and anything a strict CSP would block."""

    def __init__(self) -> None:
        super().__init__()
        self.assets: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if any(name == "style" or name.startswith("on") for name, _ in attrs):
            self.inline.append(f"<{tag}> with an inline style or handler")
        if tag == "style":
            self.inline.append("<style>")
        if tag == "script":
            if values.get("src"):
                self.assets.append(str(values["src"]))
            else:
                self.inline.append("<script> without src")
        if tag == "link" and values.get("href"):
            self.assets.append(str(values["href"]))


@pytest.mark.parametrize("page", ["voice.html", "realtime-dev.html"])
def test_pages_have_nothing_inline_and_their_assets_exist(client: TestClient, page: str) -> None:
    scan = _PageScan()
    scan.feed((PAGES_DIR / page).read_text())
    assert scan.inline == []
    assert scan.assets
    for asset in scan.assets:
        assert client.get(asset).status_code == 200, asset


def test_module_imports_resolve() -> None:
    for script in (STATIC_DIR / "js").glob("*.js"):
        for target in re.findall(r"from '(\./[^']+)'", script.read_text()):
            assert (script.parent / target).is_file(), f"{script.name} imports missing {target}"


# JS + CSS the pages may load, all of it, as the web service sends it: gzip-compressed, with no
# build step or minifier. (The raw total is printed when the budget is exceeded.)
ASSET_BUDGET_BYTES = 60 * 1024


def test_scripts_and_styles_stay_within_the_budget(client: TestClient) -> None:
    assets = [*(STATIC_DIR / "js").glob("*.js"), *(STATIC_DIR / "css").glob("*.css")]
    sent = {}
    for asset in assets:
        response = client.get(
            f"/static/{asset.parent.name}/{asset.name}", headers={"Accept-Encoding": "gzip"}
        )
        assert response.headers["content-encoding"] == "gzip", asset.name
        sent[asset.name] = response.num_bytes_downloaded
    raw = sum(asset.stat().st_size for asset in assets)
    assert sum(sent.values()) < ASSET_BUDGET_BYTES, (raw, sorted(sent.items(), key=lambda s: -s[1]))


def test_no_secret_or_key_is_in_the_pages_or_assets() -> None:
    files = [*PAGES_DIR.glob("*.html"), *STATIC_DIR.rglob("*.js"), *STATIC_DIR.rglob("*.css")]
    for path in files:
        text = path.read_text()
        assert not re.search(r"\b(sk|ek)[-_][A-Za-z0-9]{6,}", text), path.name
        assert "Bearer " not in text or path.name in {"api.js", "call.js"}, path.name
