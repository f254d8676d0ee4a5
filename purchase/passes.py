"""Purchase passes: what a sale that `requires_pass` asks of every purchase.

A pass is issued to a signed-in shopper for one sale, no earlier than PURCHASE_PASS_LEAD seconds
before its start (so passes cannot be stockpiled), and lives PURCHASE_PASS_SECONDS. It is signed
with the sale, the shopper and its expiry, so a web process checks it with one HMAC and no query;
a forged, foreign or expired pass is refused before the admission script runs. Its uses are a
shared bucket that the admission script takes with the purchase's rate limits (one round trip);
a pass found spent is remembered by the process, so its next replays cost no Redis call either.

With `pass_challenge`, a pass is issued only against a solved ALTCHA proof of work, bound to the
shopper and the sale: the storefront solves it in the browser while the countdown runs.
"""

import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import altcha
from django.conf import settings
from django.utils import timezone
from django.utils.crypto import salted_hmac

from limits.buckets import Limit
from purchase.exceptions import ChallengeFailed, PassNotRequired, PurchasePassInvalid, PurchaseRefused, TooEarly
from purchase.signing import signature, signature_matches
from shop.models import FlashSale

SALT = "orders.purchase-pass"
CHALLENGE_SALT = "orders.pass-challenge"


@dataclass(frozen=True)
class PurchasePass:
    token: str
    expires_at: datetime


def _challenge_key() -> str:
    return salted_hmac(CHALLENGE_SALT, "altcha", algorithm="sha256").hexdigest()


def purchase_pass_challenge(*, sale: FlashSale, user_id: int) -> dict:
    """A fresh proof-of-work challenge for this shopper and sale (ALTCHA's v1 form)."""
    challenge = altcha.create_challenge_v1(
        altcha.ChallengeOptionsV1(
            algorithm="SHA-256",
            max_number=settings.PURCHASE_PASS_CHALLENGE_MAX_NUMBER,
            hmac_key=_challenge_key(),
            expires=timezone.now() + timedelta(seconds=settings.PURCHASE_PASS_CHALLENGE_SECONDS),
            params={"sale": str(sale.pk), "user": str(user_id)},
        )
    )
    return challenge.to_dict()


def _challenge_solved(*, sale: FlashSale, user_id: int, solution) -> bool:
    """Whether `solution` (the base64 payload the solver made) answers a challenge this shop
    issued, unexpired, for this shopper and this sale."""
    if not isinstance(solution, str) or len(solution) > 2048:
        return False
    try:
        solved, _ = altcha.verify_solution_v1(solution, _challenge_key(), check_expires=True)
        params = altcha.extract_params_v1(altcha.PayloadV1.from_base64(solution).to_dict()) if solved else {}
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):  # Hostile JSON inside, too.
        return False
    return solved and params.get("sale") == [str(sale.pk)] and params.get("user") == [str(user_id)]


def purchase_pass_issue(*, sale: FlashSale, user_id: int, solution=None) -> PurchasePass:
    """A pass for this shopper and sale. Raises PassNotRequired, PurchaseRefused("ended"),
    ChallengeFailed (with a fresh challenge) when the sale asks for a proof of work and `solution`
    does not solve one, and TooEarly before PURCHASE_PASS_LEAD seconds ahead of the start."""
    if not sale.requires_pass:
        raise PassNotRequired()
    now = timezone.now()
    if sale.status in (FlashSale.Status.ENDED, FlashSale.Status.CANCELLED) or now >= sale.ends_at:
        raise PurchaseRefused("ended")
    # The proof of work first: a shopper solves it during the countdown, before passes are issued.
    if sale.pass_challenge and not _challenge_solved(sale=sale, user_id=user_id, solution=solution):
        raise ChallengeFailed(purchase_pass_challenge(sale=sale, user_id=user_id))
    issued_from = sale.starts_at - timedelta(seconds=settings.PURCHASE_PASS_LEAD)
    if now < issued_from:
        raise TooEarly("Passes for this sale are issued", "issued_from", issued_from)
    expires = min(int(now.timestamp()) + settings.PURCHASE_PASS_SECONDS, int(sale.ends_at.timestamp()) + 1)
    body = f"{sale.pk}-{user_id}-{expires}-{secrets.token_hex(6)}"
    return PurchasePass(token=f"{body}-{signature(SALT, body)}", expires_at=datetime.fromtimestamp(expires, tz=UTC))


class SpentPasses:
    """Passes this process saw spent, until they expire: their replays are refused here."""

    def __init__(self, capacity: int = 100_000):
        self._expiries: dict[str, int] = {}
        self._lock = threading.Lock()
        self._capacity = capacity

    def add(self, nonce: str, expires: int) -> None:
        with self._lock:
            if len(self._expiries) >= self._capacity:
                now = time.time()
                self._expiries = {key: until for key, until in self._expiries.items() if until > now}
            self._expiries[nonce] = expires

    def __contains__(self, nonce: str) -> bool:
        return nonce in self._expiries

    def clear(self) -> None:
        with self._lock:
            self._expiries.clear()


spent_passes = SpentPasses()


@dataclass(frozen=True)
class CheckedPass:
    nonce: str
    expires: int

    @property
    def uses(self) -> Limit:
        """The pass's uses as a bucket the admission script takes: PURCHASE_PASS_USES at once,
        and none refilled within the pass's life."""
        return Limit(f"pass:{self.nonce}", 1 / settings.PURCHASE_PASS_SECONDS, settings.PURCHASE_PASS_USES)


def purchase_pass_check(token: str | None, *, sale_id: int, user_id: int) -> CheckedPass:
    """The pass, if it is one this shop signed for this shopper and sale, unexpired and not seen
    spent; else raises PurchasePassInvalid. No query, no Redis call."""
    parts = token.split("-") if token and len(token) <= 96 else ()
    if len(parts) != 5 or not all(part.isascii() and part.isalnum() for part in parts):
        raise PurchasePassInvalid()
    sale, user, expires, nonce, given = parts
    if not signature_matches(SALT, "-".join(parts[:4]), given):
        raise PurchasePassInvalid()
    if sale != str(sale_id) or user != str(user_id) or int(expires) <= time.time() or nonce in spent_passes:
        raise PurchasePassInvalid()
    return CheckedPass(nonce=nonce, expires=int(expires))
