"""Which database a query goes to when a read replica is configured (DATABASE_REPLICA_URL)."""

from django.db import connections

# What the storefront reads to show the catalog. Nothing that decides stock, money or an order
# (stock, sales, orders, payments) is read from a replica, which may lag behind.
CATALOG = {("shop", "product"), ("shop", "sku")}


class ReplicaRouter:
    """Catalog reads go to the replica, unless they run inside a transaction on the primary
    (a service deciding something from what it reads); everything else goes to the primary."""

    def db_for_read(self, model, **hints):
        if (model._meta.app_label, model._meta.model_name) in CATALOG and not connections["default"].in_atomic_block:
            return "replica"
        return "default"

    def db_for_write(self, model, **hints):
        return "default"

    def allow_relation(self, obj1, obj2, **hints):
        return True  # the replica holds the primary's rows

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == "default"
