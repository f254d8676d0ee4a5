"""The pages a crowd refreshes, the home page and a sale's page, rendered once per process and
variant and served from memory for at most PAGE_SECONDS: the sales on offer are the hot tier.

A page is the same for every shopper but for a few marks filled in per request: the server's
clock, the CSRF token, a fresh purchase attempt, the shopper's name. Who the shopper is comes
from the card signing in wrote (accounts/sessions.py), not from the session or the user. A request with
messages to show is rendered in full. The anonymous variant may be held by a proxy for
PAGE_SECONDS too (`Cache-Control`; the nginx lines are in docs/deployment.md); a signed-in
one is the shopper's own.
"""

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.contrib.messages import get_messages
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.template.loader import render_to_string
from django.utils.cache import patch_vary_headers
from django.utils.html import escape

from accounts.sessions import shopper_card

PAGE_SECONDS = 1.0
# Private-use characters, which nothing the shop renders holds, and which escaping leaves alone.
CSRF, NAME, NOW, ATTEMPT = (f"\ue000{mark}\ue001" for mark in ("csrf", "name", "now", "attempt"))
# What a page tells the signed-in shopper alone (shop/views.py fills them): the units they hold in
# a sale, the sentence that says so, and " disabled" for a Buy button past their limit.
HELD, HOLDING, AT_LIMIT = (f"\ue000{mark}\ue001" for mark in ("held", "holding", "at-limit"))
# Pages kept past which expired ones are dropped: one per sale and variant seen lately.
PAGES_KEPT = 512


@dataclass(frozen=True)
class PageUser:
    """What the templates ask of `user`, the name left as a mark."""

    is_authenticated: bool
    is_staff: bool

    def get_username(self) -> str:
        return NAME


@dataclass(frozen=True)
class PageRequest:
    """What the templates ask of `request`."""

    path: str


_pages: dict[tuple, tuple[float, str]] = {}


def crowd_page(
    request: HttpRequest,
    template: str,
    key: tuple,
    context: Callable[[], dict],
    personal: Callable[[dict], dict[str, str]] | None = None,
) -> HttpResponse:
    """The page `template` draws from `context()` (called only to draw it: it may raise Http404),
    for this request; `key` names what the context depends on besides the shopper. A purchase
    attempt in the context is the mark ATTEMPT. `personal(card)` gives a signed-in shopper's own
    marks and what each reads for them."""
    card = shopper_card(request)
    if len(get_messages(request)):
        html = render_to_string(template, context(), request=request)
        return _personal(HttpResponse(_filled(html.replace(ATTEMPT, uuid.uuid4().hex), card, personal)))
    user = PageUser(is_authenticated=card is not None, is_staff=bool(card and card["staff"]))
    page_key = (template, *key, user)
    now = time.monotonic()
    cached = _pages.get(page_key)
    if cached is None or cached[0] <= now:
        marks = {"user": user, "request": PageRequest(request.path), "csrf_token": CSRF, "server_now_ms": NOW}
        cached = (now + PAGE_SECONDS, render_to_string(template, {**context(), **marks}))
        if len(_pages) >= PAGES_KEPT:
            _forget_expired(now)
        _pages[page_key] = cached
    html = cached[1].replace(NOW, str(int(time.time() * 1000)))
    if card is None:
        response = HttpResponse(html)
        response["Cache-Control"] = f"public, max-age={PAGE_SECONDS:.0f}"
        patch_vary_headers(response, ("Cookie",))  # a shopper signed in is drawn another page
        return response
    html = html.replace(NAME, escape(card["name"])).replace(CSRF, get_token(request))
    return _personal(HttpResponse(_filled(html.replace(ATTEMPT, uuid.uuid4().hex), card, personal)))


def _filled(html: str, card: dict | None, personal: Callable[[dict], dict[str, str]] | None) -> str:
    for mark, text in (personal(card) if personal and card else {}).items():
        html = html.replace(mark, text)
    return html


def _personal(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "private, no-cache"
    patch_vary_headers(response, ("Cookie",))
    return response


def _forget_expired(now: float) -> None:
    for page_key, (until, _) in list(_pages.items()):
        if until <= now:
            _pages.pop(page_key, None)


def crowd_pages_forget() -> None:
    """Forget the pages this process holds (tests start afresh)."""
    _pages.clear()
