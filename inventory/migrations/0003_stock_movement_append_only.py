from django.db import migrations

FORBID_CHANGES = """
CREATE FUNCTION inventory_stockmovement_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the stock ledger is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER inventory_stockmovement_append_only
    BEFORE UPDATE OR DELETE ON inventory_stockmovement
    FOR EACH ROW EXECUTE FUNCTION inventory_stockmovement_append_only();
"""

ALLOW_CHANGES = """
DROP TRIGGER inventory_stockmovement_append_only ON inventory_stockmovement;
DROP FUNCTION inventory_stockmovement_append_only();
"""


class Migration(migrations.Migration):
    """The database itself refuses to update or delete ledger rows, whatever code asks."""

    dependencies = [("inventory", "0002_alert_notified_at")]

    operations = [migrations.RunSQL(FORBID_CHANGES, reverse_sql=ALLOW_CHANGES)]
