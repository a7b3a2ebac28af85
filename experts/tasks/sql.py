"""Task `sql`: questions about the shop database in plain language -> one SQLite query.

Each template pairs several phrasings with one gold query; slots (cities, categories, statuses, years, months,
thresholds, top-N, product and customer names) are drawn from the values the shop holds, so gold queries run
and mostly return rows. A phrasing is a full question, or an imperative ("list the ...") or a noun phrase
("revenue per city") that gets wrapped the way users ask for SQL ("query to ...", "Write a SQL query to ...").
Scoring is execution match on the shop (see `SqlTask.score`).
"""

from __future__ import annotations

import functools
import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from experts.tasks.base import MONTHS, Split, TaskExample, generate, strip_code_fences
from experts.tasks.shop import (
    CATEGORIES,
    CITIES,
    STATUSES,
    YEARS,
    QueryError,
    UnsafeQueryError,
    build_database,
    run_query,
    split_statements,
)

Slots = dict[str, str]

_NUMBER_WORDS = {
    2: "two",
    3: "three",
    4: "four",
    5: "five",
    6: "six",
    7: "seven",
    8: "eight",
    9: "nine",
    10: "ten",
}
_QUARTERS = ["first", "second", "third", "fourth"]
_QUARTER_END = ["03-31", "06-30", "09-30", "12-31"]
_SIGNUP_YEARS = [2021, 2022, 2023, 2024]


@functools.cache
def _shop_values() -> tuple[list[str], list[str]]:
    """Names of customers who ordered and of products that sold, so per-name questions have answers."""
    connection = build_database()
    try:
        customers = [
            r[0]
            for r in connection.execute(
                "SELECT name FROM customers WHERE id IN (SELECT customer_id FROM orders) ORDER BY id"
            )
        ]
        products = [
            r[0]
            for r in connection.execute(
                "SELECT name FROM products WHERE id IN (SELECT product_id FROM order_items) ORDER BY id"
            )
        ]
    finally:
        connection.close()
    return customers, products


def _count(rng: random.Random, low: int, high: int, key: str = "n") -> Slots:
    value = rng.randint(low, high)
    # Users write small counts as words about as often as digits.
    text = _NUMBER_WORDS[value] if value in _NUMBER_WORDS and rng.random() < 0.4 else str(value)
    return {key: str(value), f"{key}t": text}


def _month(rng: random.Random, years: list[int]) -> Slots:
    year, month = rng.choice(years), rng.randint(1, 12)
    return {"ym": f"{year}-{month:02d}", "month": f"{MONTHS[month - 1]} {year}"}


def _city(rng: random.Random) -> Slots:
    return {"city": rng.choice(CITIES)}


def _cat(rng: random.Random) -> Slots:
    return {"cat": rng.choice(CATEGORIES)}


def _status(rng: random.Random) -> Slots:
    return {"status": rng.choice(STATUSES)}


def _year(rng: random.Random) -> Slots:
    return {"year": str(rng.choice(YEARS))}


def _slots(*makers: Callable[[random.Random], Slots]) -> Callable[[random.Random], Slots]:
    def make(rng: random.Random) -> Slots:
        values: Slots = {}
        for maker in makers:
            values.update(maker(rng))
        return values

    return make


def _none(rng: random.Random) -> Slots:
    return {}


@dataclass(frozen=True)
class _Template:
    sql: str
    questions: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()  # imperative, lowercase, no final punctuation: "list the customers in {city}"
    nouns: tuple[str, ...] = ()  # noun phrase, lowercase: "the number of customers in {city}"
    slots: Callable[[random.Random], Slots] = field(default=_none)


_REVENUE = "SUM(oi.quantity * oi.unit_price)"
_C_O = "FROM customers c JOIN orders o ON o.customer_id = c.id"
_C_O_OI = f"{_C_O} JOIN order_items oi ON oi.order_id = o.id"
_O_OI = "FROM orders o JOIN order_items oi ON oi.order_id = o.id"
_O_OI_P = f"{_O_OI} JOIN products p ON p.id = oi.product_id"


