from django.db import IntegrityError, transaction

from accounts.exceptions import UsernameTaken
from accounts.models import User


def user_register(*, username: str, password: str, email: str) -> User:
    """Create a shopper account. Raises UsernameTaken, also when two sign-ups race for a name."""
    try:
        with transaction.atomic():
            return User.objects.create_user(username=username, password=password, email=email)
    except IntegrityError as error:
        raise UsernameTaken() from error
