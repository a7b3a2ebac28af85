"""Task `extract`: a booking, order or contact sentence -> a JSON object with that kind's fixed fields.

Every field is always present, null where the sentence does not state it. String values are copied from the
sentence as written (so "3 desk lamps" gives item "desk lamps"); counts become numbers ("four" -> 4).
"""

from __future__ import annotations

import json
import random
import re
import string
from typing import Any

from experts.tasks.base import MONTHS, Split, TaskExample, generate, strip_code_fences

FIELDS: dict[str, tuple[str, ...]] = {
    "booking": ("kind", "name", "date", "time", "party_size", "place"),
    "order": ("kind", "item", "quantity", "address", "name"),
    "contact": ("kind", "name", "email", "phone", "company"),
}
KINDS = list(FIELDS)
# Counts are numbers; every other field is text as the sentence writes it.
_NUMBER_FIELDS = {"party_size", "quantity"}

_FIRST = [
    "Anna",
    "Mike",
    "Laura",
    "Raj",
    "Sophie",
    "Peter",
    "Julia",
    "Tom",
    "Maya",
    "Carlos",
    "Emily",
    "David",
    "Fatima",
    "Lucas",
    "Hannah",
    "Kenji",
    "Olivia",
    "Marco",
    "Chloe",
    "Ahmed",
    "Ingrid",
    "Samuel",
    "Rosa",
    "Daniel",
    "Nadia",
    "Oscar",
    "Leila",
    "Victor",
    "Grace",
    "Felix",
]
_LAST = [
    "Berg",
    "Torres",
    "Kim",
    "Patel",
    "Hale",
    "Stone",
    "Carter",
    "Nguyen",
    "Rossi",
    "Novak",
    "Fischer",
    "Brooks",
    "Silva",
    "Moreno",
    "Larsen",
    "Walsh",
    "Ito",
    "Haddad",
    "Jensen",
    "Murphy",
    "Costa",
    "Adler",
    "Quinn",
    "Osei",
    "Wright",
    "Lindqvist",
]
_WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_NUMBER_WORDS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
]

_RESTAURANTS = [
    "Luigi's",
    "Bella Vista",
    "Golden Dragon",
    "Casa Verde",
    "The Blue Door",
    "Harbor Grill",
    "Sushi Zen",
    "Cafe Luna",
    "The Corner Bistro",
    "Spice Garden",
    "Le Petit Chef",
    "Taverna Nikos",
    "The Red Lantern",
    "Green Fork",
]
_CLINICS = [
    "Smile Clinic",
    "City Dental",
    "Parkside Medical Center",
    "Bright Eyes Optician",
    "Elm Street Clinic",
]
_SALONS = ["Studio 5 Salon", "Cut & Style", "The Barber Room", "Hair by Lena", "Urban Locks"]
_SPAS = ["Lotus Spa", "Green Leaf Spa", "Serene Day Spa", "Ocean Breeze Wellness"]
_COURTS = ["Riverside Tennis Club", "City Squash Courts", "Northside Padel Club"]

# (singular, plural)
_ITEMS = [
    ("desk lamp", "desk lamps"),
    ("USB cable", "USB cables"),
    ("large pepperoni pizza", "large pepperoni pizzas"),
    ("box of printer paper", "boxes of printer paper"),
    ("coffee mug", "coffee mugs"),
    ("garden chair", "garden chairs"),
    ("pair of running shoes", "pairs of running shoes"),
    ("phone charger", "phone chargers"),
    ("bag of basmati rice", "bags of basmati rice"),
    ("notebook", "notebooks"),
    ("water bottle", "water bottles"),
    ("bottle of olive oil", "bottles of olive oil"),
    ("wireless mouse", "wireless mice"),
    ("yoga mat", "yoga mats"),
    ("black hoodie", "black hoodies"),
    ("bag of coffee beans", "bags of coffee beans"),
    ("toner cartridge", "toner cartridges"),
    ("bunch of tulips", "bunches of tulips"),
    ("LED bulb", "LED bulbs"),
    ("office chair", "office chairs"),
]
_STREETS = [
    "Elm Street",
    "Pine Road",
    "King Street",
    "Maple Avenue",
    "Baker Road",
    "Mill Lane",
    "Oak Drive",
    "Church Street",
    "Harbour Way",
    "Station Road",
    "Park Lane",
    "Cedar Court",
    "High Street",
]
_TOWNS = ["Bristol", "Leeds", "Toronto", "Dublin", "Austin", "Melbourne", "Rotterdam", "Glasgow", "Denver"]
_COMPANIES = [
    "Acme Logistics",
    "Northwind Traders",
    "Blue Harbor Ltd",
    "Greenfield Farms",
    "Pixel Forge",
    "Summit Consulting",
    "Brightside Media",
    "Nova Robotics",
    "Redwood Bank",
    "Silverline Travel",
    "Copperleaf Design",
    "Atlas Engineering",
    "Sunrise Bakery",
    "Quantum Labs",
]
_MAIL_HOSTS = ["gmail.com", "outlook.com", "yahoo.com", "proton.me", "icloud.com"]

