"""The state door: `GET /sales/{id}/state/`, in plain WSGI (core/door.py).

Every open sale page polls its sale's state every second: ten thousand waiting shoppers are ten
thousand polls a second before anyone buys. The state is read from memory (flash_sale_state) and
encoded once per state (shop/views.py); this door adds the server's clock and the headers the
full stack gives it, with the same per-process, per-address rate limit ("page"). A sale the shop
does not know, and a poll over the limit, are answered by the full stack (its 404 and 429 pages).
"""

from core.addresses import client_ip_from
from core.door import Answer, Door
from core.paths import SALE_STATE_PATH
from limits.buckets import local_buckets
from limits.middleware import limits_for, rate_limit_headers
from shop.selectors import flash_sale_state
from shop.views import STATE_CACHE_CONTROL, state_body


class StateDoor(Door):
    view_name = "shop:state"  # The full stack's name for the same page.
    method = "GET"

    def takes(self, environ: dict) -> bool:
        return (
            environ.get("REQUEST_METHOD") == "GET" and SALE_STATE_PATH.match(environ.get("PATH_INFO", "")) is not None
        )

    def answer(self, environ: dict) -> Answer | None:
        limits = limits_for("page", {"ip": client_ip_from(environ)})
        decision = local_buckets.take(limits) if limits else None
        if decision is not None and not decision.allowed:
            return None
        state = flash_sale_state(sale_id=int(SALE_STATE_PATH.match(environ["PATH_INFO"])["pk"]))
        if state is None:
            return None
        return Answer(200, state_body(state), (("Cache-Control", STATE_CACHE_CONTROL), *rate_limit_headers(decision)))
