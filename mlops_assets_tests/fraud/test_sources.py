"""The fraud bronze sources: the synthetic generator, the file source and the bronze expectations."""

from __future__ import annotations

import io
import itertools
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.csv as pv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_assets.core.validation import run_suite
from mlops_assets.fraud import expectations, schema, sources
from mlops_assets.fraud.sources import BronzeContractError, GeneratorConfig

DAY = date(2024, 1, 3)
# Five days of the default population: 250k payments, ~2.5k frauds, enough for stable rates.
PATTERN_DAYS = [date(2024, 3, 1) + timedelta(days=i) for i in range(5)]


def _parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@pytest.fixture(scope="module")
def small_day() -> tuple[pa.Table, pa.Table]:
    return sources.generate_day(
        DAY, GeneratorConfig(n_cards=2_000, n_merchants=300, tx_per_day=3_000)
    )


@pytest.fixture(scope="module")
def history() -> pl.DataFrame:
    """Five default days as one frame, with each payment's label, pattern and a few facts the
    tests need: the card's home country and whether the merchant is compromised that day."""
    config = GeneratorConfig()
    home = np.asarray(sources.card_profiles(config).home_country)
    frames = []
    for day in PATTERN_DAYS:
        g = sources.generate_day_with_patterns(day, config)
        frames.append(
            pl.from_arrow(g.transactions).with_columns(
                is_fraud=pl.from_arrow(g.labels["is_fraud"]),
                label_available_ts=pl.from_arrow(g.labels["label_available_ts"]),
                pattern=pl.from_arrow(g.pattern),
                day=pl.lit(day),
                compromised=pl.col("merchant_id").is_in(
                    sources.compromised_merchants(day, config).tolist()
                ),
            )
        )
    frame = pl.concat(frames)
    home_codes = np.asarray(sources.COUNTRIES)[home[frame["card_id"].to_numpy()]]
    return (
        frame.with_columns(home_country=pl.Series(home_codes))
        .sort("card_id", "event_ts")
        .with_columns(
            # Seconds since the card's previous payment and until its next one.
            gap_before=(pl.col("event_ts") - pl.col("event_ts").shift(1).over("card_id"))
            .dt.total_seconds()
            .fill_null(10**9),
            gap_after=(pl.col("event_ts").shift(-1).over("card_id") - pl.col("event_ts"))
            .dt.total_seconds()
            .fill_null(10**9),
        )
        .sort("event_ts", "tx_id")
    )


def _rate(frame: pl.DataFrame, condition: pl.Expr) -> tuple[float, int]:
    part = frame.filter(condition)
    return float(part["is_fraud"].mean()), part.height


# --------------------------------------------------------------------------------------------------
# Generator: contract, determinism, ids
# --------------------------------------------------------------------------------------------------


def test_generated_tables_have_exactly_the_bronze_schemas(small_day):
    transactions, labels = small_day
    assert transactions.schema == schema.TRANSACTIONS
    assert labels.schema == schema.LABELS
    assert transactions.num_rows == labels.num_rows == 3_000
    assert transactions.schema.metadata is None  # no pandas metadata: stable parquet bytes


def test_generated_day_is_sorted_inside_the_day_and_whole_seconds(small_day):
    transactions, _ = small_day
    frame = transactions.to_pandas()
    assert frame.equals(frame.sort_values(["event_ts", "tx_id"], ignore_index=True))
    start = pd.Timestamp(_day_start(DAY))
    assert frame["event_ts"].min() >= start
    assert frame["event_ts"].max() < start + pd.Timedelta(days=1)
    micros = transactions["event_ts"].cast(pa.int64()).to_numpy()
    assert (micros % 1_000_000 == 0).all()
    assert set(frame["channel"]) <= set(schema.CHANNELS)
    assert set(frame["merchant_category"]) <= set(schema.MERCHANT_CATEGORIES)
    assert frame["country"].str.fullmatch(r"[A-Z]{2}").all()
    assert (frame["amount"] > 0).all()
    assert frame["amount"].round(2).eq(frame["amount"]).all()


def test_same_day_and_config_give_identical_tables_and_parquet_bytes():
    config = GeneratorConfig(tx_per_day=5_000)
    first = sources.generate_day(DAY, config)
    second = sources.generate_day(DAY, config)
    for a, b in zip(first, second, strict=True):
        assert a.equals(b)
        assert _parquet_bytes(a) == _parquet_bytes(b)


