"""What a page may know of the signed-in shopper without reading the session or the user: the
card written at sign-in (their name, whether they are staff), kept in a signed cookie beside
the session's. It only greets them; whatever they do next is authenticated in full, so a card
that outlived its session (signed out elsewhere, the account deactivated) greets a shopper
whose next action asks them to sign in again.

Signing in writes the card (into the session too), signing out deletes it; a session from
before cards gets one on its first page (`ShopperCardMiddleware` writes it).
"""

from django.conf import settings
from django.contrib.auth import SESSION_KEY, user_logged_in, user_logged_out
from django.core import signing
from django.dispatch import receiver

CARD = "shopper_card"
CARD_COOKIE = "shopper"
SALT = "accounts.shopper-card"
_UNSET = object()


def shopper_card(request) -> dict | None:
    """The card of the signed-in shopper ({"name", "staff"}), or None when no one is."""
    if settings.SESSION_COOKIE_NAME not in request.COOKIES:
        return None
    cookie = request.COOKIES.get(CARD_COOKIE)
    if cookie is not None:
        try:
            return signing.loads(cookie, salt=SALT, max_age=settings.SESSION_COOKIE_AGE)
        except signing.BadSignature:
            pass
    if SESSION_KEY not in request.session:
        return None
    card = request.session.get(CARD)
    if card is None:  # A session older than cards: the user is asked once.
        if not request.user.is_authenticated:
            return None
        card = request.session[CARD] = _card(request.user)
    request.shopper_card = card  # for the middleware to write the cookie
    return card


def shopper_card_cookie(card: dict) -> str:
    """The card's cookie value, as signing in writes it."""
    return signing.dumps(card, salt=SALT, compress=True)


def _card(user) -> dict:
    return {"id": user.pk, "name": user.get_username(), "staff": user.is_staff}


@receiver(user_logged_in)
def shopper_card_write(sender, request, user, **signal) -> None:
    if request is not None:  # Code may sign a user in outside any request.
        request.session[CARD] = request.shopper_card = _card(user)


@receiver(user_logged_out)
def shopper_card_forget(sender, request, user, **signal) -> None:
    if request is not None:
        request.shopper_card = None


class ShopperCardMiddleware:
    """Writes or deletes the card's cookie when the request signed in or out."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        card = getattr(request, "shopper_card", _UNSET)
        if card is None:
            response.delete_cookie(CARD_COOKIE, samesite="Lax")
        elif card is not _UNSET:
            response.set_cookie(
                CARD_COOKIE,
                shopper_card_cookie(card),
                max_age=settings.SESSION_COOKIE_AGE,
                secure=settings.SESSION_COOKIE_SECURE,
                httponly=True,
                samesite="Lax",
            )
        return response
