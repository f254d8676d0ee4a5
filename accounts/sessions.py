"""What a page may know of the signed-in shopper from the session alone, with no query of the
user: the card written at sign-in, their name and whether they are staff. It only greets them;
whatever they do next is authenticated in full (a session of an account deactivated since is
greeted until its next request that must be authenticated, which fails)."""

from django.contrib.auth import SESSION_KEY, user_logged_in
from django.dispatch import receiver

CARD = "shopper_card"


def shopper_card(request) -> dict | None:
    """The card of the session's shopper ({"name", "staff"}), or None when no one is signed in."""
    session = request.session
    if SESSION_KEY not in session:
        return None
    card = session.get(CARD)
    if card is None:  # A session older than cards: the user is asked once.
        if not request.user.is_authenticated:
            return None
        card = request.session[CARD] = _card(request.user)
    return card


def _card(user) -> dict:
    return {"name": user.get_username(), "staff": user.is_staff}


@receiver(user_logged_in)
def shopper_card_write(sender, request, user, **signal) -> None:
    if request is not None:  # Code may sign a user in outside any request.
        request.session[CARD] = _card(user)
