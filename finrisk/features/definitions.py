"""Feature names and the constants their formulas use, each defined once.

The batch path (`finrisk.features.batch`) and the online path (`finrisk.features.online`) both
read these; the formulas themselves live in `finrisk.features.formulas`.
"""

from __future__ import annotations

from finrisk.schema import (
    ATM,
    CARD_PRESENT,
    DEBIT,
    ONLINE,
    TRANSFER,
)

NS_PER_SECOND = 1_000_000_000
SECONDS_PER_DAY = 86_400
NS_PER_DAY = SECONDS_PER_DAY * NS_PER_SECOND
DAYS_PER_MONTH = 30.4375  # 365.25 / 12

# Velocity windows, (suffix, length in ns). A transaction at time t counts the user's
# transactions with timestamp in (t - length, t], itself included: one exactly a window length
# earlier has expired.
WINDOWS: tuple[tuple[str, int], ...] = (
    ("10m", 10 * 60 * NS_PER_SECOND),
    ("1h", 60 * 60 * NS_PER_SECOND),
    ("24h", 24 * 60 * 60 * NS_PER_SECOND),
)
# Windows whose debit amount sums are features (the 10-minute one only counts).
SUM_WINDOWS: tuple[str, ...] = ("1h", "24h")

# A user's transactions at merchants new to them (their first at that merchant) are counted over
# these windows, (t - length, t] like the velocity windows, longest first. Card testing spread
# over days (a tiny charge or two a day, each at a new merchant) and a takeover shopping at new
# merchants leave a run of first visits that no single transaction shows; a trip's or a
# holiday's new merchants come too, so the model weighs the counts against the rest. A week
# covers the slowest card testing's runs of 5 to 14 days at one or two charges a day; three
# days and a day beside it tell a run that is going on now (a takeover's few purchases within
# the hour) from one that was (each measured on the hard scenario and chosen on the validation
# period: docs/models-and-evaluation.md).
NEW_MERCHANT_WINDOWS: tuple[tuple[str, int], ...] = (
    ("7d", 7 * NS_PER_DAY),
    ("3d", 3 * NS_PER_DAY),
    ("24h", NS_PER_DAY),
)
# A debit's amount against the user's own prior mean debit in its category: log(amount / mean),
# the mean being the category's prior spend over its prior transactions (a category is debit or
# credit, never both: finrisk.schema.Categories). A takeover that buys in the user's own
# categories at their usual hours still spends more there than the user does; a debit in a
# category the user has not paid in before (and any credit) gets NO_CATEGORY_HISTORY_RATIO, the
# log of a ratio of 1 (as usual: is_new_category says it is new).
NO_CATEGORY_HISTORY_RATIO = 0.0
# Seconds since the user's previous transaction are capped here; the first transaction gets
# the cap (as if the previous one were long ago).
GAP_CAP_SECONDS = 30.0 * SECONDS_PER_DAY
# z-scores of log amounts need two prior debits; with fewer the z-score is 0.
MIN_ZSCORE_HISTORY = 2
# Added to the variance of prior log amounts so that a user who always pays the same amount
# does not turn a cent's difference into a huge z-score.
LOG_AMOUNT_VARIANCE_FLOOR = 0.01
# Balances below this floor count as "nothing left" when dividing an amount by the balance
# before the transaction; the ratio is capped so that overdrawn accounts stay finite.
BALANCE_FLOOR = 1.0
BALANCE_RATIO_CAP = 100.0

# A balance after a transaction below this counts towards low_balance_freq (currency units).
LOW_BALANCE_THRESHOLD = 100.0
# Per-month rates divide by at least one month, so that a short history is not extrapolated.
MIN_MONTHS = 1.0
# Income regularity needs at least this many gaps between salary credits; below, it reports
# IRREGULAR_INCOME_CV (as irregular as a coefficient of variation of 1).
MIN_SALARY_INTERVALS = 2
IRREGULAR_INCOME_CV = 1.0
# Expense volatility needs at least this many debits; below, it is 0.
MIN_EXPENSE_HISTORY = 2

# "Recent" user features weigh each transaction by exp(-age / RECENT_DECAY_DAYS), its age
# measured back from the user's latest transaction: the mean age of that weighting is 20 days
# and 86% of the weight lies in the last 40 days. A decayed sum needs O(1) online state (no
# window of transactions to keep or snapshot) and does not depend on arrival order.
RECENT_DECAY_DAYS = 20.0

SALARY = "salary"
TRANSFER_IN = "transfer_in"
# Categories whose transactions per month are user features (any direction).
COUNTED_CATEGORIES: tuple[str, ...] = (
    "gift_cards",
    "cash_withdrawal",
    "entertainment",
    SALARY,
    TRANSFER_IN,
)
# Debits that signal financial distress: cash, gift cards, and gambling (below).
DISTRESS_CATEGORIES: frozenset[str] = frozenset({"gift_cards", "cash_withdrawal"})
# A debit at a merchant whose name, lower-cased, starts with one of these is gambling. The
# synthetic generator's betting brands are here; a bank's own data would add its own.
GAMBLING_MERCHANT_PREFIXES: tuple[str, ...] = ("betbuddy", "luckyspin")
DISCRETIONARY_CATEGORIES: frozenset[str] = frozenset(
    {"dining", "shopping", "entertainment", "travel", "electronics", "gift_cards"}
)
ESSENTIAL_CATEGORIES: frozenset[str] = frozenset(
    {"rent", "utilities", "groceries", "transport", "health"}
)
CASH_OUT_CATEGORIES: frozenset[str] = frozenset({"cash_withdrawal", "transfer_out"})
RISKY_CATEGORIES: tuple[str, ...] = ("gift_cards", "electronics", "cash_withdrawal", "transfer_out")
INDICATOR_CHANNELS: tuple[str, ...] = (ONLINE, ATM, CARD_PRESENT, TRANSFER)
DEBIT_DIRECTION = DEBIT

