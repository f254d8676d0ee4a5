"""API permissions by the same model permissions the admin checks (roles are groups of them),
not by `is_staff` alone."""

from rest_framework import permissions


def staff_with(*perms: str) -> type[permissions.BasePermission]:
    """A permission class: an active staff user holding every one of `perms` ("app.codename")."""

    class StaffWith(permissions.BasePermission):
        message = "You do not have permission to do this."

        def has_permission(self, request, view) -> bool:
            user = request.user
            return bool(user and user.is_authenticated and user.is_staff and user.has_perms(perms))

    StaffWith.__name__ = f"StaffWith({', '.join(perms)})"
    return StaffWith


def anyone_reads_staff_with(*perms: str) -> type[permissions.BasePermission]:
    """A permission class: anyone may read; a write takes an active staff user with `perms`."""
    staff = staff_with(*perms)()

    class AnyoneReads(permissions.BasePermission):
        message = staff.message

        def has_permission(self, request, view) -> bool:
            return request.method in permissions.SAFE_METHODS or staff.has_permission(request, view)

    return AnyoneReads
