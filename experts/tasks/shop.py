"""The fixed "shop" SQLite database the `sql` task asks about, and a guarded runner for model-written queries.

The database is built by code from a fixed seed, so every run and machine sees the same rows. Model output is
hostile by default: `run_query` executes one SELECT/WITH statement on a private copy of the database, under an
authorizer that permits reads only, with bounded time, row count and value size.
"""

from __future__ import annotations

import functools
import random
import re
import sqlite3
import time
from datetime import date, timedelta
from typing import Any

SCHEMA_SQL = """\
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    city TEXT NOT NULL,
    signup_date TEXT NOT NULL
);
CREATE TABLE products (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    price REAL NOT NULL
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    order_date TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE TABLE order_items (
    order_id INTEGER NOT NULL REFERENCES orders(id),
    product_id INTEGER NOT NULL REFERENCES products(id),
    quantity INTEGER NOT NULL,
    unit_price REAL NOT NULL,
    PRIMARY KEY (order_id, product_id)
);
"""

SHOP_SEED = 20240101

CITIES = ["Berlin", "Paris", "London", "Madrid", "Rome", "Amsterdam", "Vienna", "Lisbon"]
STATUSES = ["pending", "shipped", "delivered", "cancelled"]
YEARS = [2023, 2024]  # the years orders are placed in

# category -> (product name, price); categories and statuses are stored lowercase, as users type them.
CATALOG: dict[str, list[tuple[str, float]]] = {
    "electronics": [
        ("Wireless Mouse", 24.99),
        ("USB-C Cable", 9.99),
        ("Bluetooth Speaker", 59.0),
        ("Noise Cancelling Headphones", 149.0),
        ("Laptop Stand", 34.5),
    ],
    "books": [
        ("SQL for Beginners", 29.95),
        ("The Silent Harbor", 14.99),
        ("Cooking at Home", 22.0),
        ("World Atlas", 39.0),
        ("Mystery of the Old Mill", 11.49),
    ],
    "garden": [
        ("Garden Hose", 27.9),
        ("Pruning Shears", 18.75),
        ("Flower Seeds Pack", 4.99),
        ("Watering Can", 12.5),
        ("Patio Chair", 79.0),
    ],
    "toys": [
        ("Building Blocks Set", 44.99),
        ("Plush Bear", 16.0),
        ("Puzzle 1000 Pieces", 19.99),
        ("Remote Control Car", 64.9),
        ("Board Game Classic", 29.0),
    ],
    "kitchen": [
        ("Chef Knife", 54.0),
        ("Coffee Grinder", 42.5),
        ("Cutting Board", 15.99),
        ("Tea Kettle", 31.0),
        ("Mixing Bowls", 21.49),
    ],
}
CATEGORIES = list(CATALOG)
PRODUCTS = [name for items in CATALOG.values() for name, _ in items]

_FIRST = [
    "Anna",
    "Lukas",
    "Sofia",
    "Marco",
    "Emma",
    "Jonas",
    "Chloe",
    "Pablo",
    "Giulia",
    "Daan",
    "Ines",
    "Tom",
    "Lea",
    "Hugo",
    "Clara",
    "Felix",
    "Nora",
    "Diego",
    "Julia",
    "Ruben",
    "Elena",
    "Oscar",
    "Mia",
    "Pedro",
    "Lena",
    "Victor",
    "Alice",
    "Sam",
    "Eva",
    "Noah",
]
_LAST = [
    "Schmidt",
    "Martin",
    "Rossi",
    "Garcia",
    "Jansen",
    "Silva",
    "Huber",
    "Wilson",
    "Dubois",
    "Bakker",
    "Ferreira",
    "Muller",
    "Bianchi",
    "Lopez",
    "Clark",
    "Weber",
    "Moreau",
    "Costa",
    "Visser",
    "Brown",
]
_DOMAINS = ["gmail.com", "outlook.com", "yahoo.com", "example.com", "mail.com"]

