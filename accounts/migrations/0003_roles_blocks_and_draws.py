"""Sales managers and support block buyers (orders.PurchaseBlock) and read the waiting rooms' draws:
the roles again, with those permissions."""

from importlib import import_module

from django.db import migrations

# The same step as the first roles migration: permissions made now, then each role's group set.
create_roles = import_module("accounts.migrations.0002_roles").create_roles


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_roles"),
        ("orders", "0008_waiting_room"),
    ]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
