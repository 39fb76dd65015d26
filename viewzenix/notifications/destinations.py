"""Notification destinations: apprise URLs validated, checked against SSRF, encrypted, masked.

A destination is an apprise URL (``tgram://bot_token/chat_id``, ``discord://id/token``,
``ntfys://topic``, ``mailtos://...``; apprise docs, "Supported Notifications"). It is parsed by
apprise itself (``Apprise.instantiate``), so what we store is what apprise will send to.

Server-side request forgery: apprise posts to any host it is given, loopback included
(apprise 2.2.0, checked), and in a multi-user server a user must not make it call our own network. Refused:
the generic HTTP schemes that take any host (``json://``, ``xml://``, ``form://`` and their
``s`` variants), and any URL whose target host resolves to a loopback, private, link-local,
reserved, multicast or unspecified address. The target is the service's fixed API host when the
plugin has one (Telegram: ``api.telegram.org``), else the host in the URL (a self-hosted ntfy,
Gotify, Matrix...), plus the SMTP host of e-mail. The check runs when a destination is saved and
again before every send (a name may resolve elsewhere later). A host that does not resolve is
accepted when saved (the send will fail and be recorded) and refused at send.

``allow_private``: ``host:port`` pairs exempt from the address check — the
``NOTIFY_ALLOW_PRIVATE_HOSTS`` setting, for a test's or a developer's local fakes only.
"""

from __future__ import annotations

import ipaddress
import socket
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from viewzenix import crypto
from viewzenix.exceptions import ViewzenixError
from viewzenix.notifications import EVENTS, LEVELS

# Generic notification plugins that post to whatever host the URL names: refused with their own code.
REFUSED_SCHEMES = frozenset({"json", "jsons", "xml", "xmls", "form", "forms"})
# The services a destination may use (an allowlist): each talks to its vendor's fixed
# host or to a host the URL names, which ``check_targets`` then refuses when it is internal.
# Anything else — syslog://, dbus://, windows://, a plugin with no host to check — is refused.
ALLOWED_SCHEMES = frozenset(
    {
        "tgram", "discord", "slack", "pover", "ntfy", "ntfys", "mailto", "mailtos",
        "gotify", "gotifys", "matrix", "matrixs", "msteams", "mmost", "mmosts", "rocket", "rockets",
        "zulip", "pbul", "signal", "signals", "opsgenie", "pagerduty", "twilio", "apprise", "apprises",
    }
)  # fmt: skip


class DestinationRefused(ViewzenixError):
    """This notification destination cannot be used.

    Codes: ``invalid_destination`` (apprise cannot parse it, or an unknown id),
    ``destination_scheme_refused`` (json/xml/form), ``destination_host_refused`` (an internal
    or unresolvable target). Answered 422 with the message under
    ``errors.json.notification_preferences``.
    """

    status = 422
    code = "invalid_destination"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message, code=code, errors={"json": {"notification_preferences": [message]}})


@dataclass(frozen=True)
class Parsed:
    """A destination apprise understood: its plugin, service name and masked URL."""

    plugin: Any
    service: str
    masked: str


def parse(url: str, *, allow_private: Collection[str] = (), resolve: bool = True) -> Parsed:
    """Parse ``url`` with apprise and refuse SSRF targets; return the plugin and masked URL.

    Raises ``DestinationRefused`` with code ``invalid_destination`` (apprise cannot parse it),
    ``destination_scheme_refused`` (json/xml/form, or a service outside ``ALLOWED_SCHEMES``) or
    ``destination_host_refused`` (resolves to a loopback/private/link-local address, or does not
    resolve when ``resolve`` is strict).
    """
    import apprise

    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in REFUSED_SCHEMES:
        raise DestinationRefused(
            f"{scheme}:// posts to any host and is not allowed; use a named service "
            "(tgram://, discord://, slack://, ntfys://, mailtos://, ...).",
            "destination_scheme_refused",
        )
    plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if plugin is None:
        raise DestinationRefused(
            "apprise does not understand this URL (unknown service or missing parts); see "
            "https://github.com/caronc/apprise/wiki for each service's URL format."
        )
    if scheme not in ALLOWED_SCHEMES:
        raise DestinationRefused(
            f"{scheme or 'this'}:// is not a supported notification service; use one of "
            + ", ".join(f"{s}://" for s in sorted(ALLOWED_SCHEMES))
            + ".",
            "destination_scheme_refused",
        )
    check_targets(plugin, allow_private=allow_private, strict=False)
    return Parsed(plugin=plugin, service=str(plugin.service_name), masked=plugin.url(privacy=True))


