"""Generate tunedeck's offline sample data: ``tickets.csv`` and ``instructions.jsonl``.

Why generated and not collected: the project ships data with no licence strings attached (this
script and its output are CC0), and a generator documents exactly what is in the data. Output
is deterministic: running it again rewrites byte-identical files.

tickets.csv is support messages in four classes (billing, technical, shipping, account). To be
learnable but not keyword-perfect, messages carry side remarks that use other classes' words,
and a few percent are genuinely ambiguous (e.g. "charged for express shipping but the parcel
never came") with either label, so a good classifier lands around 90-97%, not 100%. It also has
the mess real exports have: exact duplicate rows, stray whitespace, a blank line, and rows with
empty or whitespace-only text.

instructions.jsonl is prompt/response pairs of small deterministic tasks (reverse a word,
add two numbers, capitals, ...) that a tiny causal LM can learn in minutes on a CPU.

Usage: python sample_data/make_sample_data.py [OUTPUT_DIR]
"""

from __future__ import annotations

import csv
import io
import json
import random
import sys
from pathlib import Path

SEED = 20261126
N_TICKETS = 1600
P_AMBIGUOUS = 0.09  # share of genuinely two-class requests
P_ASIDE = 0.4  # share carrying a remark in another class's words

# --- ticket vocabulary --------------------------------------------------------------------

PLANS = ["Pro plan", "Basic plan", "Team plan", "Family plan", "annual subscription",
         "monthly subscription", "Premium tier", "starter package"]
AMOUNTS = ["$9.99", "$19.99", "$49", "$120", "EUR 15", "29.90 EUR", "GBP 12.50", "$4.99",
           "$250", "$79.00", "twice the usual amount", "almost $300"]
WHEN = ["yesterday", "last week", "on Monday", "two days ago", "this morning", "on the 3rd",
        "last month", "three weeks ago", "on Friday", "earlier today", "in March",
        "a few days ago"]
SINCE = ["yesterday", "last week", "Monday", "the 3rd", "this morning", "last month", "March",
         "Friday", "the weekend"]
DEVICES = ["iPhone 13", "Pixel 7", "Samsung tablet", "Windows 11 laptop", "MacBook",
           "Chrome", "Firefox", "Safari", "Android phone", "Linux desktop", "iPad"]
FEATURES = ["the export button", "file upload", "the calendar sync", "push notifications",
            "the search page", "the dashboard", "dark mode", "the CSV import", "the API",
            "the report generator", "photo backup", "the share link"]
ERRORS = ["error 500", "error code E-1042", "a blank white screen", "'something went wrong'",
          "a timeout", "error 403", "an endless spinner", "a crash report", "error 0x80070005",
          "'invalid token'", "a 502 bad gateway"]
CARRIERS = ["UPS", "DHL", "FedEx", "USPS", "the courier", "Royal Mail", "the delivery guy",
            "DPD", "the post office"]
ITEMS = ["order", "package", "parcel", "box", "shipment", "delivery", "headphones",
         "replacement charger", "order of printer ink", "new keyboard"]
ORDER_IDS = [f"#{c}{n}" for c, n in zip("ABCDEFGHJK", range(10231, 99999, 8761))]
NAMES = ["Maria", "Tom", "Priya", "Jonas", "Aiko", "Sam", "Lena", "Omar", "Chen", "Grace",
         "Luis", "Fatima", "Pete", "Ingrid"]

OPENERS = ["", "", "", "Hi,", "Hello,", "Hey there,", "Good morning,", "Hi team,", "Dear support,",
           "Hello support team,", "Urgent:", "Quick question:", "Hi again,", "To whom it may concern,"]
CLOSERS = ["", "", "", "Thanks.", "Thank you!", "Please help.", "Any update?", "Thanks in advance.",
           "Regards, {name}", "Cheers, {name}", "This is really frustrating.", "Please advise.",
           "Can someone call me back?", "ASAP please", "thx"]