def test_a_day_does_not_depend_on_the_days_generated_before_it():
    config = GeneratorConfig(tx_per_day=5_000)
    sources._card_profiles.cache_clear()
    sources._merchant_profiles.cache_clear()
    alone = sources.generate_day(DAY, config)
    for other in (date(2023, 12, 31), date(2024, 7, 1)):
        sources.generate_day(other, config)
    after_others = sources.generate_day(DAY, config)
    for a, b in zip(alone, after_others, strict=True):
        assert _parquet_bytes(a) == _parquet_bytes(b)


def test_seed_and_day_change_the_data():
    base = sources.generate_day(DAY, GeneratorConfig(tx_per_day=2_000))[0]
    other_seed = sources.generate_day(DAY, GeneratorConfig(tx_per_day=2_000, seed=7))[0]
    next_day = sources.generate_day(DAY + timedelta(days=1), GeneratorConfig(tx_per_day=2_000))[0]
    assert not base["card_id"].equals(other_seed["card_id"])
    assert not base["amount"].equals(next_day["amount"])


def test_tx_ids_are_unique_across_days_and_carry_the_day():
    config = GeneratorConfig(tx_per_day=4_000)
    ids = []
    for day in (DAY, DAY + timedelta(days=1), DAY + timedelta(days=2)):
        transactions, labels = sources.generate_day(day, config)
        day_ids = transactions["tx_id"].to_pylist()
        assert day_ids[0] == f"{day:%Y%m%d}-00000000"
        assert day_ids[-1] == f"{day:%Y%m%d}-00003999"
        assert labels["tx_id"].to_pylist() == day_ids
        ids += day_ids
    assert len(ids) == len(set(ids)) == 12_000


def test_cards_and_merchants_keep_their_attributes_across_days(history):
    # A merchant has one category on every day.
    per_merchant = history.group_by("merchant_id").agg(pl.col("merchant_category").n_unique())
    assert per_merchant["merchant_category"].max() == 1
    # Legitimate payments are mostly made in the card's home country (travel is the rest).
    legit = history.filter(pl.col("is_fraud") == 0)
    home_share = (legit["country"] == legit["home_country"]).mean()
    assert 0.97 <= home_share <= 0.99
    # Most payments by day, few at night.
    hours = history["event_ts"].dt.hour()
    assert (hours < 6).mean() < 0.06
    assert ((hours >= 10) & (hours < 20)).mean() > 0.55


def test_amounts_follow_the_merchant_category(history):
    medians = dict(
        history.filter(pl.col("is_fraud") == 0)
        .group_by("merchant_category")
        .agg(pl.col("amount").median())
        .iter_rows()
    )
    assert medians["digital_goods"] < medians["grocery"] < medians["electronics"]
    assert medians["electronics"] < medians["travel"]
    assert 30 < medians["grocery"] < 60


def test_tiny_and_empty_days_keep_the_exact_row_count():
    empty_tx, empty_labels = sources.generate_day(DAY, GeneratorConfig(tx_per_day=0))
    assert empty_tx.num_rows == empty_labels.num_rows == 0
    assert empty_tx.schema == schema.TRANSACTIONS
    tiny = GeneratorConfig(n_cards=1, n_merchants=1, tx_per_day=40, fraud_rate=0.5)
    transactions, labels = sources.generate_day(DAY, tiny)
    assert transactions.num_rows == labels.num_rows == 40
    assert set(transactions["card_id"].to_pylist()) == {0}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    day=st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)),
    seed=st.integers(min_value=-(2**40), max_value=2**40),
    tx_per_day=st.integers(min_value=0, max_value=400),
    fraud_rate=st.floats(min_value=0.0, max_value=0.5),
    max_chargeback_days=st.integers(min_value=1, max_value=60),
)
def test_any_config_gives_a_valid_day(day, seed, tx_per_day, fraud_rate, max_chargeback_days):
    config = GeneratorConfig(
        n_cards=50,
        n_merchants=12,
        tx_per_day=tx_per_day,
        fraud_rate=fraud_rate,
        max_chargeback_days=max_chargeback_days,
        seed=seed,
    )
    transactions, labels = sources.generate_day(day, config)
    assert transactions.num_rows == labels.num_rows == tx_per_day
    assert transactions.schema == schema.TRANSACTIONS and labels.schema == schema.LABELS
    assert expectations.events_inside_day(transactions, day).success
    assert expectations.labels_after_events(labels).success
    assert len(set(transactions["tx_id"].to_pylist())) == tx_per_day


