"""Signed preview links: one scenario, its owner, a few minutes' worth of viewing.

A browser cannot send the ``Authorization`` header from an ``<img>`` tag or a link, so the
preview page and its sub-requests take ``?sig=``: a ``TimestampSigner`` signature (the project's
SECRET_KEY, salted per purpose) over the scenario id and its owner's id. It opens the preview
of that one scenario, as its owner, until MISIS_PREVIEW_LINK_TTL seconds after it was made;
it opens nothing else (the API proper takes header tokens only). Unlike the API token it
replaces in the URL, a leaked link (access log, browser history) is scoped and expires.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import quote

from django.conf import settings
from django.core import signing
from django.urls import reverse

from scenarios.models import Scenario

SALT = "misis.preview"


@dataclass(frozen=True)
class PreviewGrant:
    """What a valid link grants: viewing ``scenario_id`` as user ``owner_id``."""

    scenario_id: uuid.UUID
    owner_id: int
    sig: str


class PreviewLinkInvalid(Exception):
    """Tampered, forged, or signed for another purpose."""


class PreviewLinkExpired(PreviewLinkInvalid):
    """Signed by us, but older than MISIS_PREVIEW_LINK_TTL."""


def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=SALT)


def preview_link_sign(*, scenario: Scenario) -> str:
    """The ``sig`` value of a preview link of ``scenario`` for its owner, valid from now."""
    return _signer().sign(f"{scenario.pk}.{scenario.owner_id}")


def preview_url(*, scenario: Scenario) -> str:
    """The preview page's path with a fresh ``?sig=`` (relative to the API's origin)."""
    path = reverse("scenario-preview", args=[str(scenario.pk)])
    # ":" (the signer's separator) may stand in a query string as it is.
    return f"{path}?sig={quote(preview_link_sign(scenario=scenario), safe=':')}"


def preview_link_check(*, sig: str) -> PreviewGrant:
    """The grant of a link, or PreviewLinkExpired / PreviewLinkInvalid."""
    try:
        value = _signer().unsign(sig, max_age=settings.MISIS_PREVIEW_LINK_TTL)
    except signing.SignatureExpired:
        raise PreviewLinkExpired("preview link expired") from None
    except signing.BadSignature:
        raise PreviewLinkInvalid("preview link not valid") from None
    scenario_id, _, owner_id = value.partition(".")
    try:
        return PreviewGrant(uuid.UUID(scenario_id), int(owner_id), sig)
    except ValueError:
        raise PreviewLinkInvalid("preview link not valid") from None