CORE: dict[str, list[str]] = {
    "billing": [
        "I was charged {amount} {when} but I never upgraded.",
        "Why was my card charged twice for the {plan}?",
        "I want a refund for the {plan}, I cancelled {when}.",
        "My invoice shows {amount} but the price on your website is lower.",
        "The promo code did not apply and I paid full price.",
        "Please send me a corrected invoice with our company VAT number.",
        "My payment keeps getting declined even though the card is fine.",
        "You raised the price of the {plan} without telling me.",
        "I cancelled my subscription {when} and you still billed me {amount}.",
        "Can I get a receipt for the charge of {amount}?",
        "There is a charge from you on my bank statement I don't recognise.",
        "I was billed for the {plan} instead of the {plan2}.",
        "How do I switch from monthly to annual billing to save money?",
        "The free trial ended and I got charged {amount} without a reminder.",
        "Please refund the duplicate payment from {when}.",
        "My bank says the payment went through but your system says it failed.",
        "Do you offer a discount for nonprofits? The invoice is too high.",
        "I need an invoice in EUR instead of USD.",
        "The sales tax on my bill looks wrong.",
        "I got charged a late fee but I paid on time.",
        "Where can I download my past invoices?",
        "I'd like my money back, the {plan} is not what was advertised.",
    ],
    "technical": [
        "The app crashes every time I open {feature} on my {device}.",
        "I get {error} when I try to use {feature}.",
        "Since the last update {feature} doesn't work anymore.",
        "The page keeps loading forever on {device}.",
        "{feature} is extremely slow, it takes minutes to respond.",
        "Sync between my {device} and the web app stopped working {when}.",
        "I can't upload files bigger than 10 MB, it just fails with {error}.",
        "The {device} app shows {error} right after the splash screen.",
        "Notifications stopped arriving on my {device}.",
        "Is there an outage? Nothing loads and I see {error}.",
        "My data disappeared from {feature} after the update.",
        "The export produces an empty file.",
        "The integration with our CRM returns {error} since {since}.",
        "Buttons on the settings page don't respond in {device}.",
        "The app freezes when I scroll through long lists.",
        "Images are not displayed, only broken icons.",
        "I get {error} whenever I save a document.",
        "The desktop app won't install on my {device}.",
        "Your API rate limit kicks in way too early and we get {error}.",
        "Audio in video calls cuts out constantly on {device}.",
        "Search returns no results even for files I know exist.",
        "The app drains my battery since the update.",
    ],
    "shipping": [
        "My {item} {order_id} still hasn't arrived.",
        "The tracking for {order_id} hasn't updated since {since}.",
        "{carrier} says my {item} was delivered but it's not here.",
        "My {item} arrived damaged, the packaging was crushed.",
        "I received the wrong item in my {item}.",
        "Can I change the delivery address for {order_id}?",
        "When will my {item} ship? It's been a week.",
        "{carrier} left my {item} at the wrong house.",
        "The {item} is stuck in customs, what do I need to do?",
        "Part of my order is missing, only one box came.",
        "Can you deliver on Saturday instead? I'm not home on weekdays.",
        "The estimated delivery date keeps moving.",
        "My {item} was returned to sender, why?",
        "Do you ship to Canada and how long does it take?",
        "{carrier} lost my {item} {order_id}.",
        "I need a return label to send the {item} back.",
        "The parcel was left in the rain and everything is wet.",
        "Tracking number for {order_id} says invalid on the {carrier} site.",
        "Can I pick up my {item} at a store instead of home delivery?",
        "My {item} was marked as shipped {when} but has no tracking number.",
        "I ordered two weeks ago and the {item} still shows 'processing'.",
        "The delivery driver never rang the bell and left a note.",
    ],
    "account": [
        "I can't log in, it says my password is wrong.",
        "How do I reset my password? The reset email never arrives.",
        "I want to change the email address on my account.",
        "I lost my phone and can't get the two-factor code.",
        "Please delete my account and all my data.",
        "My account is locked after too many attempts.",
        "Someone else logged into my account {when}, I think I was hacked.",
        "I have two accounts, can you merge them?",
        "How do I change my username?",
        "I can't verify my email, the link is expired.",
        "Please update the name on my profile, I got married.",
        "I want to add a colleague as an admin to our workspace.",
        "My account was deactivated without warning.",
        "How do I turn off two-factor authentication?",
        "The login code you text me never arrives.",
        "I forgot which email I used to sign up.",
        "Can I transfer my account to my company email?",
        "I keep getting logged out every few minutes.",
        "Please remove my old phone number from my account.",
        "How can I download all the personal data you have on me?",
        "Sign in with Google doesn't link to my existing account.",
        "I want to close my account but keep my files.",
    ],
}

# Background remarks that use another class's vocabulary without being the request. A message
# of class X sometimes carries one of these from class Y: keywords alone then mislead.
ASIDES: dict[str, list[str]] = {
    "billing": ["I pay for the {plan} every month.", "I've been a paying customer since {since}.",
                "My card details are up to date.", "I already got a refund once before."],
    "technical": ["I'm using {device}.", "I already tried reinstalling the app.",
                  "I cleared the cache too.", "The app is on the latest version."],
    "shipping": ["I also have an {item} on the way.", "My last {item} came fine.",
                 "I ordered from you {when}.", "I'm waiting on {order_id} as well."],
    "account": ["I'm logged in on my {device}.", "My username is {name}_{n}.",
                "I changed my password {when}.", "My account email is correct."],
}