# Hour of day and day of week are those of the UTC timestamp (users' time zones are unknown).
TRANSACTION_FEATURES: tuple[str, ...] = (
    "log_amount",
    "is_debit",
    "amount_log_zscore",
    "log_amount_to_prior_max",
    "log_amount_to_category_mean",
    "log_prior_debit_count",
    *(f"tx_count_{suffix}" for suffix, _ in WINDOWS),
    *(f"log_debit_sum_{suffix}" for suffix in SUM_WINDOWS),
    "log_seconds_since_prev",
    "hour_sin",
    "hour_cos",
    "dow_sin",
    "dow_cos",
    "is_new_category",
    "is_new_merchant",
    *(f"new_merchants_{suffix}" for suffix, _ in NEW_MERCHANT_WINDOWS),
    "amount_to_balance_before",
    "is_overdrawn",
    "signed_log_balance_after",
    *(f"channel_{channel}" for channel in INDICATOR_CHANNELS),
    *(f"category_{category}" for category in RISKY_CATEGORIES),
)

# Features whose distribution over a monitoring window follows the clock rather than behaviour:
# the hour and the weekday (a window of a few hours or a day sees a few of them, never the
# training's mix of all), and the count of a user's prior debits (it grows for as long as the
# history kept: every day the served users' histories are longer than the training rows'). The
# monitoring reports their drift but judges a window on the other features
# (finrisk.monitoring.window); docs/monitoring.md has the figures.
CLOCK_FEATURES: frozenset[str] = frozenset(
    {"hour_sin", "hour_cos", "dow_sin", "dow_cos", "log_prior_debit_count"}
)

# The seed system's eight behavioural aggregates, with its names; the seed-style baseline uses
# exactly these.
SEED_USER_FEATURES: tuple[str, ...] = (
    "total_income",
    "total_expense",
    "n_transactions",
    "avg_expense",
    "max_expense",
    "low_balance_freq",
    "expense_income_ratio",
    "top_category_spend",
)

USER_FEATURES: tuple[str, ...] = (
    *SEED_USER_FEATURES,
    "active_days",
    "tx_per_day",
    "income_per_month",
    "expense_per_month",
    "net_flow_per_month",
    "salary_share",
    "income_irregularity",
    "expense_cv",
    "min_balance",
    "mean_balance",
    "last_balance",
    "overdraft_freq",
    "balance_trend_per_month",
    "discretionary_share",
    "essential_share",
    "cash_out_share",
    "merchant_diversity",
    *(f"{category}_tx_per_month" for category in COUNTED_CATEGORIES),
    "gambling_tx_per_month",
    "distress_share",
    "recent_expense_income_ratio",
    "recent_overdraft_share",
    "recent_low_balance_share",
    "recent_distress_share",
    "recent_mean_balance",
    "recent_transfer_in_per_month",
)

# Merchant risk (finrisk.features.batch_merchants, finrisk.features.online_merchants): at a
# transaction at time t, the confirmed frauds at its merchant whose transaction happened in
# (t - MERCHANT_RISK_WINDOW_DAYS, t] and whose fraud label was known by t (labelled_at <= t),
# so only labels older than their delay count and nothing learned after t leaks into t's
# features. A week: a merchant's stolen card data is used within days (the hard scenario's
# compromises last 3 to 7), and an older fraud says little about the merchant today; a fraud
# confirmed by investigation (1 to 5 days) still falls inside it, a chargeback (10 to 60 days)
# mostly not. Each transaction counts once however many fraud outcomes it gets.
MERCHANT_RISK_WINDOW_DAYS = 7.0
MERCHANT_RISK_WINDOW_NS = int(MERCHANT_RISK_WINDOW_DAYS * NS_PER_DAY)
# The rate divides the known frauds by the merchant's transactions in the same window plus
# this many pseudo-transactions of a fraud rate of 0 (the prior): one fraud among a handful of
# transactions is not a 20% fraud rate, and a merchant with no history scores 0.
MERCHANT_RATE_PRIOR_TRANSACTIONS = 20.0

MERCHANT_FEATURES: tuple[str, ...] = (
    "log_merchant_recent_frauds",
    "merchant_recent_fraud_rate",
)
# What the bridge serves of merchant risk, and what `finrisk train --labels` trains on: the
# fraud count alone. The count is global and exact (every instance reads every merchant's
# frauds); the rate also needs each merchant's transactions across every partition, which
# would be approximate and delayed, and measured, it adds nothing the count does not
# (docs/models-and-evaluation.md, "Merchant risk"; docs/bridge.md, "Merchant risk").
SERVED_MERCHANT_FEATURES: tuple[str, ...] = MERCHANT_FEATURES[:1]
