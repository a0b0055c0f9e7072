"""Signed link tokens: they read back as signed, and nothing else reads at all."""

from __future__ import annotations

import base64
import string
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from docpipe.domain.errors import BadLinkToken, InvalidInput, MalformedInput
from docpipe.domain.idempotency import RETENTION, clean_idempotency_key, completed, renewed
from docpipe.domain.links import (
    Disposition,
    DownloadGrant,
    Grant,
    LinkSigner,
    SigningKey,
    UploadGrant,
)

OLD_SECRET = "o" * 43
NEW_SECRET = "n" * 43
SIGNER = LinkSigner([SigningKey(NEW_SECRET), SigningKey(OLD_SECRET)])
TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_"

moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
).map(lambda moment: moment.replace(microsecond=0))
downloads = st.builds(
    DownloadGrant,
    owner=st.text(max_size=64),
    document_id=st.text(max_size=40),
    links_epoch=st.integers(min_value=0, max_value=2**63 - 1),
    expires_at=moments,
    disposition=st.sampled_from(Disposition),
)
uploads = st.builds(
    UploadGrant,
    owner=st.text(max_size=64),
    nonce=st.text(max_size=32),
    expires_at=moments,
    max_bytes=st.none() | st.integers(min_value=1, max_value=2**62),
    filename=st.none() | st.text(max_size=100),
    tags=st.lists(st.text(max_size=20), max_size=5).map(tuple),
)
grants = downloads | uploads
EXAMPLE = DownloadGrant(
    "alice", "0190b8f6-7d1e-7c2a-8f3e-0123456789ab", 3, datetime(2030, 1, 1, tzinfo=UTC), Disposition.INLINE
)


@given(grants)
def test_a_signed_grant_reads_back_equal(grant: Grant) -> None:
    assert SIGNER.read(SIGNER.sign(grant)) == grant


@given(grants)
def test_tokens_are_url_safe(grant: Grant) -> None:
    token = SIGNER.sign(grant)
    assert set(token) <= set(TOKEN_ALPHABET)


@given(st.text(max_size=3000))
def test_any_text_is_a_grant_or_a_bad_token(text: str) -> None:
    with pytest.raises(BadLinkToken):
        SIGNER.read(text)


@given(st.binary(max_size=400))
def test_any_bytes_in_base64_are_a_bad_token(raw: bytes) -> None:
    with pytest.raises(BadLinkToken):
        SIGNER.read(base64.urlsafe_b64encode(raw).rstrip(b"=").decode())


def test_changing_any_character_of_a_token_breaks_it() -> None:
    token = SIGNER.sign(EXAMPLE)
    for position, original in enumerate(token):
        for replacement in TOKEN_ALPHABET:
            if replacement != original:
                tampered = token[:position] + replacement + token[position + 1 :]
                with pytest.raises(BadLinkToken):
                    SIGNER.read(tampered)


@given(st.data())
def test_flipping_any_bit_of_a_token_breaks_it(data: st.DataObject) -> None:
    token = SIGNER.sign(data.draw(grants))
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    bit = data.draw(st.integers(min_value=0, max_value=len(raw) * 8 - 1))
    raw[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(BadLinkToken):
        SIGNER.read(base64.urlsafe_b64encode(raw).rstrip(b"=").decode())


def test_truncated_and_extended_tokens_are_bad() -> None:
    token = SIGNER.sign(EXAMPLE)
    for tampered in (token[:-1], token[:-4], token[1:], token + "A", token + "AAAA", token + "=", ""):
        with pytest.raises(BadLinkToken):
            SIGNER.read(tampered)


def test_every_listed_key_verifies_and_the_first_signs() -> None:
    signed_before_rotation = LinkSigner([SigningKey(OLD_SECRET)]).sign(EXAMPLE)
    assert SIGNER.read(signed_before_rotation) == EXAMPLE
    signed_now = SIGNER.sign(EXAMPLE)
    assert LinkSigner([SigningKey(NEW_SECRET)]).read(signed_now) == EXAMPLE
    with pytest.raises(BadLinkToken):
        LinkSigner([SigningKey(OLD_SECRET)]).read(signed_now)


def test_a_key_removed_from_the_list_no_longer_verifies() -> None:
    token = LinkSigner([SigningKey(OLD_SECRET)]).sign(EXAMPLE)
    with pytest.raises(BadLinkToken):
        LinkSigner([SigningKey(NEW_SECRET)]).read(token)


def test_a_download_token_never_reads_as_an_upload() -> None:
    grant = SIGNER.read(SIGNER.sign(EXAMPLE))
    assert isinstance(grant, DownloadGrant)
    assert not isinstance(grant, UploadGrant)


def test_a_signing_key_never_shows_its_secret() -> None:
    key = SigningKey(NEW_SECRET)
    assert NEW_SECRET not in repr(key)
    assert NEW_SECRET not in repr([key])
    assert NEW_SECRET not in str(key)


def test_a_short_signing_key_is_refused() -> None:
    with pytest.raises(InvalidInput):
        SigningKey("too short")


def test_an_upload_link_allows_the_smaller_of_its_cap_and_the_servers() -> None:
    grant = UploadGrant("a", "n", datetime(2030, 1, 1, tzinfo=UTC), 100, None, ())
    assert grant.allowed_bytes(1000) == 100
    assert grant.allowed_bytes(10) == 10
    uncapped = UploadGrant("a", "n", datetime(2030, 1, 1, tzinfo=UTC), None, None, ())
    assert uncapped.allowed_bytes(1000) == 1000


def test_an_upload_links_claim_is_kept_while_the_link_works() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    grant = UploadGrant("a", "n", now + 3 * RETENTION, None, None, ())
    claim = grant.claim(now)
    assert claim.expires_at == grant.expires_at
    later = now + timedelta(hours=1)
    assert renewed(claim, later).expires_at == grant.expires_at
    assert completed(claim, later).expires_at == grant.expires_at
    short = UploadGrant("a", "n", now + timedelta(minutes=5), None, None, ())
    assert short.claim(now).expires_at == now + RETENTION


def test_no_idempotency_key_can_use_an_upload_links_claim() -> None:
    key = (
        UploadGrant("a", "nonce", datetime(2030, 1, 1, tzinfo=UTC), None, None, ())
        .claim(datetime(2030, 1, 1, tzinfo=UTC))
        .key
    )
    with pytest.raises(MalformedInput):
        clean_idempotency_key(key)