def targets(plugin: Any) -> list[tuple[str, int | None]]:
    """Return the (host, port) pairs ``plugin`` will connect to."""
    fixed = getattr(plugin, "notify_url", None)
    if getattr(plugin, "mode", None) == "cloud":
        fixed = getattr(plugin, "cloud_notify_url", fixed)
    found: list[tuple[str, int | None]] = []
    if isinstance(fixed, str) and fixed.startswith(("http://", "https://")):
        parts = urlsplit(fixed)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        found.append((parts.hostname or "", port))
    elif getattr(plugin, "host", None):
        port = getattr(plugin, "port", None) or (443 if getattr(plugin, "secure", False) else 80)
        found.append((plugin.host, port))
    smtp = getattr(plugin, "smtp_host", None)
    if smtp:
        found.append((smtp, getattr(plugin, "port", None)))
    return found


def _refused_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
        or not ip.is_global
    )


def check_targets(plugin: Any, *, allow_private: Collection[str] = (), strict: bool = True) -> None:
    """Raise ``DestinationRefused`` (``destination_host_refused``) for an internal target.

    ``strict``: also refuse a host that does not resolve (at send time).
    """
    for host, port in targets(plugin):
        if f"{host}:{port}" in allow_private:
            continue
        host = host.strip("[]")  # an IPv6 literal as written in a URL
        try:
            infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            if strict:
                raise DestinationRefused(f"{host} does not resolve.", "destination_host_refused") from None
            continue
        for info in infos:
            if _refused_address(str(info[4][0])):
                raise DestinationRefused(
                    f"{host} resolves to {info[4][0]}, a loopback, private or link-local address: "
                    "notifications go only to public services.",
                    "destination_host_refused",
                )


def prepare(
    submitted: dict[str, Any], stored: dict[str, Any] | None, *, allow_private: Collection[str] = ()
) -> dict[str, Any]:
    """Turn submitted preferences into the stored shape: URLs parsed, checked, encrypted.

    ``submitted``: ``{"destinations": [{"url"?, "id"?, "events"?, "level"?}]}``; an entry with
    an ``id`` of a stored destination and no ``url`` keeps that destination's URL (so a client
    can change events or level without knowing the secret). ``events`` defaults to all,
    ``level`` to ``all``. Other keys of ``submitted`` are kept. Raises ``DestinationRefused``
    whose message names the destination's index.
    """
    known = {d["id"]: d for d in (stored or {}).get("destinations") or ()}
    out = []
    for index, entry in enumerate(submitted.get("destinations") or ()):
        url = entry.get("url")
        if url is None:
            previous = known.get(str(entry.get("id")))
            if previous is None:
                raise DestinationRefused(
                    f"destinations[{index}]: give a url, or the id of a destination already saved.",
                    "invalid_destination",
                )
            record = {k: previous[k] for k in ("id", "service", "url_encrypted", "url_masked")}
        else:
            try:
                parsed = parse(url, allow_private=allow_private)
            except DestinationRefused as error:
                raise DestinationRefused(f"destinations[{index}]: {error.message}", error.code) from None
            record = {
                "id": str(entry.get("id") or uuid.uuid4()),
                "service": parsed.service,
                "url_encrypted": crypto.encrypt(url),
                "url_masked": parsed.masked,
            }
        record["events"] = list(entry.get("events") or EVENTS)
        record["level"] = entry.get("level") or "all"
        if record["level"] not in LEVELS or not set(record["events"]) <= set(EVENTS):
            raise DestinationRefused(
                f"level must be one of {', '.join(LEVELS)}; events among {', '.join(EVENTS)}."
            )
        out.append(record)
    return {**{k: v for k, v in submitted.items() if k != "destinations"}, "destinations": out}


def public_view(preferences: dict[str, Any] | None) -> dict[str, Any]:
    """Return preferences as shown to users: each destination masked, no encrypted URL."""
    preferences = preferences or {}
    shown = [
        {k: v for k, v in d.items() if k != "url_encrypted"} for d in preferences.get("destinations") or ()
    ]
    return {**{k: v for k, v in preferences.items() if k != "destinations"}, "destinations": shown}