# --------------------------------------------------------------------------------------------------
# Generator: fraud patterns and labels
# --------------------------------------------------------------------------------------------------


def test_fraud_share_is_near_the_configured_rate():
    _, labels = sources.generate_day(DAY, GeneratorConfig(tx_per_day=300_000, fraud_rate=0.02))
    share = labels["is_fraud"].to_numpy().mean()
    assert 0.02 * 0.85 <= share <= 0.02 * 1.15


def test_fraud_rate_zero_gives_no_fraud():
    _, labels = sources.generate_day(DAY, GeneratorConfig(tx_per_day=10_000, fraud_rate=0.0))
    assert labels["is_fraud"].to_numpy().sum() == 0


def test_the_three_patterns_share_the_fraud_roughly_equally(history):
    fraud = history.filter(pl.col("is_fraud") == 1)
    assert 0.008 <= fraud.height / history.height <= 0.012
    assert (history["pattern"].is_not_null() == (history["is_fraud"] == 1)).all()
    shares = fraud["pattern"].value_counts(normalize=True)
    shares = dict(zip(shares["pattern"], shares["proportion"], strict=True))
    assert set(shares) == set(sources.FRAUD_PATTERNS)
    assert all(0.25 <= s <= 0.42 for s in shares.values()), shares


def test_card_testing_bursts_of_small_rapid_payments_are_mostly_fraud(history):
    base = float(history["is_fraud"].mean())
    small_and_rapid = (pl.col("amount") < 5) & (
        (pl.col("gap_before") <= 120) | (pl.col("gap_after") <= 120)
    )
    rate, n = _rate(history, small_and_rapid)
    assert n > 300
    assert rate > 0.8 > 50 * base
    # Each burst ends with a big purchase minutes after a tiny one, on the same card.
    bursts = history.filter(pl.col("pattern") == "card_testing")
    cashouts = bursts.filter(pl.col("amount") >= 50)
    assert cashouts.height > 50
    assert (cashouts["gap_before"] <= 1_200).all()
    assert (bursts["channel"] == "ecom").mean() > 0.8


def test_compromised_merchants_have_a_much_higher_fraud_rate(history):
    compromised_rate, n = _rate(history, pl.col("compromised"))
    other_rate, _ = _rate(history, ~pl.col("compromised"))
    assert n > 500
    assert compromised_rate > 0.25
    assert compromised_rate > 20 * other_rate


def test_compromised_merchants_change_slowly():
    config = GeneratorConfig()
    sets = [
        set(sources.compromised_merchants(DAY + timedelta(days=i), config).tolist())
        for i in range(60)
    ]
    assert all(len(s) == 50 for s in sets)  # 0.5% of 10k merchants
    day_to_day = [len(a & b) / 50 for a, b in itertools.pairwise(sets)]
    assert min(day_to_day) >= 0.75  # most of the set stays from one day to the next
    assert len(sets[0] & sets[30]) <= 10  # and it has turned over within a month
    # Derived from (seed, day) only: the same day gives the same set.
    assert sets[5] == set(sources.compromised_merchants(DAY + timedelta(days=5), config).tolist())


def test_large_night_payments_abroad_are_mostly_fraud(history):
    base = float(history["is_fraud"].mean())
    night_abroad_large = (
        (pl.col("event_ts").dt.hour() < 6)
        & (pl.col("country") != pl.col("home_country"))
        & (pl.col("amount") > 300)
    )
    rate, n = _rate(history, night_abroad_large)
    assert n > 300
    assert rate > 0.8 > 50 * base
    # The same amount at home by day is ordinary.
    day_home_large = (
        (pl.col("event_ts").dt.hour() >= 10)
        & (pl.col("country") == pl.col("home_country"))
        & (pl.col("amount") > 300)
    )
    assert _rate(history, day_home_large)[0] < 5 * base


