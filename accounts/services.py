from django.db import IntegrityError, transaction

from accounts.exceptions import UsernameTaken
from accounts.models import User
from accounts.signals import account_activity_changed


def user_register(*, username: str, password: str, email: str) -> User:
    """Create a shopper account. Raises UsernameTaken, also when two sign-ups race for a name."""
    try:
        with transaction.atomic():
            return User.objects.create_user(username=username, password=password, email=email)
    except IntegrityError as error:
        raise UsernameTaken() from error


def user_set_active(*, user: User, active: bool) -> bool:
    """Deactivate an account (it can no longer sign in or buy) or activate it again.

    The sale layer learns of it after commit (account_activity_changed), so a token issued
    before cannot buy in any sale on offer. Returns whether the account changed.
    """
    with transaction.atomic():
        changed = User.objects.filter(pk=user.pk, is_active=not active).update(is_active=active)
        if changed:
            transaction.on_commit(lambda: account_activity_changed.send(sender=User, user_id=user.pk, active=active))
    user.is_active = active
    return bool(changed)
