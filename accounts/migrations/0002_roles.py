"""The back office's roles (accounts/roles.py) as groups with their permissions."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from accounts.roles import ROLES, roles_apply


def create_roles(apps, schema_editor):
    # Permissions are made after all migrations of a fresh database; these need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    roles_apply(apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"))


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("inventory", "0003_stock_movement_append_only"),
        ("shop", "0002_sale_drift"),
        ("orders", "0006_refunds"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