N_CUSTOMERS = 30
N_ORDERS = 120
# Some rows are kept out of the orders on purpose, so "never ordered" questions have answers.
_CUSTOMERS_WITHOUT_ORDERS = 4
_PRODUCTS_NEVER_ORDERED = ["World Atlas", "Patio Chair", "Tea Kettle"]


def _shop_rows() -> dict[str, list[tuple[Any, ...]]]:
    rng = random.Random(SHOP_SEED)
    names: list[str] = []
    while len(names) < N_CUSTOMERS:
        name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
        if name not in names:
            names.append(name)
    customers = []
    for index, name in enumerate(names, 1):
        first, last = name.lower().split()
        email = f"{first}.{last}@{rng.choice(_DOMAINS)}"
        # Every city gets customers: the first pass walks the list, later ones are random.
        city = CITIES[index - 1] if index <= len(CITIES) else rng.choice(CITIES)
        signup = date(2021, 1, 1) + timedelta(days=rng.randrange(0, 365 * 3 + 180))
        customers.append((index, name, email, city, signup.isoformat()))

    products: list[tuple[int, str, str, float]] = []
    for category, entries in CATALOG.items():
        for name, price in entries:
            products.append((len(products) + 1, name, category, price))
    price_of = {row[0]: row[3] for row in products}
    orderable = [row[0] for row in products if row[1] not in _PRODUCTS_NEVER_ORDERED]

    buyers = [row[0] for row in customers]
    rng.shuffle(buyers)
    buyers = buyers[_CUSTOMERS_WITHOUT_ORDERS:]
    # Uneven buying: a few loyal customers place many orders, so "more than N orders" questions discriminate.
    weights = [1 + 4 * (i % 5 == 0) + 2 * (i % 3 == 0) for i in range(len(buyers))]
    orders, items = [], []
    start, span = date(YEARS[0], 1, 1), (date(YEARS[-1], 12, 31) - date(YEARS[0], 1, 1)).days + 1
    dates = sorted(start + timedelta(days=rng.randrange(span)) for _ in range(N_ORDERS))
    for order_id, day in enumerate(dates, 1):
        customer = rng.choices(buyers, weights)[0]
        status = rng.choices(STATUSES, [1, 2, 6, 1])[0]
        orders.append((order_id, customer, day.isoformat(), status))
        for product in rng.sample(orderable, rng.choice([1, 1, 2, 2, 3, 4])):
            # Now and then an item sold at a 10% discount, so unit_price is not always the list price.
            unit = round(price_of[product] * (0.9 if rng.random() < 0.15 else 1.0), 2)
            items.append((order_id, product, rng.choice([1, 1, 1, 2, 2, 3, 5]), unit))
    return {"customers": customers, "products": products, "orders": orders, "order_items": items}


def build_database() -> sqlite3.Connection:
    """A new in-memory connection holding the shop; the caller owns it and may change it."""
    connection = sqlite3.connect(":memory:")
    connection.executescript(SCHEMA_SQL)
    for table, rows in _shop_rows().items():
        marks = ", ".join("?" * len(rows[0]))
        connection.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
    connection.commit()
    return connection


@functools.cache
def _snapshot() -> bytes:
    # Serialized once; every query runs on its own deserialized copy, so nothing a query does can persist.
    connection = build_database()
    try:
        return connection.serialize()
    finally:
        connection.close()


class QueryError(Exception):
    """A query that was refused or did not produce a result."""


class UnsafeQueryError(QueryError):
    """Not a single read-only SELECT/WITH statement."""


class QueryTimeoutError(QueryError):
    """Ran past its time budget and was interrupted."""


class TooManyRowsError(QueryError):
    """Returned more rows than allowed."""


class QueryFailedError(QueryError):
    """SQLite refused or failed the statement (syntax error, unknown column, value too large...)."""


DEFAULT_TIMEOUT_S = 1.0
DEFAULT_MAX_ROWS = 1000
_MAX_SQL_CHARS = 10_000
_MAX_VALUE_BYTES = 1_000_000  # bounds zeroblob()/printf() tricks that would allocate gigabytes
_PROGRESS_EVERY = 1000  # VM instructions between deadline checks