def _price(values: list[int]) -> Callable[[random.Random], Slots]:
    return lambda rng: {"x": str(rng.choice(values))}


def _signup_since(rng: random.Random) -> Slots:
    year = rng.choice([2022, 2023])
    month = rng.randint(1, 12)
    return {"sym": f"{year}-{month:02d}", "smonth": f"{MONTHS[month - 1]} {year}"}


def _quarter(rng: random.Random) -> Slots:
    year, quarter = rng.choice(YEARS), rng.randint(1, 4)
    return {
        "year": str(year),
        "q": str(quarter),
        "qth": _QUARTERS[quarter - 1],
        "qstart": f"{year}-{3 * quarter - 2:02d}-01",
        "qend": f"{year}-{_QUARTER_END[quarter - 1]}",
    }


def _customer(rng: random.Random) -> Slots:
    return {"customer": rng.choice(_shop_values()[0])}


def _product(rng: random.Random) -> Slots:
    return {"product": rng.choice(_shop_values()[1])}


def _busy_status(rng: random.Random) -> Slots:
    # Pending and cancelled orders are rare; per-city questions about them would mostly have empty answers.
    return {"status": rng.choice(["delivered", "delivered", "shipped", "cancelled"])}


TEMPLATES: list[_Template] = [
    _Template(
        "SELECT name FROM customers WHERE city = '{city}';",
        (
            "Which customers live in {city}?",
            "Who are our customers in {city}?",
            "Which of our customers are based in {city}?",
        ),
        (
            "list the customers who live in {city}",
            "show all customers from {city}",
            "get the names of customers in {city}",
            "find every customer located in {city}",
        ),
        ("customer names for {city}", "all customers from {city}"),
        _city,
    ),
    _Template(
        "SELECT name, email FROM customers WHERE city = '{city}';",
        (
            "What are the names and email addresses of our customers in {city}?",
            "Who are the customers in {city} and what are their emails?",
        ),
        (
            "get the name and email of every customer in {city}",
            "list names and email addresses of customers from {city}",
            "pull the emails of the {city} customers along with their names",
        ),
        ("names and emails of customers in {city}", "the contact emails of {city} customers, with names"),
        _city,
    ),
    _Template(
        "SELECT COUNT(*) FROM customers WHERE city = '{city}';",
        (
            "How many customers do we have in {city}?",
            "How many customers live in {city}?",
            "how many of our customers are from {city}?",
        ),
        ("count the customers in {city}", "count how many customers are from {city}"),
        ("the number of customers in {city}", "customer count for {city}"),
        _city,
    ),
    _Template(
        "SELECT city, COUNT(*) FROM customers GROUP BY city;",
        ("How many customers are there in each city?", "How many customers do we have per city?"),
        (
            "count customers per city",
            "show the number of customers in every city",
            "group customers by city and count them",
        ),
        ("the number of customers per city", "customer counts by city"),
    ),
    _Template(
        "SELECT COUNT(*) FROM customers WHERE strftime('%Y', signup_date) = '{syear}';",
        (
            "How many customers signed up in {syear}?",
            "How many new customers joined in {syear}?",
            "How many people registered as customers during {syear}?",
        ),
        ("count the customers who signed up in {syear}", "count the signups from {syear}"),
        ("the number of customers who joined in {syear}", "total signups in {syear}"),
        lambda rng: {"syear": str(rng.choice(_SIGNUP_YEARS))},
    ),
    _Template(
        "SELECT name, signup_date FROM customers WHERE signup_date >= '{sym}-01' ORDER BY signup_date;",
        (
            "Which customers signed up since {smonth}? Oldest first.",
            "Who joined on or after the start of {smonth}? Sort by signup date.",
        ),
        (
            "list customers who signed up since {smonth}, ordered by signup date",
            "show customers that joined from {smonth} onwards, earliest first",
        ),
        ("customers who joined since {smonth}, sorted by signup date",),
        _signup_since,
    ),
    _Template(
        "SELECT name, price FROM products WHERE category = '{cat}';",
        (
            "What products do we sell in the {cat} category?",
            "Which {cat} products do we have and what do they cost?",
        ),
        (
            "list all {cat} products with their prices",
            "show the name and price of every product in {cat}",
            "get the {cat} products and prices",
        ),
        ("{cat} products and their prices", "the names and prices of products in the {cat} category"),
        _cat,
    ),
    _Template(
        "SELECT name, price FROM products WHERE price < {x} ORDER BY price;",
        (
            "Which products cost less than ${x}? Cheapest first.",
            "What can I buy for under {x} dollars? Sort by price.",
        ),
        (
            "list products priced below {x}, cheapest first",
            "show every product under ${x} ordered by price",
            "find products cheaper than {x} sorted from the lowest price",
        ),
        ("products below ${x}, cheapest first",),
        _price([10, 15, 20, 25, 30, 40, 50]),
    ),
    _Template(
        "SELECT name, price FROM products WHERE category = '{cat}' AND price > {x};",
        ("Which {cat} products cost more than ${x}?", "Are there any {cat} items priced above {x}?"),
        ("list {cat} products that cost over ${x}", "find products in {cat} with a price above {x}"),
        ("{cat} products more expensive than ${x}",),
        _slots(_cat, _price([15, 20, 25, 30, 40])),
    ),
    _Template(
        "SELECT name, price FROM products ORDER BY price DESC LIMIT {n};",
        ("What are the {nt} most expensive products?", "Which {nt} products have the highest price?"),
        (
            "list the {nt} most expensive products",
            "show the top {nt} products by price",
            "get the {nt} priciest items in the catalog",
        ),
        ("the {nt} most expensive products", "top {nt} products by price"),
        lambda rng: _count(rng, 3, 8),
    ),
    _Template(
        "SELECT name, price FROM products WHERE category = '{cat}' ORDER BY price LIMIT {n};",
        ("What are the {nt} cheapest products in {cat}?", "Which {nt} products in {cat} cost the least?"),
        ("list the {nt} cheapest products in the {cat} category", "show the {nt} lowest priced {cat} items"),
        ("the {nt} cheapest {cat} products",),
        _slots(_cat, lambda rng: _count(rng, 2, 4)),
    ),
    _Template(
        "SELECT AVG(price) FROM products WHERE category = '{cat}';",
        (
            "What is the average price of {cat} products?",
            "What's the mean price in the {cat} category?",
            "How much does a {cat} product cost on average?",
        ),
        ("work out the average price of products in {cat}", "compute the average {cat} product price"),
        ("the average price of {cat} products", "average price for the {cat} category"),
        _cat,
    ),
    _Template(
        "SELECT category, COUNT(*) FROM products GROUP BY category;",
        ("How many products are in each category?", "How many items do we sell per category?"),
        ("count products by category", "show how many products each category has"),
        ("the product count per category", "number of products in every category"),
    ),
    _Template(
        "SELECT category, AVG(price) AS avg_price FROM products GROUP BY category ORDER BY avg_price DESC;",
        (
            "What's the average product price in each category, highest first?",
            "Which categories have the highest average price? Show all of them sorted.",
        ),
        (
            "list categories by average price, most expensive first",
            "show the average price per category sorted descending",
        ),
        ("average price per category, highest first",),
    ),
    _Template(
        "SELECT id, order_date FROM orders WHERE status = '{status}';",
        (
            "Which orders are {status}?",
            "What orders have the status '{status}'?",
            "Show me the {status} orders.",
        ),
        (
            "list all {status} orders",
            "find every order with status {status}",
            "get the ids and dates of {status} orders",
        ),
        ("all {status} orders", "orders with status '{status}'"),
        _status,
    ),
    _Template(
        "SELECT status, COUNT(*) FROM orders GROUP BY status;",
        ("How many orders are in each status?", "How many orders do we have per status?"),
        ("count the orders by status", "break down the number of orders per status"),
        ("order counts per status", "the number of orders for each status"),
    ),
    _Template(
        "SELECT id, order_date, status FROM orders WHERE strftime('%Y-%m', order_date) = '{ym}';",
        ("Which orders were placed in {month}?", "What orders came in during {month}?"),
        ("show all orders from {month}", "list the orders placed in {month} with their status"),
        ("orders placed in {month}", "all orders from {month} with status"),
        lambda rng: _month(rng, YEARS),
    ),
    _Template(
        "SELECT COUNT(*) FROM orders WHERE status = '{status}' AND strftime('%Y', order_date) = '{year}';",
        ("How many {year} orders are {status}?", "How many orders from {year} have status {status}?"),
        ("count the {status} orders from {year}",),
        ("the number of {status} orders placed in {year}",),
        _slots(_status, _year),
    ),
    _Template(
        "SELECT COUNT(*) FROM orders WHERE order_date BETWEEN '{qstart}' AND '{qend}';",
        (
            "How many orders did we get in Q{q} {year}?",
            "How many orders were placed in the {qth} quarter of {year}?",
        ),
        ("count orders placed in Q{q} {year}",),
        ("the number of orders in Q{q} {year}", "order count for Q{q} of {year}"),
        _quarter,
    ),
    _Template(
        "SELECT o.id, o.order_date, o.status FROM orders o JOIN customers c ON c.id = o.customer_id "
        "WHERE c.name = '{customer}';",
        ("What orders has {customer} placed?", "Show me all orders placed by {customer}."),
        ("list the orders of {customer} with date and status", "find every order {customer} has made"),
        ("all orders from customer {customer}", "{customer}'s orders"),
        _customer,
    ),
    _Template(
        "SELECT COUNT(*) FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.name = '{customer}';",
        ("How many orders did {customer} place?", "How many times has {customer} ordered from us?"),
        ("count the orders placed by {customer}",),
        ("the number of orders from {customer}", "order count for {customer}"),
        _customer,
    ),
    _Template(
        f"SELECT c.name, COUNT(o.id) AS order_count {_C_O} GROUP BY c.id ORDER BY order_count DESC;",
        (
            "How many orders has each customer placed? Highest count first.",
            "Which customers order the most? Show each customer's number of orders, sorted.",
        ),
        (
            "list customers with their order counts, most orders first",
            "count orders per customer and sort descending",
        ),
        ("order count per customer, highest first",),
    ),
    _Template(
        f"SELECT c.name {_C_O} GROUP BY c.id HAVING COUNT(o.id) > {{k}};",
        ("Which customers have placed more than {kt} orders?", "Who ordered more than {kt} times?"),
        ("list customers with more than {kt} orders", "find customers who placed over {kt} orders"),
        ("customers with more than {kt} orders",),
        lambda rng: _count(rng, 2, 9, "k"),
    ),
    _Template(
        "SELECT name FROM customers WHERE id NOT IN (SELECT customer_id FROM orders);",
        (
            "Which customers have never ordered anything?",
            "Who signed up but never placed an order?",
            "Are there customers with no orders at all?",
        ),
        ("find customers who have not placed any orders", "list the customers without a single order"),
        ("customers with zero orders", "customers who never bought anything"),
    ),
    _Template(
        "SELECT p.name FROM products p WHERE NOT EXISTS "
        "(SELECT 1 FROM order_items oi WHERE oi.product_id = p.id);",
        ("Which products have never been ordered?", "Are there any products nobody has bought?"),
        ("list products that were never sold", "find products with no orders"),
        ("products that nobody has ordered", "unsold products"),
    ),
    _Template(
        f"SELECT name FROM customers WHERE id NOT IN "
        f"(SELECT o.customer_id {_O_OI_P} WHERE p.category = '{{cat}}');",
        (
            "Which customers have never bought anything from {cat}?",
            "Who hasn't ordered anything in {cat} yet?",
        ),
        ("list customers who never purchased {cat} products", "find customers with no {cat} purchases"),
        ("customers who have never bought {cat} items",),
        _cat,
    ),
    _Template(
        f"SELECT DISTINCT c.name {_C_O} WHERE c.city = '{{city}}' AND o.status = '{{status}}';",
        ("Which customers in {city} have a {status} order?", "Who from {city} has orders that are {status}?"),
        (
            "list {city} customers with {status} orders",
            "find customers from {city} who have at least one {status} order",
        ),
        ("customers in {city} with {status} orders",),
        _slots(_city, _busy_status),
    ),
    _Template(
        f"SELECT {_REVENUE} {_O_OI} WHERE strftime('%Y', o.order_date) = '{{year}}';",
        ("What was our total revenue in {year}?", "How much did we sell in {year} in total?"),
        ("calculate total revenue for {year}", "sum up all sales from {year}"),
        ("total revenue in {year}", "the total sales amount for {year}"),
        _year,
    ),
    _Template(
        f"SELECT {_REVENUE} {_O_OI} WHERE o.status = '{{status}}';",
        ("How much revenue comes from {status} orders?", "What's the total value of all {status} orders?"),
        ("sum the value of {status} orders", "calculate the revenue of orders with status {status}"),
        ("total value of {status} orders",),
        _status,
    ),
    _Template(
        f"SELECT c.city, {_REVENUE} AS revenue {_C_O_OI} GROUP BY c.city ORDER BY revenue DESC;",
        (
            "Which cities bring in the most revenue? Show revenue per city, highest first.",
            "How much revenue does each city generate, sorted from highest?",
        ),
        ("show total revenue per city, highest first", "rank cities by revenue"),
        ("revenue per city, biggest first", "total sales by city in descending order"),
    ),
    _Template(
        f"SELECT p.category, {_REVENUE} AS revenue {_O_OI_P} WHERE strftime('%Y', o.order_date) = '{{year}}' "
        "GROUP BY p.category;",
        (
            "How much revenue did each category make in {year}?",
            "What were sales per product category in {year}?",
        ),
        ("show revenue by category for {year}", "sum sales per category for orders in {year}"),
        ("revenue per category in {year}", "{year} sales broken down by category"),
        _year,
    ),
    _Template(
        "SELECT p.name, SUM(oi.quantity) AS units FROM order_items oi "
        "JOIN products p ON p.id = oi.product_id GROUP BY p.id ORDER BY units DESC LIMIT {n};",
        ("What are our {nt} best-selling products by quantity?", "Which {nt} products sold the most units?"),
        ("list the top {nt} products by units sold", "find the {nt} best sellers by quantity"),
        ("the {nt} best-selling products by units", "top {nt} products by quantity sold"),
        lambda rng: _count(rng, 3, 8),
    ),
    _Template(
        "SELECT SUM(oi.quantity) FROM order_items oi JOIN products p ON p.id = oi.product_id "
        "WHERE p.name = '{product}';",
        ("How many units of {product} have we sold?", "How many {product} items were sold in total?"),
        ("count the total units sold of {product}", "sum the quantity sold for {product}"),
        ("total quantity sold of {product}", "units sold for the product {product}"),
        _product,
    ),
    _Template(
        f"SELECT c.name, {_REVENUE} AS total {_C_O_OI} GROUP BY c.id ORDER BY total DESC LIMIT {{n}};",
        ("Who are our top {nt} customers by total spend?", "Which {nt} customers have spent the most?"),
        (
            "find the top {nt} customers by total spend",
            "list the {nt} biggest spending customers with their totals",
        ),
        ("the top {nt} customers by money spent",),
        lambda rng: _count(rng, 3, 10),
    ),
    _Template(
        f"SELECT c.name, {_REVENUE} AS total {_C_O_OI} GROUP BY c.id HAVING total > {{x}};",
        (
            "Which customers have spent more than ${x} in total?",
            "Who spent over {x} dollars with us overall?",
        ),
        (
            "list customers whose total spending is above ${x}",
            "find customers with more than ${x} in purchases",
        ),
        ("customers with total spend over ${x}",),
        _price([200, 300, 500, 750, 1000, 1500]),
    ),
    _Template(
        "SELECT strftime('%m', order_date) AS month, COUNT(*) FROM orders "
        "WHERE strftime('%Y', order_date) = '{year}' GROUP BY month ORDER BY month;",
        ("How many orders did we get each month in {year}?", "What was the monthly order count in {year}?"),
        ("count orders per month for {year}", "show the number of orders in every month of {year}"),
        ("orders per month in {year}", "monthly order counts for {year}"),
        _year,
    ),
    _Template(
        f"SELECT strftime('%m', o.order_date) AS month, {_REVENUE} AS revenue {_O_OI} "
        "WHERE strftime('%Y', o.order_date) = '{year}' GROUP BY month ORDER BY month;",
        ("What was our revenue for each month of {year}?", "How much did we sell per month in {year}?"),
        ("show monthly revenue for {year}", "sum revenue by month for {year}"),
        ("monthly revenue in {year}", "revenue per month for {year}"),
        _year,
    ),
    _Template(
        f"SELECT c.city, COUNT(o.id) {_C_O} WHERE strftime('%Y', o.order_date) = '{{year}}' GROUP BY c.city;",
        ("How many orders came from each city in {year}?",),
        ("count {year} orders per customer city",),
        ("number of orders per city in {year}", "orders by city for {year}"),
        _year,
    ),
    _Template(
        "SELECT o.id, c.name, c.email FROM orders o JOIN customers c ON c.id = o.customer_id "
        "WHERE o.status = '{status}';",
        (
            "Which customers have {status} orders? Give the order id, name and email.",
            "Who placed the {status} orders? I need order ids with names and emails.",
        ),
        (
            "show all {status} orders with the customer's name and email",
            "list {status} orders together with customer name and email",
        ),
        ("{status} orders with customer names and emails",),
        _status,
    ),
    _Template(
        "SELECT DISTINCT p.name FROM products p JOIN order_items oi ON oi.product_id = p.id "
        "JOIN orders o ON o.id = oi.order_id JOIN customers c ON c.id = o.customer_id "
        "WHERE c.city = '{city}' AND p.category = '{cat}';",
        (
            "Which {cat} products have customers from {city} bought?",
            "What {cat} items were ordered by people in {city}?",
        ),
        ("list the {cat} products ordered by customers in {city}",),
        ("{cat} products bought by {city} customers",),
        _slots(_city, _cat),
    ),
]

