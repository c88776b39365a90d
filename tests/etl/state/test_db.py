"""Connections to PostgreSQL: a lost connection is a retriable ``NetworkError`` that no rollback
masks, an idle connection the server dropped is replaced, and connect tells an outage (wait)
from a bad login (configuration)."""

from __future__ import annotations

import socket

import psycopg2
import pytest

from etl.errors import ConfigError, NetworkError
from etl.state import db
from etl.state.db import Connections, connect, transaction
from tests.helpers.databases import with_database


def terminate(admin_dsn: str, conn) -> None:
    """What a server restart does to a session: the backend ends."""
    with psycopg2.connect(admin_dsn) as admin, admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s, 5000)", (conn.get_backend_pid(),))  # waits
    admin.close()


def test_a_connection_lost_mid_transaction_is_a_network_error(database_url):
    conn = connect(database_url)
    with (
        pytest.raises(NetworkError, match="PostgreSQL connection lost") as raised,
        transaction(conn) as cur,
    ):
        cur.execute("SELECT 1")
        terminate(database_url, conn)
        cur.execute("SELECT 2")
    # The server's error, not the rollback's "connection already closed".
    assert isinstance(raised.value.__cause__, psycopg2.OperationalError)
    assert conn.closed


def test_a_bug_in_the_block_keeps_its_own_error_when_the_connection_is_also_gone(database_url):
    conn = connect(database_url)
    with pytest.raises(KeyError), transaction(conn) as cur:
        cur.execute("SELECT 1")
        terminate(database_url, conn)
        raise KeyError("a bug")


def test_an_sql_error_rolls_back_and_stays_what_it_is(database_url):
    conn = connect(database_url)
    with pytest.raises(psycopg2.errors.DivisionByZero), transaction(conn) as cur:
        cur.execute("CREATE TABLE scratch (x int)")
        cur.execute("SELECT 1 / 0")
    with transaction(conn) as cur:
        cur.execute("SELECT to_regclass('scratch')")
        assert cur.fetchone() == (None,)  # rolled back, and the connection still works
    conn.close()


def test_a_statement_is_its_own_transaction_and_leaves_the_connection_as_it_was(database_url):
    """``Connections.statement``: committed by the server on its own (one round trip, no
    ``BEGIN``), its rows as dicts; after it, and after one that failed, transactions are
    transactions again."""
    connections = Connections(database_url)
    with connections.transaction() as cur:
        cur.execute("CREATE TABLE scratch (x int)")
    assert connections.statement("INSERT INTO scratch VALUES (1), (2) RETURNING x", ()) == [
        {"x": 1}, {"x": 2}]  # fmt: skip
    with psycopg2.connect(database_url) as other, other.cursor() as cur:
        cur.execute("SELECT count(*) FROM scratch")  # committed: another session sees it
        assert cur.fetchone() == (2,)
    with pytest.raises(psycopg2.errors.DivisionByZero):
        connections.statement("INSERT INTO scratch SELECT 1 / 0", ())
    assert connections.statement("DELETE FROM scratch WHERE x = 2", ()) == []
    with pytest.raises(psycopg2.errors.DivisionByZero), connections.transaction() as cur:
        cur.execute("DELETE FROM scratch")
        cur.execute("SELECT 1 / 0")
    assert connections.fetch_one("SELECT count(*) AS n FROM scratch", ()) == {"n": 1}
    connections.close()


def test_a_statement_on_a_lost_connection_is_a_network_error(database_url):
    connections = Connections(database_url)
    assert connections.statement("SELECT 1 AS one", ()) == [{"one": 1}]
    with pytest.raises(NetworkError, match="PostgreSQL connection lost"):  # ended mid-statement
        connections.statement("SELECT pg_terminate_backend(pg_backend_pid())", ())
    assert connections.statement("SELECT 3 AS three", ()) == [{"three": 3}]
    connections.close()


def test_a_session_the_server_ended_while_idle_is_replaced(database_url):
    connections = Connections(database_url)
    assert connections.fetch_one("SELECT 1 AS one", ()) == {"one": 1}
    terminate(database_url, connections._local.conn)
    assert connections.fetch_one("SELECT 2 AS two", ()) == {"two": 2}  # no error in between
    connections.close()


def test_connections_carry_timeouts_and_keepalives_unless_the_dsn_sets_them(database_url):
    conn = connect(database_url)
    params = conn.get_dsn_parameters()
    conn.close()
    assert params["connect_timeout"] == db.PG_OPTIONS["connect_timeout"]
    assert params["keepalives_idle"] == db.PG_OPTIONS["keepalives_idle"]
    assert params["tcp_user_timeout"] == db.PG_OPTIONS["tcp_user_timeout"]
    joined = "&" if "?" in database_url else "?"
    own = connect(f"{database_url}{joined}connect_timeout=9")
    assert own.get_dsn_parameters()["connect_timeout"] == "9"
    own.close()


def test_connect_waits_for_an_unreachable_server_then_says_so():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(NetworkError, match=r"PostgreSQL unreachable for 0\.5 s") as raised:
        connect(f"postgresql://etl@127.0.0.1:{port}/etl", patience=0.5)
    assert "DATABASE_URL" in str(raised.value)


def test_connect_refuses_a_database_that_does_not_exist_at_once(database_url):
    missing = with_database(database_url, "no_such_database_here")
    with pytest.raises(ConfigError, match=r"DATABASE_URL.*does not exist"):
        connect(missing, patience=30)
