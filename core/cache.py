"""The Django cache on a Redis Cluster: Django's own Redis cache, talking through the shop's
RedisCluster client (django-redis has no cluster client)."""

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

from core.redis import redis_client


class RedisClusterCacheClient(RedisCacheClient):
    def get_client(self, key=None, *, write=False):
        return redis_client()

    # Keys of one call may live in different slots: read and write them slot by slot.
    def get_many(self, keys):
        values = self.get_client().mget_nonatomic(keys)
        return {
            key: self._serializer.loads(value) for key, value in zip(keys, values, strict=True) if value is not None
        }

    def set_many(self, data, timeout):
        pipeline = self.get_client().pipeline()
        for key, value in data.items():
            pipeline.set(key, self._serializer.dumps(value), ex=timeout)
        pipeline.execute()


class RedisClusterCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = RedisClusterCacheClient