# How users ask for SQL around an imperative ("{t}") or a noun phrase ("{n}"); {T}/{N} are capitalised.
_TASK_WRAPPERS = [
    "Write a SQL query to {t}.",
    "Write a query to {t}.",
    "query to {t}",
    "SQL to {t}",
    "Give me the SQL to {t}.",
    "Can you write a query to {t}?",
    "I need a query to {t}.",
    "{T}.",
    "{t}",
    "Please {t}.",
    "sql query to {t}",
    "How would I {t} in SQL?",
    "Write SQL to {t}.",
    "Could you give me a SQL statement to {t}?",
    "need a query to {t}",
    "SQLite query to {t}.",
]
_NOUN_WRAPPERS = [
    "SQL for {n}",
    "query for {n}",
    "Write a query for {n}.",
    "Give me the SQL for {n}.",
    "{n}",
    "{N}, please.",
    "sql: {n}",
    "I need a query that returns {n}.",
    "Show me {n}.",
    "Write a SQL query that returns {n}.",
    "select statement for {n}",
]


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def _draw(rng: random.Random) -> TaskExample:
    template = rng.choice(TEMPLATES)
    slots = template.slots(rng)
    forms = [("q", q) for q in template.questions] + [("t", t) for t in template.tasks]
    forms += [("n", n) for n in template.nouns]
    kind, phrasing = rng.choice(forms)
    text = phrasing.format(**slots)
    if kind == "t":
        prompt = rng.choice(_TASK_WRAPPERS).format(t=text, T=_capitalise(text))
    elif kind == "n":
        prompt = rng.choice(_NOUN_WRAPPERS).format(n=text, N=_capitalise(text))
    else:
        prompt = text
    if rng.random() < 0.1:
        # Terse users: all lowercase, no closing punctuation.
        prompt = prompt.lower().rstrip(".?")
    sql = template.sql.format(**slots)
    return TaskExample(task="sql", prompt=prompt, completion=sql, gold=sql)


