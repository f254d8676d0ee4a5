import json

from django.core.management.base import BaseCommand

from shop.models import FlashSale
from shop.services import flash_sale_reconcile


class Command(BaseCommand):
    help = "Compare each open flash sale's Redis counters with the database and repair them toward it."

    def add_arguments(self, parser):
        parser.add_argument("--sale", type=int, action="append", help="Only this sale (repeatable).")

    def handle(self, *args, sale=None, **options):
        sales = FlashSale.objects.on_offer()
        if sale:
            sales = FlashSale.objects.filter(pk__in=sale)
        for flash_sale in sales:
            result = flash_sale_reconcile(sale=flash_sale)
            found = {"sale": flash_sale.pk}
            if result is None:
                found["result"] = "rebuilt or skipped (another reconcile holds the lock)"
            else:
                found.update(
                    drifted=result.drifted,
                    remaining_before=result.remaining_before,
                    remaining_expected=result.remaining_expected,
                    in_flight=result.in_flight,
                    buyers_repaired=result.buyers_repaired,
                    terms_repaired=result.terms_repaired,
                )
            self.stdout.write(json.dumps(found))
