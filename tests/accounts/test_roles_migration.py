"""The data migration made the roles (a non-transactional test: it sees the migrated database)."""

import pytest
from django.contrib.auth.models import Group

from accounts.roles import ROLES


@pytest.mark.django_db
def test_the_migrations_made_each_role_with_exactly_its_permissions():
    for role, perms in ROLES.items():
        group = Group.objects.get(name=role)
        have = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}
        assert have == set(perms), role