# A statement that starts with one of these changes the database: an output carrying one anywhere is wrong.
_WRITE_START = re.compile(
    r"(insert|update|delete|drop|alter|create|replace|attach|detach|pragma|vacuum|reindex|begin|commit)\b",
    re.IGNORECASE,
)
_WRITE_ANYWHERE = re.compile(
    r"\b(insert\s+into|delete\s+from|drop\s+(table|view|index|trigger)|update\s+\w+\s+set|alter\s+table"
    r"|create\s+(table|view|index|trigger)|attach\s+database|pragma\s+\w)",
    re.IGNORECASE,
)
# Where a query starts: SELECT, or a WITH only when a CTE follows ("WITH t AS (", "WITH RECURSIVE t(x) AS ("),
# so prose like "With this query..." is not taken for SQL.
_QUERY = r"(select\b|with\s+(?:recursive\s+)?\w+\s*(?:\([^)]*\)\s*)?as\s*\()"
# A query at the start of a line, maybe after a label ("SQL:", "Query:", "Answer:"), is preferred...
_LINE_START = re.compile(
    rf"^[ \t>*]*(?:(?:sqlite|sql)?\s*(?:query)?\s*:|answer\s*:)?[ \t]*{_QUERY}", re.IGNORECASE | re.MULTILINE
)
# ...to one inside a sentence ("You can use: SELECT ...").
_ANYWHERE = re.compile(rf"\b{_QUERY}", re.IGNORECASE)


