"""Task `math`: arithmetic word problems -> one line per step ("a op b = c"), then "Answer: N".

Numbers stay moderate (operands mostly up to 3 digits, products up to 4) and every division is exact, so a
small model can learn the steps. Arithmetic is done in Decimal so no step shows a float artefact.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from decimal import Decimal

from experts.tasks.base import Split, TaskExample, generate

_CENT = Decimal("0.01")
PERCENTS = [5, 10, 15, 20, 25, 30, 40, 50, 60, 75, 80]

_PEOPLE = [
    ("Sara", "she"),
    ("Tom", "he"),
    ("Maya", "she"),
    ("Leo", "he"),
    ("Aisha", "she"),
    ("Ben", "he"),
    ("Nina", "she"),
    ("Omar", "he"),
    ("Lucy", "she"),
    ("Raj", "he"),
    ("Emma", "she"),
    ("Jack", "he"),
    ("Zoe", "she"),
    ("Carlos", "he"),
    ("Hannah", "she"),
    ("Ivan", "he"),
    ("Priya", "she"),
    ("Sam", "he"),
    ("Grace", "she"),
    ("Mateo", "he"),
    ("Chloe", "she"),
    ("Daniel", "he"),
    ("Yuki", "she"),
    ("Ali", "he"),
]
# (singular, plural)
_THINGS = [
    ("apple", "apples"),
    ("notebook", "notebooks"),
    ("pencil", "pencils"),
    ("marble", "marbles"),
    ("sticker", "stickers"),
    ("cookie", "cookies"),
    ("card", "cards"),
    ("book", "books"),
    ("ticket", "tickets"),
    ("sandwich", "sandwiches"),
    ("T-shirt", "T-shirts"),
    ("pen", "pens"),
    ("cupcake", "cupcakes"),
    ("mug", "mugs"),
    ("toy car", "toy cars"),
    ("candle", "candles"),
    ("egg", "eggs"),
    ("orange", "oranges"),
    ("balloon", "balloons"),
    ("sock", "socks"),
]
_PRICEY = [
    "jacket",
    "pair of shoes",
    "backpack",
    "lamp",
    "chair",
    "bike helmet",
    "watch",
    "coat",
    "blender",
    "desk",
    "phone case",
    "suitcase",
    "rug",
    "guitar",
]
_SPENDING = ["groceries", "lunch", "a gift", "books", "gas", "a concert ticket", "shoes", "a haircut"]


class _Work:
    """The steps of one solution, formatted as they will appear in the completion."""

    def __init__(self, money: bool = False) -> None:
        self.money = money
        self.lines: list[str] = []

    def fmt(self, x: Decimal) -> str:
        if x == x.to_integral_value():
            return str(int(x))
        # Money amounts keep their cents ("7.50"), as in the question; fractions like 0.15 stay as they are.
        if self.money and abs(x) >= 1:
            return f"{x.quantize(_CENT)}"
        return f"{x.quantize(_CENT).normalize():f}"

    def do(self, a: Decimal | int, op: str, b: Decimal | int) -> Decimal:
        a, b = Decimal(a), Decimal(b)
        if op == "+":
            c = a + b
        elif op == "-":
            c = a - b
        elif op == "*":
            c = a * b
        elif op == "/":
            c = a / b
        else:
            raise ValueError(f"unknown operator {op!r}")
        # Templates are built so every result is exact in cents; anything else is a template bug.
        if c != c.quantize(_CENT):
            raise ArithmeticError(f"{a} {op} {b} = {c} is not exact to 2 decimals")
        self.lines.append(f"{self.fmt(a)} {op} {self.fmt(b)} = {self.fmt(c)}")
        return c

    def completion(self, answer: Decimal) -> str:
        return "\n".join([*self.lines, f"Answer: {self.fmt(answer)}"])


def money(x: Decimal | int) -> str:
    """A price as a user writes it: "$12", "$2.50"."""
    x = Decimal(x)
    return f"${int(x)}" if x == x.to_integral_value() else f"${x.quantize(_CENT)}"


def _price(rng: random.Random, low: int = 1, high: int = 40) -> Decimal:
    whole = Decimal(rng.randint(low, high))
    kind = rng.random()
    if kind < 0.5:
        return whole
    if kind < 0.75:
        return whole + Decimal(rng.choice(["0.25", "0.50", "0.75"]))
    return whole + Decimal(rng.choice(["0.49", "0.99", "0.95", "0.20"]))


def _person(rng: random.Random) -> tuple[str, str]:
    return rng.choice(_PEOPLE)


def _fill(
    rng: random.Random, phrasings: list[str], *, person: tuple[str, str] | None = None, **values: object
) -> str:
    name, pron = person or _person(rng)
    poss = "her" if pron == "she" else "his"
    return rng.choice(phrasings).format(name=name, pron=pron, Pron=pron.capitalize(), poss=poss, **values)


Problem = tuple[str, _Work, Decimal]


def _add_more(rng: random.Random) -> Problem:
    a, b = rng.randint(5, 200), rng.randint(2, 150)
    one, many = rng.choice(_THINGS)
    prompt = _fill(
        rng,
        [
            "{name} has {a} {many}. {Pron} buys {b} more. How many {many} does {pron} have now?",
            "{name} had {a} {many} and got {b} more for {poss} birthday. How many {many} does {pron} have?",
            "There are {a} {many} in a box and {name} adds {b}. How many {many} are in the box now?",
        ],
        a=a,
        b=b,
        many=many,
    )
    work = _Work()
    return prompt, work, work.do(a, "+", b)


def _give_away(rng: random.Random) -> Problem:
    a = rng.randint(20, 500)
    b = rng.randint(3, a - 1)
    one, many = rng.choice(_THINGS)
    prompt = _fill(
        rng,
        [
            "{name} had {a} {many} and gave {b} to a friend. How many are left?",
            "A shop had {a} {many} in stock and sold {b}. How many {many} are left?",
            "{name} has {a} {many}. After losing {b}, how many does {pron} have?",
        ],
        a=a,
        b=b,
        many=many,
    )
    work = _Work()
    return prompt, work, work.do(a, "-", b)


def _boxes(rng: random.Random) -> Problem:
    a, b = rng.randint(6, 48), rng.randint(3, 60)
    one, many = rng.choice(_THINGS)
    prompt = _fill(
        rng,
        [
            "A box holds {a} {many}. How many {many} are in {b} boxes?",
            "Each pack has {a} {many}. {name} buys {b} packs. How many {many} is that?",
            "There are {b} rows with {a} {many} in each row. How many {many} are there in total?",
        ],
        a=a,
        b=b,
        many=many,
    )
    work = _Work()
    return prompt, work, work.do(a, "*", b)


def _share(rng: random.Random) -> Problem:
    b, q = rng.randint(2, 12), rng.randint(3, 60)
    a = b * q
    one, many = rng.choice(_THINGS)
    prompt = _fill(
        rng,
        [
            "{a} {many} are shared equally among {b} friends. How many does each friend get?",
            "{name} splits {a} {many} evenly into {b} bags. How many go in each bag?",
            "A teacher hands out {a} {many} equally to {b} students. How many does each student get?",
        ],
        a=a,
        b=b,
        many=many,
    )
    work = _Work()
    return prompt, work, work.do(a, "/", b)


def _unit_price(rng: random.Random) -> Problem:
    q, p = rng.randint(2, 12), _price(rng)
    one, many = rng.choice(_THINGS)
    prompt = _fill(
        rng,
        [
            "{name} buys {q} {many} at {p} each. How much does {pron} spend?",
            "One {one} costs {p}. How much do {q} {many} cost?",
            "What do {q} {many} cost if each one is {p}?",
            "I bought {q} {many} for {p} each. What did I pay in total?",
        ],
        q=q,
        p=money(p),
        one=one,
        many=many,
    )
    work = _Work(money=True)
    return prompt, work, work.do(q, "*", p)


def _two_items(rng: random.Random) -> Problem:
    q, p1, p2 = rng.randint(2, 6), _price(rng, 1, 15), _price(rng, 1, 30)
    (one, many), (other, _) = rng.sample(_THINGS, 2)
    prompt = _fill(
        rng,
        [
            "I bought {q} {many} at {p1} each and a {other} for {p2}. How much did I spend?",
            "{name} buys {q} {many} for {p1} each and one {other} for {p2}. What is the total?",
            "{q} {many} cost {p1} each and a {other} costs {p2}. How much for all of it?",
        ],
        q=q,
        many=many,
        other=other,
        p1=money(p1),
        p2=money(p2),
    )
    work = _Work(money=True)
    return prompt, work, work.do(work.do(q, "*", p1), "+", p2)


def _change(rng: random.Random) -> Problem:
    q, p = rng.randint(2, 6), _price(rng, 1, 15)
    bill = next(b for b in (20, 50, 100) if b > q * p)
    one, many = rng.choice(_THINGS)
    prompt = _fill(
        rng,
        [
            "{name} pays with a {bill} bill for {q} {many} at {p} each. How much change does {pron} get?",
            "I have {bill} and buy {q} {many} costing {p} each. How much money do I have left?",
        ],
        q=q,
        p=money(p),
        bill=money(bill),
        many=many,
    )
    work = _Work(money=True)
    return prompt, work, work.do(bill, "-", work.do(q, "*", p))


def _percent_of(rng: random.Random) -> Problem:
    p, n = rng.choice(PERCENTS), 20 * rng.randint(1, 50)
    prompt = _fill(
        rng,
        [
            "What is {p}% of {n}?",
            "calculate {p}% of {n}",
            "{p} percent of {n}?",
            "what's {p}% of {n}",
            "Find {p}% of {n}.",
            "How much is {p}% of {n}?",
        ],
        p=p,
        n=n,
    )
    work = _Work()
    return prompt, work, work.do(n, "*", Decimal(p) / 100)


def _discount(rng: random.Random) -> Problem:
    p, price = rng.choice(PERCENTS), 20 * rng.randint(1, 20)
    item = rng.choice(_PRICEY)
    prompt = _fill(
        rng,
        [
            "A {item} costs {price} and is on sale for {p}% off. What is the sale price?",
            "{name} wants a {item} priced at {price}. It's {p}% off today. How much does {pron} pay?",
            "How much is a {price} {item} after a {p}% discount?",
        ],
        item=item,
        price=money(price),
        p=p,
    )
    work = _Work(money=True)
    return prompt, work, work.do(price, "-", work.do(price, "*", Decimal(p) / 100))


def _split_bill(rng: random.Random) -> Problem:
    k, each = rng.randint(2, 8), _price(rng, 8, 60)
    total = k * each
    prompt = _fill(
        rng,
        [
            "A dinner bill is {total}. {k} friends split it equally. How much does each pay?",
            "We're splitting a {total} bill between {k} people. What is each share?",
            "{k} coworkers share a {total} lunch order equally. How much does each one pay?",
        ],
        total=money(total),
        k=k,
    )
    work = _Work(money=True)
    return prompt, work, work.do(total, "/", k)


def _bare(op: str) -> Callable[[random.Random], Problem]:
    phrasings = {
        "+": [
            "what's {a} + {b}",
            "{a} plus {b}?",
            "calculate {a} + {b}",
            "What is {a} + {b}?",
            "add {a} and {b}",
        ],
        "-": [
            "what is {a} - {b}",
            "{a} minus {b}?",
            "calculate {a} - {b}",
            "What's {a} - {b}?",
            "subtract {b} from {a}",
        ],
        "*": [
            "calculate {a} * {b}",
            "what's {a} times {b}",
            "{a} x {b}?",
            "multiply {a} by {b}",
            "What is {a} * {b}?",
        ],
        "/": [
            "what is {a} divided by {b}",
            "{a} / {b}?",
            "calculate {a} / {b}",
            "divide {a} by {b}",
            "What's {a} divided by {b}?",
        ],
    }[op]

    def make(rng: random.Random) -> Problem:
        if op == "+":
            a, b = rng.randint(10, 999), rng.randint(10, 999)
        elif op == "-":
            a = rng.randint(50, 999)
            b = rng.randint(5, a)
        elif op == "*":
            a, b = rng.randint(3, 99), rng.randint(3, 99)
        else:
            b, q = rng.randint(2, 25), rng.randint(2, 99)
            a = b * q
        prompt = _fill(rng, phrasings, a=a, b=b)
        work = _Work()
        return prompt, work, work.do(a, op, b)

    return make


def _distance(rng: random.Random) -> Problem:
    v, t = 5 * rng.randint(6, 24), rng.randint(2, 6)
    prompt = _fill(
        rng,
        [
            "A car drives at {v} km/h for {t} hours. How far does it go?",
            "A train travels at {v} km per hour. How many km does it cover in {t} hours?",
            "If a bus averages {v} km/h, how far does it travel in {t} hours?",
        ],
        v=v,
        t=t,
    )
    work = _Work()
    return prompt, work, work.do(v, "*", t)


def _speed(rng: random.Random) -> Problem:
    v, t = rng.randint(12, 110), rng.randint(2, 8)
    prompt = _fill(
        rng,
        [
            "A car travels {d} km in {t} hours. What is its average speed in km/h?",
            "{name} cycles {d} km in {t} hours. How fast is that in km per hour?",
            "A train covers {d} km in {t} hours. What's its average speed?",
        ],
        d=v * t,
        t=t,
    )
    work = _Work()
    return prompt, work, work.do(v * t, "/", t)


def _weekly_pay(rng: random.Random) -> Problem:
    w = Decimal(rng.randint(10, 30)) + (Decimal("0.50") if rng.random() < 0.3 else 0)
    h = rng.randint(10, 45)
    prompt = _fill(
        rng,
        [
            "{name} earns {w} an hour and works {h} hours a week. How much does {pron} earn per week?",
            "A part-time job pays {w} per hour. How much do you make for {h} hours?",
            "{name} gets paid {w} per hour. What does {pron} earn for {h} hours of work?",
        ],
        w=money(w),
        h=h,
    )
    work = _Work(money=True)
    return prompt, work, work.do(w, "*", h)


def _daily_run(rng: random.Random) -> Problem:
    d, weeks = rng.randint(2, 12), rng.randint(2, 8)
    prompt = _fill(
        rng,
        [
            "If I run {d} km every day, how far do I run in {w} weeks?",
            "{name} walks {d} km a day. How many km does {pron} walk in {w} weeks?",
            "{name} swims {d} laps every day. How many laps is that in {w} weeks?",
        ],
        d=d,
        w=weeks,
    )
    work = _Work()
    return prompt, work, work.do(work.do(weeks, "*", 7), "*", d)


def _recipe(rng: random.Random) -> Problem:
    g, b = 25 * rng.randint(2, 20), rng.randint(2, 9)
    prompt = _fill(
        rng,
        [
            "A recipe needs {g} g of flour per batch. How much flour is needed for {b} batches?",
            "One cake uses {g} g of sugar. How many grams of sugar do I need for {b} cakes?",
            "{name} makes {b} loaves of bread and each needs {g} g of flour. How many grams is that?",
        ],
        g=g,
        b=b,
    )
    work = _Work()
    return prompt, work, work.do(g, "*", b)


def _time_convert(rng: random.Random) -> Problem:
    kind = rng.randrange(3)
    work = _Work()
    if kind == 0:
        h = rng.randint(2, 48)
        prompt = _fill(
            rng,
            [
                "How many minutes are in {h} hours?",
                "how many minutes in {h} hours",
                "Convert {h} hours to minutes.",
            ],
            h=h,
        )
        return prompt, work, work.do(h, "*", 60)
    if kind == 1:
        m = rng.randint(2, 99)
        prompt = _fill(
            rng,
            [
                "How many seconds are in {m} minutes?",
                "{m} minutes is how many seconds?",
                "convert {m} minutes to seconds",
            ],
            m=m,
        )
        return prompt, work, work.do(m, "*", 60)
    d = rng.randint(2, 60)
    prompt = _fill(
        rng,
        ["How many hours are in {d} days?", "how many hours is {d} days", "Convert {d} days to hours."],
        d=d,
    )
    return prompt, work, work.do(d, "*", 24)


def _savings(rng: random.Random) -> Problem:
    s, w = 5 * rng.randint(1, 20), rng.randint(2, 52)
    prompt = _fill(
        rng,
        [
            "{name} saves {s} every week. How much has {pron} saved after {w} weeks?",
            "If I put aside {s} a week, how much will I have after {w} weeks?",
            "{name} puts {s} into a piggy bank each week. How much is in it after {w} weeks?",
        ],
        s=money(s),
        w=w,
    )
    work = _Work(money=True)
    return prompt, work, work.do(s, "*", w)


def _spent_two(rng: random.Random) -> Problem:
    m = 10 * rng.randint(5, 50)
    a = _price(rng, 1, m // 3)
    b = _price(rng, 1, m // 3)
    x, y = rng.sample(_SPENDING, 2)
    prompt = _fill(
        rng,
        [
            "{name} had {m}. {Pron} spent {a} on {x} and {b} on {y}. How much money is left?",
            "I started with {m}, spent {a} on {x} and {b} on {y}. How much do I have left?",
        ],
        m=money(m),
        a=money(a),
        b=money(b),
        x=x,
        y=y,
    )
    work = _Work(money=True)
    return prompt, work, work.do(m, "-", work.do(a, "+", b))


def _tank(rng: random.Random) -> Problem:
    cap, p = 20 * rng.randint(1, 10), rng.choice(PERCENTS)
    prompt = _fill(
        rng,
        [
            "A {cap}-liter tank is {p}% full. How many liters are needed to fill it?",
            "A {cap} L water barrel is {p}% full. How many more liters fit in it?",
        ],
        cap=cap,
        p=p,
    )
    work = _Work()
    return prompt, work, work.do(cap, "-", work.do(cap, "*", Decimal(p) / 100))


def _price_increase(rng: random.Random) -> Problem:
    p = rng.choice(PERCENTS[:6])
    if rng.random() < 0.5:
        a = 20 * rng.randint(20, 100)
        prompt = _fill(
            rng,
            [
                "{name}'s rent of {a} a month goes up by {p}%. What is the new rent?",
                "The monthly rent is {a} and it rises {p}% next year. What will it be?",
            ],
            a=money(a),
            p=p,
        )
    else:
        a = 20 * rng.randint(1, 30)
        prompt = _fill(
            rng,
            [
                "A {item} cost {a} last year and the price went up by {p}%. What does it cost now?",
                "The price of a {item} was {a} and increased by {p}%. What is the new price?",
            ],
            item=rng.choice(_PRICEY),
            a=money(a),
            p=p,
        )
    work = _Work(money=True)
    return prompt, work, work.do(a, "+", work.do(a, "*", Decimal(p) / 100))


def _reading(rng: random.Random) -> Problem:
    k, days = rng.randint(5, 40), rng.randint(2, 30)
    n = k * days
    prompt = _fill(
        rng,
        [
            "A book has {n} pages. {name} reads {k} pages a day. How many days will it take to finish?",
            "{name} has to read {n} pages and reads {k} pages each day. How many days does it take?",
        ],
        n=n,
        k=k,
    )
    work = _Work()
    return prompt, work, work.do(n, "/", k)


def _daily_gain(rng: random.Random) -> Problem:
    a, b, d = rng.randint(5, 120), rng.randint(2, 15), rng.randint(2, 14)
    one, many = rng.choice(_THINGS)
    prompt = _fill(
        rng,
        [
            "{name} has {a} {many} and gets {b} more every day for {d} days. How many does {pron} have now?",
            "A jar holds {a} {many}. Every day {b} more go in, for {d} days. How many {many} are in the jar?",
        ],
        a=a,
        b=b,
        d=d,
        many=many,
    )
    work = _Work()
    return prompt, work, work.do(a, "+", work.do(b, "*", d))


def _unit_rate(rng: random.Random) -> Problem:
    q1, q2 = rng.randint(2, 12), rng.randint(2, 30)
    unit = Decimal(rng.randint(1, 40)) / 4  # a quarter-dollar grid keeps the unit price exact in cents
    one, many = rng.choice(_THINGS)
    prompt = _fill(
        rng,
        [
            "{q1} {many} cost {c}. How much do {q2} {many} cost?",
            "If {q1} {many} cost {c}, what do {q2} cost?",
            "{name} paid {c} for {q1} {many}. How much would {q2} {many} cost?",
        ],
        q1=q1,
        q2=q2,
        c=money(q1 * unit),
        many=many,
    )
    work = _Work(money=True)
    return prompt, work, work.do(work.do(q1 * unit, "/", q1), "*", q2)


def _area(rng: random.Random) -> Problem:
    a, b = rng.randint(2, 30), rng.randint(2, 30)
    prompt = _fill(
        rng,
        [
            "A room is {a} m by {b} m. What is its area in square meters?",
            "What's the area of a rectangle that is {a} cm long and {b} cm wide?",
            "A garden bed measures {a} ft by {b} ft. How many square feet is it?",
        ],
        a=a,
        b=b,
    )
    work = _Work()
    return prompt, work, work.do(a, "*", b)


def _perimeter(rng: random.Random) -> Problem:
    a, b = rng.randint(3, 90), rng.randint(3, 90)
    prompt = _fill(
        rng,
        [
            "A rectangular garden is {a} m long and {b} m wide. How many meters of fence go around it?",
            "What is the perimeter of a rectangle with sides {a} cm and {b} cm?",
        ],
        a=a,
        b=b,
    )
    work = _Work()
    return prompt, work, work.do(work.do(a, "+", b), "*", 2)


def _ages(rng: random.Random) -> Problem:
    (name, pron), (other, _) = rng.sample(_PEOPLE, 2)
    work = _Work()
    if rng.random() < 0.5:
        a, b = rng.randint(3, 60), rng.randint(2, 30)
        prompt = _fill(
            rng,
            [
                "{name} is {a} years old. {other} is {b} years older. How old is {other}?",
                "{other} is {b} years older than {name}, who is {a}. How old is {other}?",
            ],
            person=(name, pron),
            other=other,
            a=a,
            b=b,
        )
        return prompt, work, work.do(a, "+", b)
    a, target = rng.randint(3, 60), rng.randint(65, 100)
    prompt = _fill(
        rng,
        [
            "{name} is {a} years old. In how many years will {pron} be {t}?",
            "How many years until {name}, who is {a} now, turns {t}?",
        ],
        person=(name, pron),
        a=a,
        t=target,
    )
    return prompt, work, work.do(target, "-", a)


def _average(rng: random.Random) -> Problem:
    a, b = rng.randint(50, 100), rng.randint(50, 100)
    c = rng.randint(50, 100)
    c -= (a + b + c) % 3  # the sum must split exactly into three
    prompt = _fill(
        rng,
        [
            "{name} scored {a}, {b} and {c} on three tests. What is {poss} average score?",
            "What is the average of {a}, {b} and {c}?",
        ],
        a=a,
        b=b,
        c=c,
    )
    work = _Work()
    return prompt, work, work.do(work.do(work.do(a, "+", b), "+", c), "/", 3)


TEMPLATES: list[Callable[[random.Random], Problem]] = [
    _add_more,
    _give_away,
    _boxes,
    _share,
    _unit_price,
    _two_items,
    _change,
    _percent_of,
    _discount,
    _split_bill,
    _bare("+"),
    _bare("-"),
    _bare("*"),
    _bare("/"),
    _distance,
    _speed,
    _weekly_pay,
    _daily_run,
    _recipe,
    _time_convert,
    _savings,
    _spent_two,
    _tank,
    _price_increase,
    _reading,
    _daily_gain,
    _unit_rate,
    _area,
    _perimeter,
    _ages,
    _average,
]


def _draw(rng: random.Random) -> TaskExample:
    prompt, work, answer = rng.choice(TEMPLATES)(rng)
    gold: int | float = int(answer) if answer == answer.to_integral_value() else float(answer)
    return TaskExample(task="math", prompt=prompt, completion=work.completion(answer), gold=gold)


_ANSWER_LABEL = re.compile(r"answer\s*[:=]", re.IGNORECASE)
_NUMBER = re.compile(
    r"\s*(?:is\s+)?(?P<sign>[-\u2212])?\s*[$\u20ac\u00a3]?\s*(?P<sign2>-)?\s*"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
)


def parse_answer(output: str) -> float | None:
    """The number after the last "Answer:" in `output` ("$1,234.50", "-5", "15 km.", ...), or None."""
    labels = list(_ANSWER_LABEL.finditer(output))
    if not labels:
        return None
    match = _NUMBER.match(output, labels[-1].end())
    if not match:
        return None
    value = float(match["num"].replace(",", ""))
    return -value if match["sign"] or match["sign2"] else value


class MathTask:
    """Arithmetic word problems -> "a op b = c" steps and a final "Answer: N"."""

    name = "math"
    has_expert = True

    def examples(self, split: Split, n: int, *, seed: int = 0) -> list[TaskExample]:
        return generate(_draw, split, n, seed=seed)

    def score(self, example: TaskExample, output: str) -> float:
        """1.0 when the last "Answer:" number equals the gold within 1e-6, else 0.0."""
        value = parse_answer(output)
        return float(value is not None and abs(value - float(example.gold)) <= 1e-6)