# Requests that honestly belong to two classes; the label is a coin toss, as it is in real
# support queues, which caps the achievable accuracy below 100%.
AMBIGUOUS: list[tuple[str, str, str]] = [
    ("I was charged for express shipping but my {item} still hasn't arrived.", "billing", "shipping"),
    ("I paid {amount} for next-day delivery and it took a week, I want that money back.", "billing", "shipping"),
    ("After the update I can't log in anymore on my {device}.", "technical", "account"),
    ("The login page shows {error} when I enter my password.", "technical", "account"),
    ("You charged me {amount} after I deleted my account.", "billing", "account"),
    ("The app crashes when I try to pay for the {plan}.", "technical", "billing"),
    ("I need to update the shipping address saved in my profile.", "account", "shipping"),
    ("The checkout page gives {error} and my order {order_id} was never placed.", "technical", "shipping"),
    ("I can't see my invoices because the account page won't load.", "billing", "technical"),
    ("My card was charged but the order {order_id} doesn't show in my account.", "billing", "account"),
]

ABBREV = {"please": "pls", "thanks": "thx", "you": "u", "because": "bc", "your": "ur",
          "account": "acct", "password": "pw", "message": "msg", "tomorrow": "tmrw"}


def _fill(template: str, rng: random.Random) -> str:
    plans = rng.sample(PLANS, 2)
    return template.format(
        amount=rng.choice(AMOUNTS), when=rng.choice(WHEN), since=rng.choice(SINCE), plan=plans[0], plan2=plans[1],
        device=rng.choice(DEVICES), feature=rng.choice(FEATURES), error=rng.choice(ERRORS),
        carrier=rng.choice(CARRIERS), item=rng.choice(ITEMS), order_id=rng.choice(ORDER_IDS),
        name=rng.choice(NAMES), n=rng.randint(1, 999),
    )


def _typo(text: str, rng: random.Random) -> str:
    """One keyboard slip: swap, drop or double a letter inside a word."""
    words = text.split(" ")
    idx = [i for i, w in enumerate(words) if len(w) > 3 and w.isalpha()]
    if not idx:
        return text
    i = rng.choice(idx)
    w = words[i]
    j = rng.randrange(1, len(w) - 1)
    kind = rng.randrange(3)
    if kind == 0:
        w = w[:j] + w[j + 1] + w[j] + w[j + 2:]
    elif kind == 1:
        w = w[:j] + w[j + 1:]
    else:
        w = w[:j] + w[j] + w[j:]
    words[i] = w
    return " ".join(words)


def _style(text: str, rng: random.Random) -> str:
    """Writing styles seen in real tickets: lowercase, no punctuation, chat abbreviations."""
    r = rng.random()
    if r < 0.12:
        text = text.lower()
    elif r < 0.18:
        text = text.lower().replace(".", "").replace(",", "").replace("'", "")
    elif r < 0.22:
        text = text.upper() if len(text) < 60 else text
    if rng.random() < 0.15:
        text = " ".join(ABBREV.get(w.lower(), w) for w in text.split(" "))
    for _ in range(rng.choice([0, 0, 0, 1, 1, 2])):
        text = _typo(text, rng)
    if rng.random() < 0.08:
        text = text.rstrip(".!") + rng.choice(["!!", "!!!", "??", " :(", " ..."])
    return text


def ticket(label: str, rng: random.Random) -> tuple[str, str]:
    """One support message and its label."""
    if rng.random() < P_AMBIGUOUS:
        template, a, b = rng.choice(AMBIGUOUS)
        core = _fill(template, rng)
        label = rng.choice([a, b])
    else:
        core = _fill(rng.choice(CORE[label]), rng)
    parts = [rng.choice(OPENERS), core]
    if rng.random() < 0.35:  # a second sentence of the same class: longer, richer messages
        extra = _fill(rng.choice(CORE[label]), rng)
        if extra != core:
            parts.append(extra)
    if rng.random() < P_ASIDE:
        other = rng.choice([c for c in CORE if c != label])
        parts.insert(rng.randrange(1, len(parts) + 1), _fill(rng.choice(ASIDES[other]), rng))
    elif rng.random() < 0.2:
        parts.append(_fill(rng.choice(ASIDES[label]), rng))
    parts.append(rng.choice(CLOSERS).format(name=rng.choice(NAMES)))
    text = " ".join(p for p in parts if p)
    if rng.random() < 0.1:  # the bare minimum some people write
        text = core.split(",")[0].rstrip(".")
    return _style(text, rng), label