_ALLOWED_ACTIONS = {
    sqlite3.SQLITE_SELECT,
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_FUNCTION,
    sqlite3.SQLITE_RECURSIVE,
}
_DENIED_FUNCTIONS = {"load_extension"}
_READ_START = re.compile(r"(select|with)\b", re.IGNORECASE)


def _authorize(action: int, arg1: str | None, arg2: str | None, db: str | None, trigger: str | None) -> int:
    if action not in _ALLOWED_ACTIONS:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _DENIED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def split_statements(sql: str) -> list[str]:
    """`sql` cut at the semicolons that end statements (not those inside quotes or comments); each piece is
    stripped, empty pieces dropped."""
    pieces, start, i, n = [], 0, 0, len(sql)
    while i < n:
        char = sql[i]
        if char in "'\"`[":
            close = "]" if char == "[" else char
            i += 1
            while i < n:
                if sql[i] == close:
                    # A doubled quote is an escaped quote inside the literal.
                    if close != "]" and i + 1 < n and sql[i + 1] == close:
                        i += 2
                        continue
                    break
                i += 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n - 1 if end < 0 else end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n - 1 if end < 0 else end + 1
        elif char == ";":
            pieces.append(sql[start:i])
            start = i + 1
        i += 1
    pieces.append(sql[start:])
    return [piece.strip() for piece in pieces if _strip_comments(piece).strip()]


def _strip_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*|/\*.*?(\*/|\Z)", " ", sql, flags=re.DOTALL)


def run_query(
    sql: str, *, timeout_s: float = DEFAULT_TIMEOUT_S, max_rows: int = DEFAULT_MAX_ROWS
) -> list[tuple[Any, ...]]:
    """The rows `sql` returns on a private copy of the shop.

    Raises UnsafeQueryError unless `sql` is one SELECT/WITH statement that only reads, QueryTimeoutError after
    `timeout_s`, TooManyRowsError past `max_rows`, QueryFailedError for anything SQLite refuses.
    """
    if len(sql) > _MAX_SQL_CHARS:
        raise UnsafeQueryError(f"query is {len(sql)} characters, at most {_MAX_SQL_CHARS} allowed")
    statements = split_statements(sql)
    if len(statements) != 1:
        raise UnsafeQueryError(f"expected exactly one statement, got {len(statements)}")
    statement = statements[0]
    if not _READ_START.match(_strip_comments(statement).lstrip()):
        raise UnsafeQueryError("only SELECT or WITH statements are allowed")

    connection = sqlite3.connect(":memory:")
    try:
        connection.deserialize(_snapshot())
        connection.execute("PRAGMA query_only = ON")
        connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, _MAX_VALUE_BYTES)
        connection.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, _MAX_SQL_CHARS)
        connection.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        # The authorizer is the real guard: a WITH can wrap a DELETE, and only a read-only plan passes it.
        connection.set_authorizer(_authorize)
        deadline = time.monotonic() + timeout_s
        connection.set_progress_handler(lambda: time.monotonic() > deadline, _PROGRESS_EVERY)
        try:
            cursor = connection.execute(statement)
            rows = cursor.fetchmany(max_rows + 1)
        except sqlite3.DatabaseError as error:
            if time.monotonic() > deadline and "interrupt" in str(error).lower():
                raise QueryTimeoutError(f"query ran past {timeout_s:g} s") from None
            if "not authorized" in str(error).lower():
                raise UnsafeQueryError(f"query does more than read: {error}") from None
            raise QueryFailedError(str(error)) from None
        except (sqlite3.Warning, sqlite3.ProgrammingError, OverflowError, ValueError) as error:
            raise QueryFailedError(str(error)) from None
        if len(rows) > max_rows:
            raise TooManyRowsError(f"query returns more than {max_rows} rows")
        return rows
    finally:
        connection.close()
