"""Small pieces of the API: Range parsing, URL signatures, the rate limiter, file names, loopback, API keys."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from api.rest.auth import is_loopback
from api.rest.bodies import safe_filename
from api.rest.content import parse_range
from api.rest.problems import ProblemError
from api.rest.ratelimit import RateLimiter
from api.rest.signing import UrlSigner
from core.apikeys import UnknownScope, create_key, hash_secret, list_keys, revoke_key, verify_key
from core.db.engine import read_session
from core.db.models import ApiKey
from core.settings import Settings


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-9", (0, 9)),
        ("bytes=90-", (90, 99)),
        ("bytes=90-500", (90, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=-500", (0, 99)),
        ("bytes=5-2", None),  # invalid: ignored, the whole body is sent
        ("bytes=0-1,5-6", None),  # multiple ranges: ignored
        ("items=0-1", None),
        ("garbage", None),
    ],
)
def test_parse_range(header: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=-0", "bytes=500-600"])
def test_unsatisfiable_range(header: str) -> None:
    with pytest.raises(ProblemError) as caught:
        parse_range(header, 100)
    assert caught.value.status_code == 416 and caught.value.headers == {"Content-Range": "bytes */100"}


def test_url_signatures() -> None:
    signer = UrlSigner(b"k", ttl_s=60)
    url = signer.sign("/v1/assets/a/content", now=1000)
    path, query = url.split("?")
    params = dict(part.split("=") for part in query.split("&"))
    assert params["expires"] == "1060"
    assert signer.check(path, 1060, params["signature"], now=1059) is None
    assert signer.check(path, 1060, params["signature"], now=1061) == "signature-expired"
    assert signer.check(path, 1061, params["signature"], now=1000) == "signature-invalid"  # moved expiry
    assert signer.check("/v1/assets/b/content", 1060, params["signature"], now=1000) == "signature-invalid"
    assert signer.check(path, 1060, "é" * 64, now=1000) == "signature-invalid"  # non-ASCII is just wrong
    assert UrlSigner(b"other", 60).check(path, 1060, params["signature"], now=1000) == "signature-invalid"


def test_rate_limiter_refills() -> None:
    limiter = RateLimiter(per_minute=2)
    assert [limiter.acquire("k", now=0.0) for _ in range(2)] == [0.0, 0.0]
    assert limiter.acquire("k", now=0.0) == pytest.approx(30.0)
    assert limiter.acquire("k", now=30.0) == 0.0
    assert limiter.acquire("other", now=0.0) == 0.0
    assert RateLimiter(0).acquire("k") == 0.0  # 0 disables it
    assert RateLimiter.retry_after_header(0.2) == "1"


@pytest.mark.parametrize("name", ["photo.png", "Ünïcode 1.jpg", ".hidden.png"])
def test_plain_file_names_pass(name: str) -> None:
    assert safe_filename(name, "f") == name


@pytest.mark.parametrize("name", ["", ".", "..", "../x.png", "a/b.png", "a\\b.png", "x\x00.png", "x\n.png", "x" * 256])
def test_paths_and_odd_file_names_are_refused(name: str) -> None:
    with pytest.raises(ProblemError) as caught:
        safe_filename(name, "files.filename")
    assert caught.value.status_code == 422 and caught.value.errors[0][0] == "files.filename"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.9.9.9", True), ("::1", True), ("[::1]", True), ("localhost", True),
     ("0.0.0.0", False), ("192.168.1.2", False), ("example.com", False)],
)  # fmt: skip
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_api_keys_store_only_a_hash(settings: Settings) -> None:
    created = create_key("ci", ["search", "search", "ingest"], settings)
    assert created.info.scopes == ("search", "ingest")
    with read_session(settings) as session:
        row = session.execute(select(ApiKey)).scalar_one()
        assert row.secret_sha256 == hash_secret(created.secret)
        stored = [str(getattr(row, c.key)) for c in ApiKey.__table__.columns]
    assert not any(created.secret in value for value in stored)
    info = verify_key(created.secret, settings)
    assert info is not None and info.allows("search") and not info.allows("admin")
    assert verify_key(created.secret + "x", settings) is None and verify_key("not-a-key", settings) is None
    revoke_key(created.info.id, settings)
    assert verify_key(created.secret, settings) is None
    assert [k.revoked for k in list_keys(settings)] == [True]
    admin = create_key("root", ["admin"], settings).info
    assert all(admin.allows(s) for s in ("search", "generate", "ingest", "admin"))
    with pytest.raises(UnknownScope):
        create_key("x", ["superuser"], settings)
    with pytest.raises(UnknownScope):
        create_key("x", [], settings)
