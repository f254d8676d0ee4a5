"""What the accounts app tells the apps above it, which it does not import."""

from django.dispatch import Signal

# Sent after the commit that deactivated an account (active=False) or activated it again, with
# `user_id` and `active`: the sale layer refuses (or allows) its purchases from then on.
account_activity_changed = Signal()
