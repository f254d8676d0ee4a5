from django.db.models import Q

from accounts.models import User


def staff_emails_with(perm: str) -> list[str]:
    """The e-mail of every active member of staff who holds `perm` ("app.codename"), through a
    group, directly, or as a superuser."""
    app_label, codename = perm.split(".")
    holds = Q(is_superuser=True)
    for via in ("groups__permissions", "user_permissions"):
        holds |= Q(**{f"{via}__codename": codename, f"{via}__content_type__app_label": app_label})
    emails = User.objects.filter(holds, is_staff=True, is_active=True).exclude(email="").values_list("email", flat=True)
    return sorted(set(emails))
