"""The back office's roles: groups of model permissions, which the admin and the API both check.

A member of staff does what their groups allow, nothing more; `is_staff` only lets them in.
Created (and brought up to date) by a data migration; change them here and in a new migration.
"""

ROLES: dict[str, list[str]] = {
    # Receives, issues and counts stock, acknowledges alerts; no sales, no orders, no refunds.
    "stock clerk": [
        "inventory.view_stock",
        "inventory.change_stock",
        "inventory.view_stockmovement",
        "inventory.view_stockalert",
        "inventory.change_stockalert",
        "shop.view_product",
        "shop.view_sku",
    ],
    # Creates, edits, preheats and cancels sales; blocks buyers; sees and cancels orders; sees stock, moves none.
    "sales manager": [
        "shop.view_flashsale",
        "shop.add_flashsale",
        "shop.change_flashsale",
        "shop.view_saledrift",
        "shop.view_product",
        "shop.view_sku",
        "inventory.view_stock",
        "orders.view_order",
        "orders.change_order",
        "orders.view_failedreservation",
        "orders.view_purchaseblock",
        "orders.add_purchaseblock",
        "orders.change_purchaseblock",
        "orders.view_waitingroomdraw",
    ],
    # Sees, cancels and refunds orders, looks up shoppers and blocks them from buying; no stock, no sales.
    "support": [
        "orders.view_order",
        "orders.change_order",
        "orders.refund_order",
        "orders.view_refund",
        "orders.view_paymentattempt",
        "orders.view_failedreservation",
        "accounts.view_user",
        "orders.view_purchaseblock",
        "orders.add_purchaseblock",
        "orders.change_purchaseblock",
    ],
}


def roles_apply(group_model, permission_model) -> None:
    """Make each role's group hold exactly its permissions (the models are passed in, so that a
    migration gives its historical ones)."""
    for name, perms in ROLES.items():
        group, _ = group_model.objects.get_or_create(name=name)
        wanted = []
        for perm in perms:
            app_label, codename = perm.split(".")
            wanted.append(permission_model.objects.get(content_type__app_label=app_label, codename=codename))
        group.permissions.set(wanted)
