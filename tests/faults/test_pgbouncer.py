"""Behind PgBouncer in transaction mode (DATABASE_PGBOUNCER=1): the stock ledger's CSV export,
which streams its rows in chunks through a cursor, still delivers every row. A real PgBouncer
(Debian's, which make test installs) in front of the test database, two server connections
used in turn, and the shop's web server process behind it."""

import csv
import io
import os
import shutil
import socket
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from http.client import IncompleteRead
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client

from inventory.models import StockMovement
from inventory.services import stock_receive
from scripts.devstack import free_port, make_traversable, postgres_account, run_as
from tests.factories import StaffFactory, StockFactory
from tests.processes import running_web_server, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pgbouncer() -> Iterator[str]:
    """A PgBouncer in transaction mode in front of the test database; yields its URL."""
    # PgBouncer refuses to run as root: as root it runs as the account of the private PostgreSQL.
    account = postgres_account()
    folder = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    make_traversable(folder)
    if account is not None:
        os.chown(folder, account.pw_uid, account.pw_gid)
    port, db = free_port(), connection.settings_dict
    (folder / "users.txt").write_text('"postgres" ""\n')
    (folder / "pgbouncer.ini").write_text(
        f"[databases]\n{db['NAME']} = host={db['HOST'] or '127.0.0.1'} port={db['PORT'] or 5432}\n"
        f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {folder / 'users.txt'}\npool_mode = transaction\n"
        # Two server connections, used in turn.
        "default_pool_size = 2\nmin_pool_size = 2\nserver_round_robin = 1\n"
        f"logfile = {folder / 'pgbouncer.log'}\n"
    )
    binary = "/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else "pgbouncer"
    server = subprocess.Popen([binary, str(folder / "pgbouncer.ini")], **run_as(account))
    url = f"postgres://postgres@127.0.0.1:{port}/{db['NAME']}"
    try:
        wait_for(lambda: _accepts(port) or server.poll() is not None, timeout=30, what="PgBouncer to listen")
        assert server.poll() is None, f"PgBouncer exited with {server.returncode}"
        yield url
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def export_rows(base: str, session: str) -> list[list[str]]:
    request = urllib.request.Request(  # noqa: S310 - our own http URL
        f"{base}/admin/inventory/stockmovement/export.csv", headers={"Cookie": f"sessionid={session}"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - our own http URL
        try:
            body = response.read()
        except IncompleteRead as cut:
            body = cut.partial
    return list(csv.reader(io.StringIO(body.decode())))


@pytest.fixture
def ledger_and_session(staff):
    stock = StockFactory(low_stock_threshold=0)
    for _ in range(2_100):  # more than one fetch of the export's cursor (2,000 rows)
        stock = stock_receive(stock=stock, quantity=1, actor=staff, reason="delivery")
    client = Client()
    client.force_login(StaffFactory(is_superuser=True))
    return StockMovement.objects.count(), client.cookies["sessionid"].value


def test_the_ledger_export_streams_every_row_through_pgbouncer_in_transaction_mode(
    pgbouncer, ledger_and_session, tmp_path
):
    movements, session = ledger_and_session

    with running_web_server(tmp_path, DATABASE_URL=pgbouncer, DATABASE_PGBOUNCER="1") as base:
        rows = export_rows(base, session)

    assert len(rows) == movements + 1  # the header and every movement
    assert rows[0][0] and all(row[0].isdigit() for row in rows[1:])
