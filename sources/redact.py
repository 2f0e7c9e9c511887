"""Source URLs as they may be shown: in logs, errors, admin pages and API answers.

Camera firmwares put credentials wherever they like (``?psw=``, ``?loginpas=``, ``;pwd=`` path
parameters, a token as the URL's user, a URL with credentials nested in a parameter), so this
masks by shape rather than by a list of known names: the password of every userinfo (the user
too when it is alone or too long to be a login name), and every parameter value whose name
looks like a secret, in the path, the query and the fragment.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

MASK = "***"
# A parameter whose (decoded, lower-cased) name contains one of these holds a secret: passwords
# (pass, pas, pwd, psw), tokens, signatures, keys, secrets, auth, credentials, sessions.
_SECRET_NAME = re.compile(r"pas|pwd|psw|token|sig|key|secret|auth|cred|sess|jwt")
# Longer than any login name: a user this long is a token (``TOKEN:x-oauth-basic@``).
_LONG_USER = 32
# user:password@ after a path separator, "=" or the start (a URL nested in a path or a value).
_USERINFO = re.compile(r"(?<![^/=;&?#])([^/?#@:;&=\s]*):[^/?#@\s]*@")
# //token@: a user with no password after "//".
_BARE_USER = re.compile(r"//[^/?#@:\s]+@")


def _secret_name(name: str) -> bool:
    name = unquote(name).lower()
    return name.startswith("x-amz-") or _SECRET_NAME.search(name) is not None


def _userinfo(netloc: str) -> str:
    if "@" not in netloc:
        return netloc
    userinfo, host = netloc.rsplit("@", 1)
    user, colon, _ = userinfo.partition(":")
    if colon and len(unquote(user)) <= _LONG_USER:
        return f"{user}:{MASK}@{host}"
    return f"{MASK}:{MASK}@{host}" if colon else f"{MASK}@{host}"


def _nested(value: str) -> str:
    """A parameter value that holds a URL (maybe percent-encoded), redacted; else as given."""
    decoded = unquote(value)
    if "@" not in decoded and "://" not in decoded:
        return value
    shown = redact(decoded)
    return shown if shown != decoded else value


def _params(text: str, separators: str) -> str:
    """``text`` with the values of secret-looking ``name=value`` pieces masked."""
    pieces = re.split(f"([{separators}])", text)
    for i, piece in enumerate(pieces):
        name, eq, value = piece.partition("=")
        if not eq:
            continue
        pieces[i] = f"{name}={MASK}" if name and _secret_name(name) else f"{name}={_nested(value)}"
    shown = "".join(pieces)
    shown = _USERINFO.sub(lambda m: f"{m.group(1)}:{MASK}@", shown)
    return _BARE_USER.sub(f"//{MASK}@", shown)


def redact(source: str) -> str:
    """The source with its credentials and secret parameter values replaced by ***."""
    try:
        parts = urlsplit(source)
        parts.port  # noqa: B018 - a malformed netloc takes the fallback below
    except ValueError:
        return source.rsplit("@", 1)[-1] if "@" in source else source
    return parts._replace(
        netloc=_userinfo(parts.netloc),
        path=_params(parts.path, "/;&"),
        query=_params(parts.query, "&;"),
        fragment=_params(parts.fragment, "&;"),
    ).geturl()