def tickets_csv(rng: random.Random) -> str:
    labels = ["billing", "technical", "shipping", "account"]
    weights = [0.3, 0.3, 0.22, 0.18]  # not balanced, like a real queue
    rows = [ticket(rng.choices(labels, weights)[0], rng) for _ in range(N_TICKETS)]
    # The mess of a real export.
    for _ in range(40):  # the same ticket submitted twice
        i = rng.randrange(len(rows))
        rows.insert(rng.randrange(i, len(rows) + 1), rows[i])
    for _ in range(60):  # stray whitespace around the text or the label
        i = rng.randrange(len(rows))
        text, label = rows[i]
        pad = rng.choice(["  ", " ", "\t", "   "])
        rows[i] = (pad + text + rng.choice(["", " ", "  "]), label if rng.random() < 0.7 else label + " ")
    rows.insert(rng.randrange(len(rows)), ("", "billing"))  # a row with no text
    rows.insert(rng.randrange(len(rows)), ("   ", "technical"))  # whitespace only
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["text", "label"])
    blank_at = rng.randrange(len(rows) // 3, 2 * len(rows) // 3)
    for i, row in enumerate(rows):
        if i == blank_at:
            buf.write("\n")  # an empty line in the middle of the file
        w.writerow(row)
    return buf.getvalue()


# --- instructions -------------------------------------------------------------------------

WORDS = ["cat", "dog", "sun", "moon", "tree", "book", "milk", "fish", "bird", "lamp", "rain",
         "star", "road", "ship", "king", "rose", "gold", "wind", "snow", "frog", "cake", "door",
         "hand", "ring", "wolf", "bell", "leaf", "coin", "desk", "kite", "apple", "river",
         "stone", "cloud", "tiger", "bread", "chair", "house", "water", "light", "music",
         "green", "plant", "train", "smile", "paper", "grape", "horse", "lemon", "night"]
CAPITALS = {"France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid",
            "Japan": "Tokyo", "Canada": "Ottawa", "Egypt": "Cairo", "Kenya": "Nairobi",
            "Peru": "Lima", "Norway": "Oslo", "Sweden": "Stockholm", "Poland": "Warsaw",
            "Greece": "Athens", "Portugal": "Lisbon", "Ireland": "Dublin", "Austria": "Vienna",
            "Chile": "Santiago", "Cuba": "Havana", "Russia": "Moscow", "China": "Beijing",
            "India": "New Delhi", "Mexico": "Mexico City", "Argentina": "Buenos Aires",
            "Thailand": "Bangkok", "Vietnam": "Hanoi", "Finland": "Helsinki",
            "Denmark": "Copenhagen", "Hungary": "Budapest", "Belgium": "Brussels",
            "Netherlands": "Amsterdam", "Turkey": "Ankara", "Iran": "Tehran", "Iraq": "Baghdad",
            "Ghana": "Accra", "Nigeria": "Abuja", "Morocco": "Rabat", "Colombia": "Bogota",
            "Australia": "Canberra", "Brazil": "Brasilia", "Switzerland": "Bern"}
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
                "seventeen", "eighteen", "nineteen", "twenty"]
OPPOSITES = {"hot": "cold", "big": "small", "up": "down", "fast": "slow", "old": "new",
             "day": "night", "happy": "sad", "open": "closed", "light": "dark", "early": "late",
             "full": "empty", "hard": "soft", "high": "low", "left": "right", "rich": "poor",
             "strong": "weak", "wet": "dry", "young": "old", "loud": "quiet", "first": "last"}


def instructions(rng: random.Random) -> list[dict[str, str]]:
    out: dict[str, str] = {}

    def add(prompt: str, response: str) -> None:
        out.setdefault(prompt, response)  # prompts are unique: dedup would drop repeats

    for w in WORDS:
        add(f"Reverse the word: {w}", w[::-1])
        add(f"Spell {w} in capital letters.", w.upper())
        add(f"How many letters are in the word {w}?", str(len(w)))
        add(f"What is the first letter of {w}?", w[0])
    pairs = [(a, b) for a in range(0, 21) for b in range(0, 21)]
    rng.shuffle(pairs)
    for a, b in pairs[:110]:
        add(f"What is {a} plus {b}?", str(a + b))
    for a, b in pairs[110:180]:
        hi, lo = max(a, b), min(a, b)
        add(f"What is {hi} minus {lo}?", str(hi - lo))
    for country, capital in CAPITALS.items():
        add(f"What is the capital of {country}?", capital)
    for n, word in enumerate(NUMBER_WORDS):
        add(f"Write the number {n} in words.", word)
        if n < 20:
            add(f"What number comes after {n}?", str(n + 1))
    for a, b in OPPOSITES.items():
        add(f"What is the opposite of {a}?", b)
    items = list(out.items())
    rng.shuffle(items)
    return [{"prompt": p, "response": r} for p, r in items]


def main(out_dir: Path) -> None:
    rng = random.Random(SEED)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "tickets.csv").write_text(tickets_csv(rng), encoding="utf-8", newline="")
    lines = [json.dumps(r, ensure_ascii=False) for r in instructions(random.Random(SEED + 1))]
    (out_dir / "instructions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8",
                                                newline="")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
