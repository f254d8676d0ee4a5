import json

from django.core.management.base import BaseCommand, CommandError

from orders.invariants import check_invariants


class Command(BaseCommand):
    help = "Check the shop's invariants (design.md 1-7) for every sale and SKU; print JSON; fail on a violation."

    def handle(self, *args, **options):
        report = check_invariants()
        self.stdout.write(json.dumps(report.as_dict(), indent=2))
        if not report.ok:
            raise CommandError(f"{len(report.violations)} invariant violation(s)")