_BOOKING = [
    "Book a table for {party} at {restaurant} on {date} at {time} under the name {name}.",
    "Hi, this is {name}. Could we get a table for {party} at {restaurant} on {date} around {time}?",
    "{name} would like to reserve a table at {restaurant} for {party} people on {date} at {time}.",
    "Reservation for {name}: {party} guests, {restaurant}, {date}, {time}.",
    "Please book {restaurant} for {date} at {time}, party of {party}, name {name}.",
    "Table for {party} at {restaurant}, {date} {time}.",
    "Appointment for {name} on {date} at {time} at {clinic}.",
    "Can I book a haircut at {salon} on {date} at {time}? My name is {name}.",
    "We are {party} and want to eat at {restaurant} on {date} at {time}. Booking name: {name}.",
    "{name} here, I need a table at {restaurant} for {party} on {date}.",
    "Reserve {party} seats at {restaurant} for {time} on {date}, please. It's for {name}.",
    "Hello! I'd like to book a massage at {spa} on {date} at {time} for {party} people, name {name}.",
    "Booking request from {name}: {clinic}, {date} at {time}.",
    "Court booking at {court} on {date}, {time}, {party} players, booked by {name}.",
    "{date} at {time}: dinner for {party} at {restaurant}, reserved by {name}.",
]
_ORDER = [
    "Please send {qty} {item} to {address}. The order is for {name}.",
    "{name} wants {qty} {item} delivered to {address}.",
    "Order: {qty} x {item1}, ship to {address}, customer {name}.",
    "I'd like to order {qty} {item}, deliver to {address}. Thanks, {name}",
    "Hi, it's {name}. Can I get {qty} {item}? Address: {address}.",
    "Deliver {qty} {item} to {address}, please.",
    "{name} ordered {qty} {item}.",
    "New order from {name}: {qty} {item} to be shipped to {address}.",
    "Ship {qty} {item} to {name} at {address}.",
    "Could you send {qty} {item} to {address}? It's for {name}.",
    "{qty} {item} for {name}, delivery address {address}.",
    "Order for {name}: {item1}, quantity {qty}, address {address}.",
    "Please deliver {qty} {item} to {address} by Friday.",
]
_CONTACT = [
    "Reach {name} at {email} or {phone}.",
    "{name}, {company}, {phone}, {email}",
    "Contact {name} from {company} at {email}.",
    "{name} | {company} | {email} | {phone}",
    "You can call {name} of {company} on {phone}.",
    "Hi, I'm {name} from {company}. My email is {email} and my phone number is {phone}.",
    "Please add {name} ({company}) to our contacts: {email}, {phone}.",
    "{name} works at {company}; email {email}, mobile {phone}.",
    "New lead: {name}, {company}, tel {phone}, {email}",
    "Get in touch with {name} on {phone} or by email at {email}.",
    "{company} contact: {name}, {email}",
    "Best regards, {name}, {company}, {phone}, {email}",
]
_TEMPLATES = {"booking": _BOOKING, "order": _ORDER, "contact": _CONTACT}

