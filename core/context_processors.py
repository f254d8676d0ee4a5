import time


def server_time(request) -> dict:
    """The server's clock in milliseconds, for the pages' countdowns (static/js/clock.js)."""
    return {"server_now_ms": int(time.time() * 1000)}
