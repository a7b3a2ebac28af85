"""The `sql` task: templates, gold queries that run, and execution-match scoring of model outputs."""

from __future__ import annotations

import time

import pytest

from experts.tasks import TASKS, TaskExample
from experts.tasks.shop import QueryError, UnsafeQueryError, run_query
from experts.tasks.sql import TEMPLATES, extract_sql

TASK = TASKS["sql"]
GOLD = (
    "SELECT c.city, SUM(oi.quantity * oi.unit_price) AS revenue FROM customers c "
    "JOIN orders o ON o.customer_id = c.id JOIN order_items oi ON oi.order_id = o.id "
    "GROUP BY c.city ORDER BY revenue DESC;"
)
ORDERED = TaskExample("sql", "revenue per city, biggest first", GOLD, GOLD)
UNORDERED_GOLD = "SELECT name FROM customers WHERE city = 'Berlin';"
UNORDERED = TaskExample("sql", "Which customers live in Berlin?", UNORDERED_GOLD, UNORDERED_GOLD)
COUNTS = (
    "SELECT (SELECT COUNT(*) FROM customers), (SELECT COUNT(*) FROM orders), (SELECT COUNT(*) FROM products)"
)
FEATURES = ["WHERE", "COUNT(", "SUM(", "AVG(", "GROUP BY", "ORDER BY", "LIMIT", "JOIN", "HAVING", "NOT IN"]
FEATURES += ["NOT EXISTS", "DISTINCT", "BETWEEN"]


def test_there_are_enough_templates() -> None:
    assert 25 <= len(TEMPLATES) <= 45


def test_completions_are_one_line_ending_with_a_semicolon(train_sets: dict) -> None:
    for example in train_sets["sql"]:
        assert "\n" not in example.completion and example.completion.endswith(";")
        assert example.completion == example.gold


def test_every_gold_query_runs_and_most_return_rows(train_sets: dict, eval_sets: dict) -> None:
    golds = sorted({e.gold for e in train_sets["sql"] + eval_sets["sql"]})
    empty = 0
    for gold in golds:
        rows = run_query(gold)
        empty += not rows or rows == [(None,)]
    assert empty <= 0.1 * len(golds)


def test_queries_span_the_sql_features(train_sets: dict) -> None:
    text = " ".join(e.gold for e in train_sets["sql"])
    for feature in FEATURES:
        assert feature in text, feature


@pytest.mark.parametrize(
    "output",
    [
        GOLD,
        GOLD.rstrip(";"),
        f"```sql\n{GOLD}\n```",
        f"```\n{GOLD}\n```\nThis query sums the revenue of every city.",
        f"SQL: {GOLD}",
        f"Here is the query:\n\n{GOLD}\n\nIt groups orders by city.",
        f"{GOLD} This returns one row per city.",
        GOLD.lower(),
        GOLD.replace("oi.quantity * oi.unit_price", "oi.unit_price * oi.quantity").replace(
            " JOIN", "\n  JOIN"
        ),
    ],
)
def test_correct_query_scores_one_however_it_is_wrapped(output: str) -> None:
    assert TASK.score(ORDERED, output) == 1.0


def test_order_counts_only_when_the_gold_orders() -> None:
    assert TASK.score(ORDERED, GOLD.replace("DESC", "ASC")) == 0.0
    assert (
        TASK.score(UNORDERED, "SELECT name FROM customers WHERE city = 'Berlin' ORDER BY name DESC;") == 1.0
    )
    assert TASK.score(UNORDERED, "SELECT c.name FROM customers AS c WHERE c.city IN ('Berlin')") == 1.0


@pytest.mark.parametrize(
    "output",
    [
        "SELECT name FROM customers WHERE city = 'Paris';",
        "SELECT name, email FROM customers WHERE city = 'Berlin';",
        "SELECT DISTINCT city FROM customers;",
        "SELECT name FROM customers WHERE city = 'Berlin' LIMIT 1;",
        "SELECT nme FROM customers;",
        "I don't know.",
        "",
    ],
)
def test_wrong_or_broken_query_scores_zero(output: str) -> None:
    assert TASK.score(UNORDERED, output) == 0.0


@pytest.mark.parametrize(
    "output",
    [
        "DROP TABLE customers;",
        "DELETE FROM customers;",
        f"{UNORDERED_GOLD} DROP TABLE customers;",
        f"DELETE FROM orders; {UNORDERED_GOLD}",
        f"```sql\n{UNORDERED_GOLD}\nDELETE FROM customers;\n```",
        "WITH x AS (SELECT 1) DELETE FROM customers;",
        "SELECT name FROM customers; UPDATE customers SET city = 'Berlin';",
    ],
)
def test_hostile_output_scores_zero_and_changes_nothing(output: str) -> None:
    before = run_query(COUNTS)
    assert TASK.score(UNORDERED, output) == 0.0
    assert run_query(COUNTS) == before
    assert TASK.score(UNORDERED, UNORDERED_GOLD) == 1.0


def test_a_query_that_never_ends_scores_zero_quickly() -> None:
    started = time.monotonic()
    never = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT COUNT(*) FROM n;"
    assert TASK.score(UNORDERED, never) == 0.0
    assert time.monotonic() - started < 3
    assert TASK.score(UNORDERED, UNORDERED_GOLD) == 1.0


def test_extract_sql_takes_the_first_statement() -> None:
    assert extract_sql("Query: select 1; select 2;") == "select 1;"
    assert extract_sql("With this query:\nSELECT 1") == "SELECT 1;"
    assert (
        extract_sql("Try this: WITH t AS (SELECT 2) SELECT * FROM t")
        == "WITH t AS (SELECT 2) SELECT * FROM t;"
    )
    assert extract_sql("WITH RECURSIVE n(x) AS (SELECT 1) SELECT x FROM n") == (
        "WITH RECURSIVE n(x) AS (SELECT 1) SELECT x FROM n;"
    )
    fenced = "```sql\nWITH t AS (SELECT 1) SELECT * FROM t\n```"
    assert extract_sql(fenced) == "WITH t AS (SELECT 1) SELECT * FROM t;"
    prose = "Sure! You can use: SELECT 'a;b' FROM customers; Hope it helps"
    assert extract_sql(prose) == "SELECT 'a;b' FROM customers;"
    with pytest.raises(UnsafeQueryError):
        extract_sql("SELECT 1; DROP TABLE orders;")
    with pytest.raises(QueryError):
        extract_sql("no query here")