_INSTRUCTIONS = [
    "Extract the fields as JSON:",
    "Turn this into JSON:",
    "json please:",
    "Pull out the details as JSON from:",
    "Convert this to JSON:",
    "Give me the fields from this text as JSON:",
    "extract as json:",
    "Parse this into JSON:",
    "Make a JSON object from this:",
    "Structure this as JSON:",
    "Can you extract the details from this as JSON?",
    "to json:",
    "Extract the key fields as JSON from this:",
]
_KIND_INSTRUCTIONS = {
    "booking": [
        "Extract the booking details as JSON:",
        "Turn this reservation into JSON:",
        "json for this booking:",
        "I need structured JSON from this booking:",
    ],
    "order": [
        "Turn this order into JSON:",
        "Parse this order as JSON:",
        "Extract the order details as JSON:",
        "make json out of this order:",
    ],
    "contact": [
        "Parse this contact into JSON:",
        "Extract the contact details as JSON:",
        "contact card to json:",
        "Get the name, email, phone and company as JSON:",
    ],
}


def _name(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"


def _count(rng: random.Random, low: int, high: int) -> tuple[str, int]:
    value = rng.randint(low, high)
    return (_NUMBER_WORDS[value] if rng.random() < 0.3 else str(value)), value


def _date(rng: random.Random) -> str:
    if rng.random() < 0.2:
        return rng.choice(_WEEKDAYS)
    month, day = rng.choice(MONTHS), rng.randint(1, 28)
    return f"{month} {day}" if rng.random() < 0.75 else f"{day} {month}"


def _time(rng: random.Random) -> str:
    hour, minute = rng.randint(8, 21), rng.choice([0, 0, 15, 30, 30, 45])
    style = rng.random()
    if style < 0.3:
        return f"{hour}:{minute:02d}"
    twelve, half = (hour - 1) % 12 + 1, "am" if hour < 12 else "pm"
    return f"{twelve}:{minute:02d} {half}" if minute or style < 0.5 else f"{twelve} {half}"


def _phone(rng: random.Random) -> str:
    def digits(k: int) -> str:
        return "".join(str(rng.randint(0, 9)) for _ in range(k))

    return rng.choice(
        [
            f"+1 {rng.randint(201, 989)} 555 {digits(4)}",
            f"({rng.randint(201, 989)}) 555-{digits(4)}",
            f"07{digits(3)} {digits(6)}",
            f"+49 30 {digits(7)}",
            f"+44 20 {digits(4)} {digits(4)}",
            f"555-{digits(4)}",
        ]
    )


def _email(rng: random.Random, name: str, company: str | None) -> str:
    first, last = name.lower().split()
    local = rng.choice(
        [f"{first}.{last}", f"{first}{last}", f"{first[0]}{last}", f"{first}_{last[0]}", first]
    )
    if company and rng.random() < 0.6:
        host = re.sub(r"[^a-z]", "", company.lower().replace(" ltd", "")) + rng.choice([".com", ".io", ".co"])
    else:
        host = rng.choice(_MAIL_HOSTS)
    return f"{local}@{host}"


def _placeholders(template: str) -> list[str]:
    return [field for _, field, _, _ in string.Formatter().parse(template) if field]


def _sentence(kind: str, rng: random.Random) -> tuple[str, dict[str, Any]]:
    template = rng.choice(_TEMPLATES[kind])
    used = _placeholders(template)
    gold: dict[str, Any] = dict.fromkeys(FIELDS[kind])
    gold["kind"] = kind
    values: dict[str, str] = {}
    name = _name(rng)
    if kind == "booking":
        party_text, party = _count(rng, 2, 12)
        places = {
            "restaurant": _RESTAURANTS,
            "clinic": _CLINICS,
            "salon": _SALONS,
            "spa": _SPAS,
            "court": _COURTS,
        }
        values.update(name=name, date=_date(rng), time=_time(rng), party=party_text)
        for key, options in places.items():
            if key in used:
                values[key] = gold["place"] = rng.choice(options)
        for key in ("name", "date", "time"):
            if key in used:
                gold[key] = values[key]
        if "party" in used:
            gold["party_size"] = party
    elif kind == "order":
        singular, plural = rng.choice(_ITEMS)
        quantity = rng.choice([1, 1, 2, 2, 3, 4, 5, 6, 8, 10, 12])
        if "item1" in used or quantity > 1:
            qty_text = (
                _NUMBER_WORDS[quantity] if rng.random() < 0.25 and "item1" not in used else str(quantity)
            )
        else:
            qty_text = (
                rng.choice(["a", "one"]) if not singular.startswith(("a", "e", "i", "o", "u")) else "one"
            )
        item = singular if quantity == 1 or "item1" in used else plural
        address = f"{rng.randint(1, 250)} {rng.choice(_STREETS)}"
        if rng.random() < 0.4:
            address += f", {rng.choice(_TOWNS)}"
        values.update(name=name, qty=qty_text, item=item, item1=item, address=address)
        gold.update(item=item, quantity=quantity)
        gold["address"] = address if "address" in used else None
        gold["name"] = name if "name" in used else None
    else:
        company = rng.choice(_COMPANIES) if "company" in used else None
        values.update(name=name, email=_email(rng, name, company), phone=_phone(rng), company=company or "")
        for key in ("name", "email", "phone", "company"):
            if key in used:
                gold[key] = values[key]
    return template.format(**values), gold


def _draw(rng: random.Random) -> TaskExample:
    kind = rng.choice(KINDS)
    sentence, gold = _sentence(kind, rng)
    instruction = rng.choice(_INSTRUCTIONS if rng.random() < 0.7 else _KIND_INSTRUCTIONS[kind])
    layout = rng.random()
    if layout < 0.6:
        prompt = f"{instruction} {sentence}"
    elif layout < 0.8:
        prompt = f"{instruction}\n{sentence}"
    else:
        prompt = f'{instruction} "{sentence}"'
    completion = json.dumps(gold, separators=(", ", ": "), ensure_ascii=False)
    return TaskExample(task="extract", prompt=prompt, completion=completion, gold=gold)


def parse_json_object(output: str) -> dict[str, Any] | None:
    """The first JSON object in `output`, looked for inside a ``` fence first, then in the whole text."""
    decoder = json.JSONDecoder()
    for text in (strip_code_fences(output), output):
        for brace in re.finditer(r"\{", text):
            try:
                value, _ = decoder.raw_decode(text, brace.start())
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    return None


def _normalise(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool):
        # Tagged, or True would equal the number 1.
        return ("bool", value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = " ".join(value.split()).casefold()
        if text in ("", "null", "none"):
            return None
        try:
            # A number written as a string matches the number: "4" == 4.
            return float(text)
        except ValueError:
            return text
    return value


def json_schema() -> dict[str, Any]:
    """The answers' shape as a JSON schema: one object per kind, its fields in the trained order, every one
    present and null where the sentence does not say (what the served `extract` expert is held to)."""

    def field(name: str, kind: str) -> dict[str, Any]:
        if name == "kind":
            return {"const": kind}
        return {"type": ["integer" if name in _NUMBER_FIELDS else "string", "null"]}

    return {
        "anyOf": [
            {
                "type": "object",
                "properties": {name: field(name, kind) for name in names},
                "required": list(names),
                "additionalProperties": False,
            }
            for kind, names in FIELDS.items()
        ]
    }


class ExtractTask:
    """Booking, order and contact sentences -> JSON with fixed fields per kind."""

    name = "extract"
    has_expert = True

    def examples(self, split: Split, n: int, *, seed: int = 0) -> list[TaskExample]:
        return generate(_draw, split, n, seed=seed)

    def score(self, example: TaskExample, output: str) -> float:
        """The fraction of gold fields (including "kind") that the first JSON object in the output gets
        right after normalising (strings case-folded with whitespace collapsed, numbers compared as numbers);
        0.0 when the output holds no JSON object."""
        predicted = parse_json_object(output)
        gold: dict[str, Any] = example.gold
        if predicted is None or not gold:
            return 0.0
        hits = sum(_normalise(predicted.get(key)) == _normalise(value) for key, value in gold.items())
        return hits / len(gold)
