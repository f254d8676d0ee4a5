"""The benchmark's yardsticks, served by gunicorn exactly as the shop is: two tiny Django views
with no middleware, no apps, no database.

    z   GET  /z   a constant JSON answer: what a bare Django view costs on this server
    y   POST /y   one EVALSHA that takes a unit (the minimal seckill view a user would write)

    gunicorn bench.yardsticks:application
"""

import os

import django
import redis
from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

TAKE = """
local left = redis.call('DECR', KEYS[1])
if left < 0 then redis.call('INCR', KEYS[1]) return -1 end
return left
"""

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-yardsticks-only",  # noqa: S106 - serves constants, signs nothing
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
)
django.setup()

client = redis.Redis.from_url(os.environ["REDIS_URL"])
take = client.register_script(TAKE)


def z(request):
    return JsonResponse({"status": "ok"})


@csrf_exempt
def y(request):
    left = take(keys=["bench:y:units"])
    if left < 0:
        return JsonResponse({"code": "sold_out"}, status=409)
    return JsonResponse({"reservation_id": str(left), "status": "pending"}, status=202)


urlpatterns = [path("z", z), path("y", y)]
application = get_wsgi_application()