def test_label_delays_are_chargeback_delays_for_fraud_and_the_full_window_otherwise(history):
    delay = (pl.col("label_available_ts") - pl.col("event_ts")).dt.total_seconds()
    delays = history.with_columns(delay=delay)
    fraud = delays.filter(pl.col("is_fraud") == 1)["delay"]
    legit = delays.filter(pl.col("is_fraud") == 0)["delay"]
    assert fraud.min() >= 86_400 and fraud.max() <= 7 * 86_400
    assert fraud.max() - fraud.min() > 5 * 86_400  # spread over the window, not one value
    assert (legit == 7 * 86_400).all()


def test_labels_follow_the_transactions_row_for_row(small_day):
    transactions, labels = small_day
    assert labels["tx_id"].equals(transactions["tx_id"])
    assert labels["event_ts"].equals(transactions["event_ts"])
    assert set(labels["is_fraud"].to_pylist()) <= {0, 1}


def _fit_logistic(x: np.ndarray, y: np.ndarray, max_steps: int = 30) -> np.ndarray:
    """Weights of an L2-regularised logistic regression, intercept first (Newton steps: sklearn
    costs ~6 s to import here, and eight features need nothing more)."""
    x = np.column_stack([np.ones(len(x)), x])
    w = np.zeros(x.shape[1])
    for _ in range(max_steps):
        p = 1 / (1 + np.exp(-x @ w))
        hessian = (x * (p * (1 - p))[:, None]).T @ x + 1e-3 * np.eye(x.shape[1])
        step = np.linalg.solve(hessian, x.T @ (p - y) + 1e-3 * w)
        w -= step
        if np.abs(step).max() < 1e-6:
            break
    return w


