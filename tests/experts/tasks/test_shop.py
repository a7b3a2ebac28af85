"""The shop database (fixed schema, fixed rows) and the guarded runner for model-written queries."""

from __future__ import annotations

import sqlite3
import time

import pytest

from experts.tasks.shop import (
    CATEGORIES,
    CITIES,
    SCHEMA_SQL,
    STATUSES,
    QueryFailedError,
    QueryTimeoutError,
    TooManyRowsError,
    UnsafeQueryError,
    build_database,
    run_query,
    split_statements,
)

COLUMNS = {
    "customers": ["id", "name", "email", "city", "signup_date"],
    "products": ["id", "name", "category", "price"],
    "orders": ["id", "customer_id", "order_date", "status"],
    "order_items": ["order_id", "product_id", "quantity", "unit_price"],
}
COUNTS = (
    "SELECT (SELECT COUNT(*) FROM customers), (SELECT COUNT(*) FROM products), "
    "(SELECT COUNT(*) FROM orders), (SELECT COUNT(*) FROM order_items);"
)
NEVER_ENDS = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT COUNT(*) FROM n;"


@pytest.fixture(scope="module")
def shop() -> sqlite3.Connection:
    return build_database()


def test_schema_is_exactly_the_documented_one(shop: sqlite3.Connection) -> None:
    tables = [
        r[0] for r in shop.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid")
    ]
    assert tables == list(COLUMNS)
    for table, columns in COLUMNS.items():
        assert [r[1] for r in shop.execute(f"PRAGMA table_info({table})")] == columns
    assert SCHEMA_SQL.count("CREATE TABLE") == 4


def test_rows_have_the_documented_shape(shop: sqlite3.Connection) -> None:
    def one(sql: str) -> tuple:
        return shop.execute(sql).fetchone()

    assert one("SELECT COUNT(*), COUNT(DISTINCT city), COUNT(DISTINCT email) FROM customers") == (30, 8, 30)
    assert one("SELECT COUNT(*), COUNT(DISTINCT category) FROM products") == (25, 5)
    assert one(
        "SELECT COUNT(*), MIN(order_date) >= '2023-01-01', MAX(order_date) <= '2024-12-31' FROM orders"
    ) == (
        120,
        1,
        1,
    )
    assert {r[0] for r in shop.execute("SELECT DISTINCT status FROM orders")} == set(STATUSES)
    assert {r[0] for r in shop.execute("SELECT DISTINCT city FROM customers")} == set(CITIES)
    assert {r[0] for r in shop.execute("SELECT DISTINCT category FROM products")} == set(CATEGORIES)
    # Orphans would make join questions ambiguous.
    assert one("SELECT COUNT(*) FROM orders WHERE customer_id NOT IN (SELECT id FROM customers)") == (0,)
    assert one("SELECT COUNT(*) FROM order_items WHERE order_id NOT IN (SELECT id FROM orders)") == (0,)
    # "Never ordered" questions need answers.
    assert one("SELECT COUNT(*) FROM customers WHERE id NOT IN (SELECT customer_id FROM orders)")[0] > 0
    assert one("SELECT COUNT(*) FROM products WHERE id NOT IN (SELECT product_id FROM order_items)")[0] > 0


def test_the_database_is_the_same_every_time(shop: sqlite3.Connection) -> None:
    assert list(build_database().iterdump()) == list(shop.iterdump())


def test_a_select_returns_its_rows(shop: sqlite3.Connection) -> None:
    sql = "SELECT city, COUNT(*) FROM customers GROUP BY city ORDER BY city;"
    assert run_query(sql) == shop.execute(sql).fetchall()
    assert run_query("with t as (select 1 as x) select x from t") == [(1,)]
    assert run_query("SELECT 'a;b' AS s; -- trailing comment") == [("a;b",)]


@pytest.mark.parametrize(
    "sql",
    [
        "DROP TABLE customers;",
        "DELETE FROM orders",
        "INSERT INTO products VALUES (99, 'x', 'toys', 1.0)",
        "UPDATE products SET price = 0",
        "SELECT 1; DROP TABLE customers;",
        "SELECT 1; SELECT 2",
        "WITH gone AS (SELECT 1) DELETE FROM orders",
        "PRAGMA writable_schema = ON",
        "ATTACH DATABASE '/tmp/x.db' AS x",
        "SELECT load_extension('evil')",
        "  -- a comment first\n DELETE FROM orders",
        "",
    ],
)
def test_anything_but_one_read_is_refused(sql: str) -> None:
    with pytest.raises(UnsafeQueryError):
        run_query(sql)
    assert run_query(COUNTS) == [(30, 25, 120, build_database().execute(COUNTS).fetchone()[3])]


def test_a_query_that_never_ends_is_interrupted() -> None:
    started = time.monotonic()
    with pytest.raises(QueryTimeoutError):
        run_query(NEVER_ENDS, timeout_s=0.2)
    assert time.monotonic() - started < 2


def test_row_count_and_value_size_are_bounded() -> None:
    with pytest.raises(TooManyRowsError):
        run_query(
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT x FROM n", max_rows=50
        )
    with pytest.raises(QueryFailedError):
        run_query("SELECT zeroblob(2000000000)")


def test_sqlite_errors_are_query_failures() -> None:
    for sql in ["SELECT * FROM nowhere", "SELECT nope FROM customers", "SELECT FROM WHERE"]:
        with pytest.raises(QueryFailedError):
            run_query(sql)


def test_statements_split_outside_quotes_and_comments() -> None:
    assert split_statements("SELECT 'a;b'; SELECT \"c;\" -- x;y\n; /* ; */ ;") == [
        "SELECT 'a;b'",
        'SELECT "c;" -- x;y',
    ]
    assert split_statements("SELECT 'it''s; fine'") == ["SELECT 'it''s; fine'"]
    assert split_statements("  ;  ; ") == []
