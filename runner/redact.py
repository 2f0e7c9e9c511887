"""Source URLs as they may be shown: in logs, errors, admin pages and API answers."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

MASK = "***"
# Query parameters that carry secrets: camera passwords, API tokens, presigned-URL signatures.
_SECRET_PARAMS = ("pass", "pwd", "token", "secret", "key", "auth", "signature", "credential")


def _secret_param(name: str) -> bool:
    name = name.lower()
    return name.startswith("x-amz-") or any(s in name for s in _SECRET_PARAMS)


def redact(source: str) -> str:
    """The source with its password and secret query values replaced by ***."""
    try:
        parts = urlsplit(source)
        parts.port  # noqa: B018 - a malformed netloc takes the fallback below
    except ValueError:
        return source.rsplit("@", 1)[-1] if "@" in source else source
    if not parts.scheme:
        return source
    netloc = parts.netloc
    if parts.password is not None:
        user = parts.username or ""
        netloc = f"{user}:{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_secret_param(k) for k, _ in pairs):
            query = urlencode([(k, MASK if _secret_param(k) else v) for k, v in pairs], safe="*")
    return parts._replace(netloc=netloc, query=query).geturl()