def _average_precision(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the precision-recall curve: mean precision at the rank of each fraud."""
    ranked = y[np.argsort(-score, kind="stable")]
    hits = np.cumsum(ranked)
    return float((hits / np.arange(1, len(y) + 1))[ranked == 1].mean())


def test_a_simple_model_learns_the_patterns_from_bronze_alone(history):
    """A logistic regression on features anyone can compute from bronze (no hidden profile) finds
    most of the fraud of an unseen day: the patterns are learnable, and a merchant's fraud known
    from earlier days carries signal."""
    # The card's usual country, from its own history; fraud known per merchant before each day.
    usual_country = (
        history.group_by("card_id", "country")
        .len()
        .sort("len", "country", descending=[True, False])
        .unique("card_id", keep="first")
        .select("card_id", usual_country="country")
    )
    known = [
        history.filter(pl.col("label_available_ts") < pl.lit(_day_start(day)))
        .group_by("merchant_id")
        .agg(merchant_known_fraud=pl.col("is_fraud").sum())
        .with_columns(day=pl.lit(day))
        for day in PATTERN_DAYS
    ]
    frame = (
        history.join(usual_country, on="card_id", how="left")
        .join(pl.concat(known), on=["day", "merchant_id"], how="left")
        .with_columns(pl.col("merchant_known_fraud").fill_null(0))
    )
    features = frame.select(
        log_amount=pl.col("amount").log1p(),
        small=(pl.col("amount") < 5).cast(pl.Float64),
        rapid=(pl.min_horizontal("gap_before", "gap_after") <= 120).cast(pl.Float64),
        night=(pl.col("event_ts").dt.hour() < 6).cast(pl.Float64),
        abroad=(pl.col("country") != pl.col("usual_country")).cast(pl.Float64),
        merchant_fraud=pl.col("merchant_known_fraud").clip(0, 20).cast(pl.Float64),
    ).with_columns(
        night_abroad=pl.col("night") * pl.col("abroad") * pl.col("log_amount"),
        small_rapid=pl.col("small") * pl.col("rapid"),
    )
    x = features.to_numpy()
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    y = frame["is_fraud"].to_numpy().astype(float)
    test = (frame["day"] == PATTERN_DAYS[-1]).to_numpy()
    w = _fit_logistic(x[~test], y[~test])
    score = np.column_stack([np.ones(test.sum()), x[test]]) @ w
    pr_auc = _average_precision(y[test], score)
    base = y[test].mean()
    assert pr_auc > 0.6 > 50 * base
    # Merchants with frauds already known are where the next frauds happen.
    test_day = frame.filter(pl.col("day") == PATTERN_DAYS[-1])
    known_rate, n = _rate(test_day, pl.col("merchant_known_fraud") >= 2)
    assert n > 100
    assert known_rate > 20 * _rate(test_day, pl.col("merchant_known_fraud") == 0)[0]


# --------------------------------------------------------------------------------------------------
# File source
# --------------------------------------------------------------------------------------------------


def _write(root: Path, kind: str, day: date, table: pa.Table | str, fmt: str) -> Path:
    path = root / kind / f"{day.isoformat()}.{fmt}"
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(table, str):
        path.write_text(table)
    elif fmt == "csv":
        pv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    return path


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_file_round_trip_equals_the_generated_tables(tmp_path, small_day, fmt):
    transactions, labels = small_day
    for kind, table in (("transactions", transactions), ("labels", labels)):
        path = _write(tmp_path, kind, DAY, table, fmt)
        read = sources.read_day_file(tmp_path, kind, DAY)
        assert read.extra_columns == ()
        assert read.path == str(path)
        assert read.table.schema == table.schema
        assert read.table.equals(table)


def test_columns_are_reordered_and_extra_columns_dropped_and_reported(tmp_path, small_day):
    transactions, _ = small_day
    shuffled = transactions.select(list(reversed(transactions.column_names)))
    shuffled = shuffled.append_column("note", pa.array(["x"] * shuffled.num_rows))
    shuffled = shuffled.add_column(0, "source_system", pa.array(["pos"] * shuffled.num_rows))
    _write(tmp_path, "transactions", DAY, shuffled, "parquet")
    read = sources.read_day_file(str(tmp_path), "transactions", DAY)
    assert read.extra_columns == ("source_system", "note")
    assert read.table.equals(transactions)


def test_a_missing_column_names_the_file_and_the_column(tmp_path, small_day):
    transactions, _ = small_day
    _write(tmp_path, "transactions", DAY, transactions.drop_columns(["amount", "channel"]), "csv")
    with pytest.raises(BronzeContractError) as err:
        sources.read_day_file(tmp_path, "transactions", DAY)
    message = str(err.value)
    assert message.startswith("transactions/2024-01-03.csv: missing columns 'amount', 'channel'")
    assert err.value.columns == ("amount", "channel")


def test_values_that_are_not_numbers_are_counted_and_shown(tmp_path):
    csv = (
        "tx_id,event_ts,card_id,merchant_id,amount,merchant_category,channel,country\n"
        "a,2024-01-03 10:00:00,1,2,abc,grocery,pos,US\n"
        'b,2024-01-03 10:00:01,1,2,"1,2",grocery,pos,US\n'
        "c,2024-01-03 10:00:02,1,2,12.50,grocery,pos,US\n"
        "d,2024-01-03 10:00:03,1,2,,grocery,pos,US\n"
        "e,2024-01-03 10:00:04,1,2,NaN,grocery,pos,US\n"
    )
    _write(tmp_path, "transactions", DAY, csv, "csv")
    with pytest.raises(BronzeContractError) as err:
        sources.read_day_file(tmp_path, "transactions", DAY)
    assert str(err.value) == (
        "transactions/2024-01-03.csv: column 'amount' has 2 values that are not numbers "
        "(e.g. 'abc', '1,2')"
    )
    assert err.value.bad_values == {"amount": 2}
    assert err.value.columns == ("amount",)


def test_every_bad_column_is_reported_at_once(tmp_path):
    csv = (
        "tx_id,event_ts,card_id,merchant_id,amount,merchant_category,channel,country\n"
        "a,yesterday,1.5,2,1.0,grocery,pos,US\n"
        "b,2024-01-03 10:00:01,x,2,2.0,grocery,pos,US\n"
    )
    _write(tmp_path, "transactions", DAY, csv, "csv")
    with pytest.raises(BronzeContractError) as err:
        sources.read_day_file(tmp_path, "transactions", DAY)
    assert err.value.bad_values == {"event_ts": 1, "card_id": 2}
    assert "column 'event_ts' has 1 value that is not a timestamp (e.g. 'yesterday')" in str(
        err.value
    )
    assert "column 'card_id' has 2 values that are not integers (e.g. '1.5', 'x')" in str(err.value)


def test_is_fraud_out_of_int8_range_is_a_bad_value(tmp_path):
    csv = (
        "tx_id,event_ts,is_fraud,label_available_ts\n"
        "a,2024-01-03T10:00:00Z,1,2024-01-10T10:00:00Z\n"
        "b,2024-01-03T10:00:00Z,300,2024-01-10T10:00:00Z\n"
    )
    _write(tmp_path, "labels", DAY, csv, "csv")
    with pytest.raises(
        BronzeContractError,
        match=r"column 'is_fraud' has 1 value that is not an integer in \[-128, 127\] \(e.g. '300'\)",
    ):
        sources.read_day_file(tmp_path, "labels", DAY)


def test_timestamps_are_read_as_utc(tmp_path):
    csv = (
        "tx_id,event_ts,is_fraud,label_available_ts\n"
        "naive,2024-01-03 10:00:00,0,2024-01-10T10:00:00\n"
        "zulu,2024-01-03T10:00:00Z,0,2024-01-10 10:00:00.000000Z\n"
        "paris,2024-01-03T11:00:00+01:00,1,2024-01-05T05:00:00-05:00\n"
    )
    _write(tmp_path, "labels", DAY, csv, "csv")
    table = sources.read_day_file(tmp_path, "labels", DAY).table
    ten = datetime(2024, 1, 3, 10, tzinfo=UTC)
    assert table["event_ts"].to_pylist() == [ten, ten, ten]
    assert table["label_available_ts"].to_pylist()[2] == datetime(2024, 1, 5, 10, tzinfo=UTC)
    assert table["is_fraud"].to_pylist() == [0, 0, 1]


def test_parquet_with_naive_nanosecond_timestamps_and_other_types_is_coerced(tmp_path):
    naive = pd.DataFrame(
        {
            "tx_id": ["a", "b"],
            "event_ts": pd.to_datetime(["2024-01-03 10:00:00", "2024-01-03 23:59:59"]),
            "card_id": [1.0, np.nan],  # pandas turns an int column with a gap into floats
            "merchant_id": np.array([7, 8], dtype=np.int32),
            "amount": [10, 20],
            "merchant_category": pd.Categorical(["fuel", "fuel"]),
            "channel": ["pos", "pos"],
            "country": ["NA", "DE"],  # Namibia, not a null
        }
    )
    _write(tmp_path, "transactions", DAY, pa.Table.from_pandas(naive), "parquet")
    read = sources.read_day_file(tmp_path, "transactions", DAY)
    assert read.table.schema == schema.TRANSACTIONS
    assert read.table["event_ts"].to_pylist()[0] == datetime(2024, 1, 3, 10, tzinfo=UTC)
    assert read.table["card_id"].to_pylist() == [1, None]
    assert read.table["amount"].to_pylist() == [10.0, 20.0]
    assert read.table["country"].to_pylist() == ["NA", "DE"]
    assert read.extra_columns == ()


def test_null_keys_duplicates_and_other_days_are_kept_for_the_checks(tmp_path):
    csv = (
        "tx_id,event_ts,card_id,merchant_id,amount,merchant_category,channel,country\n"
        "a,2024-01-03 10:00:00,,2,1.0,grocery,pos,US\n"
        "a,2024-01-03 10:00:00,1,2,1.0,grocery,pos,US\n"
        ",2024-01-04 10:00:00,1,2,1.0,grocery,pos,US\n"
    )
    _write(tmp_path, "transactions", DAY, csv, "csv")
    table = sources.read_day_file(tmp_path, "transactions", DAY).table
    assert table.num_rows == 3
    assert table["tx_id"].to_pylist() == ["a", "a", None]
    assert table["card_id"].to_pylist() == [None, 1, 1]
    assert expectations.events_inside_day(table, DAY).unexpected_count == 1


def test_files_are_read_from_s3(aws_env, small_day):
    transactions, labels = small_day
    client = aws_env.client()
    client.put_object(
        Bucket=aws_env.bucket,
        Key="user-files/transactions/2024-01-03.parquet",
        Body=_parquet_bytes(transactions),
    )
    csv = io.BytesIO()
    pv.write_csv(labels, csv)
    client.put_object(
        Bucket=aws_env.bucket, Key="user-files/labels/2024-01-03.csv", Body=csv.getvalue()
    )
    root = f"s3://{aws_env.bucket}/user-files"
    assert sources.read_day_file(root, "transactions", DAY).table.equals(transactions)
    assert sources.read_day_file(root, "labels", DAY).table.equals(labels)
    with pytest.raises(FileNotFoundError):
        sources.read_day_file(root, "labels", DAY + timedelta(days=1))


def test_a_missing_file_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no labels file for 2024-01-03: looked for .*"):
        sources.read_day_file(tmp_path, "labels", DAY)


def test_both_formats_for_one_day_is_an_error(tmp_path, small_day):
    _, labels = small_day
    _write(tmp_path, "labels", DAY, labels, "csv")
    _write(tmp_path, "labels", DAY, labels, "parquet")
    with pytest.raises(BronzeContractError, match=r"both a \.parquet and a \.csv"):
        sources.read_day_file(tmp_path, "labels", DAY)


def test_a_ragged_csv_row_is_an_error_not_a_dropped_row(tmp_path):
    csv = "tx_id,event_ts,is_fraud,label_available_ts\na,2024-01-03,0,2024-01-10,extra\n"
    _write(tmp_path, "labels", DAY, csv, "csv")
    with pytest.raises(BronzeContractError, match=r"labels/2024-01-03.csv: not a readable CSV"):
        sources.read_day_file(tmp_path, "labels", DAY)


# --------------------------------------------------------------------------------------------------
# Expectations
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def suite_day() -> tuple[pd.DataFrame, pd.DataFrame]:
    transactions, labels = sources.generate_day(
        DAY, GeneratorConfig(n_cards=2_000, n_merchants=300, tx_per_day=2_000)
    )
    return transactions.to_pandas(), labels.to_pandas()


def test_generated_data_meets_the_suites(suite_day):
    transactions, labels = suite_day
    for frame, suite in (
        (transactions, expectations.TRANSACTIONS_SUITE),
        (labels, expectations.LABELS_SUITE),
    ):
        result = run_suite(frame, suite)
        assert result.success, [r.label for r in result.failures]


def test_transactions_suite_counts_each_kind_of_corruption(suite_day):
    corrupt = suite_day[0].copy()
    corrupt["card_id"] = corrupt["card_id"].astype("Int64")
    corrupt.loc[[0, 5, 9], "amount"] = -1.0
    corrupt.loc[[1, 2], "channel"] = "fax"
    corrupt.loc[3, "card_id"] = pd.NA
    corrupt.loc[4, "country"] = "usa"
    corrupt.loc[6, "merchant_category"] = "casino"
    result = run_suite(corrupt, expectations.TRANSACTIONS_SUITE)
    failures = {r.label: r.unexpected_count for r in result.failures}
    assert failures == {
        "expect_column_values_to_be_between(amount)": 3,
        "expect_column_values_to_be_in_set(channel)": 2,
        "expect_column_values_to_not_be_null(card_id)": 1,
        "expect_column_values_to_match_regex(country)": 1,
        "expect_column_values_to_be_in_set(merchant_category)": 1,
    }
    assert set(result.result_for("column_values_to_be_in_set", "channel").samples) == {"fax"}


def test_transactions_suite_rejects_naive_timestamps(suite_day):
    naive = suite_day[0].copy()
    naive["event_ts"] = naive["event_ts"].dt.tz_localize(None)
    result = run_suite(naive, expectations.TRANSACTIONS_SUITE)
    assert [r.label for r in result.failures] == ["expect_column_values_to_be_of_type(event_ts)"]


def test_labels_suite_rejects_unknown_outcomes_and_missing_columns(suite_day):
    labels = suite_day[1].copy()
    labels.loc[[0, 1], "is_fraud"] = 2
    result = run_suite(labels, expectations.LABELS_SUITE)
    assert [r.label for r in result.failures] == ["expect_column_values_to_be_in_set(is_fraud)"]
    assert result.failures[0].unexpected_count == 2
    missing = run_suite(labels.drop(columns=["label_available_ts"]), expectations.LABELS_SUITE)
    assert not missing.success
    failing = {r.type for r in missing.failures}
    assert "expect_table_columns_to_match_ordered_list" in failing
    # The expectations on the missing column fail with an error rather than pass silently.
    assert missing.result_for("column_values_to_not_be_null", "label_available_ts").error


def test_events_inside_day_counts_rows_from_other_days(small_day):
    transactions, _ = small_day
    frame = transactions.to_pandas()
    frame.loc[[0, 1, 2], "event_ts"] = pd.Timestamp("2024-01-04 00:00:00", tz="UTC")
    frame.loc[3, "event_ts"] = pd.Timestamp("2024-01-02 23:59:59", tz="UTC")
    frame.loc[4, "event_ts"] = pd.NaT
    for candidate in (frame, pl.from_pandas(frame), pa.Table.from_pandas(frame)):
        result = expectations.events_inside_day(candidate, DAY)
        assert not result.success
        assert result.unexpected_count == 4
        only = result.results[0]
        assert only.columns == ("event_ts",)
        assert only.sample_rows == (0, 1, 2, 3)
        assert only.samples[0] == "2024-01-04T00:00:00+00:00"
        assert only.observed_value["before_day"] == 1
        assert only.observed_value["after_day"] == 3
        assert only.observed_value["null_timestamps"] == 1
    assert expectations.events_inside_day(transactions, DAY).success


def test_events_inside_day_reads_naive_timestamps_as_utc():
    naive = pd.DataFrame(
        {"event_ts": pd.to_datetime(["2024-01-03 00:00:00", "2024-01-03 23:59:59"])}
    )
    assert expectations.events_inside_day(naive, DAY).success
    assert expectations.events_inside_day(naive, DAY - timedelta(days=1)).unexpected_count == 2


def test_labels_after_events_names_labels_known_too_early(small_day):
    _, labels = small_day
    frame = labels.to_pandas()
    frame.loc[[10, 20], "label_available_ts"] = frame.loc[[10, 20], "event_ts"] - pd.Timedelta(
        seconds=1
    )
    result = expectations.labels_after_events(frame)
    assert not result.success and result.unexpected_count == 2
    assert [s["tx_id"] for s in result.results[0].samples] == [
        frame.loc[10, "tx_id"],
        frame.loc[20, "tx_id"],
    ]
    assert expectations.labels_after_events(labels).success


def test_label_coverage_counts_transactions_without_a_label(small_day):
    transactions, labels = small_day
    partial = labels.slice(5)  # the first five payments have no label
    orphan = pa.table({"tx_id": ["nobody"]})
    labels_plus_orphan = pa.concat_tables([partial.select(["tx_id"]), orphan])
    result = expectations.label_coverage(transactions, labels_plus_orphan)
    assert not result.success
    assert result.unexpected_count == 5
    observed = result.results[0].observed_value
    assert observed["labelled"] == transactions.num_rows - 5
    assert observed["labels_without_transaction"] == 1
    assert result.results[0].samples == tuple(transactions["tx_id"].to_pylist()[:5])
    assert expectations.label_coverage(transactions, partial, min_share=0.99).success
    assert expectations.label_coverage(transactions, labels).success


def test_label_coverage_does_not_match_null_ids():
    transactions = pa.table({"tx_id": pa.array(["a", None], pa.string())})
    labels = pa.table({"tx_id": pa.array(["a", None], pa.string())})
    result = expectations.label_coverage(transactions, labels)
    assert result.unexpected_count == 1
    assert expectations.label_coverage(transactions.slice(0, 0), labels).success


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_file_with_no_rows_is_refused(tmp_path, small_day, fmt):
    _write(tmp_path, "labels", DAY, small_day[1].slice(0, 0), fmt)
    with pytest.raises(BronzeContractError, match=f"labels/2024-01-03.{fmt}: .*no rows"):
        sources.read_day_file(tmp_path, "labels", DAY)


def test_amounts_above_the_plausibility_bound_are_counted(suite_day):
    frame = suite_day[0].copy()
    frame.loc[[0, 7], "amount"] = 1e12
    frame.loc[8, "amount"] = 5_000.0
    default = run_suite(frame, expectations.TRANSACTIONS_SUITE)
    assert {r.label: r.unexpected_count for r in default.failures} == {
        "expect_column_values_to_be_between(amount)": 2
    }
    strict = run_suite(frame, expectations.transactions_suite(max_amount=1_000))
    assert strict.failures[0].unexpected_count >= 3
    with pytest.raises(ValueError, match="max_amount"):
        expectations.transactions_suite(max_amount=0)