def extract_sql(output: str) -> str:
    """The first SQL statement in a model output: the body of a ``` fence when there is one, past labels like
    "SQL:" and any preamble, up to the first `;` outside quotes. Raises UnsafeQueryError when the output also
    carries a statement that writes, and QueryError when it has no SELECT/WITH at all."""
    text = strip_code_fences(output)
    match = _LINE_START.search(text)
    start = match.start(1) if match else None
    if start is None:
        found = _ANYWHERE.search(text)
        if not found:
            raise QueryError("no SELECT or WITH statement in the output")
        start = found.start()
    if _WRITE_ANYWHERE.search(text[:start]):
        raise UnsafeQueryError("the output carries a statement that writes")
    statements = split_statements(text[start:])
    if any(_WRITE_START.match(statement) for statement in statements[1:]):
        raise UnsafeQueryError("the output carries a statement that writes")
    return statements[0] + ";"


def _normalise(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    # Floats rounded, so the same sum computed in another order (a*b vs b*a) still matches.
    return [tuple(round(v, 6) if isinstance(v, float) else v for v in row) for row in rows]


@functools.lru_cache(maxsize=4096)
def _gold_rows(sql: str) -> tuple[tuple[Any, ...], ...]:
    return tuple(_normalise(run_query(sql)))


_ORDER_BY = re.compile(r"\border\s+by\b", re.IGNORECASE)


class SqlTask:
    """Questions about the shop -> one SQLite query (one line, ending with `;`)."""

    name = "sql"
    has_expert = True

    def examples(self, split: Split, n: int, *, seed: int = 0) -> list[TaskExample]:
        return generate(_draw, split, n, seed=seed, split_key=lambda example: example.gold)

    def score(self, example: TaskExample, output: str) -> float:
        """Execution match: 1.0 when the predicted query returns the gold query's rows on the shop, as a
        multiset, or as an ordered list when the gold query has ORDER BY; 0.0 otherwise, and for output that
        holds no query, a query that fails or times out, or anything that writes."""
        gold = str(example.gold)
        try:
            predicted = _normalise(run_query(extract_sql(output)))
        except QueryError:
            return 0.0
        expected = list(_gold_rows(gold))
        if _ORDER_BY.search(gold):
            return float(predicted == expected)
        return float(Counter(predicted) == Counter(expected))
