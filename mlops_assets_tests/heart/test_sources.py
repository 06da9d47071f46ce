"""The heart raw sources: the synthetic generator and the UCI / Kaggle file reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlops_assets.core.contracts import ContractError
from mlops_assets.heart import schema, sources
from mlops_assets.heart.sources import GeneratorConfig, HeartContractError

DATA = Path(__file__).parent / "data"
CLEVELAND = DATA / "processed.cleveland.data"
FIRST_ROW = "63.0,1.0,1.0,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,0.0,6.0,0"
SECOND_ROW = "67.0,1.0,4.0,160.0,286.0,0.0,2.0,108.0,1.0,1.5,2.0,3.0,3.0,2"
HEADER = ",".join(schema.INPUTS)


@pytest.fixture(scope="module")
def patients() -> pa.Table:
    return sources.generate_patients(GeneratorConfig(n_patients=3_000))


@pytest.fixture(scope="module")
def frame(patients: pa.Table) -> pd.DataFrame:
    return patients.to_pandas()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------------------------------


def test_schema_is_the_raw_contract_exactly(patients: pa.Table) -> None:
    assert patients.schema.equals(schema.raw_schema(), check_metadata=True)
    assert tuple(patients.column_names) == schema.RAW_COLUMNS
    assert patients.num_rows == 3_000
    assert patients[schema.KEY].to_pylist() == list(range(1, 3_001))
    default = sources.generate_patients()
    assert default.num_rows == GeneratorConfig().n_patients == 1_000


def test_same_config_same_table_and_other_seed_other_data(patients: pa.Table) -> None:
    assert sources.generate_patients(GeneratorConfig(n_patients=3_000)).equals(patients)
    other = sources.generate_patients(GeneratorConfig(n_patients=3_000, seed=43))
    assert not other.equals(patients)
    assert other.schema.equals(patients.schema)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"n_patients": 0}, ValueError),
        ({"n_patients": 2.5}, TypeError),
        ({"n_patients": True}, TypeError),
        ({"seed": "1"}, TypeError),
    ],
)
def test_config_is_validated(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        GeneratorConfig(**kwargs)  # type: ignore[arg-type]


def test_target_is_num_above_zero_and_prevalence_is_realistic(frame: pd.DataFrame) -> None:
    assert (frame["target"] == (frame["num"] > 0).astype(int)).all()
    assert set(frame["num"]) == {0, 1, 2, 3, 4}
    assert 0.35 <= frame["target"].mean() <= 0.55
    severity = frame.loc[frame["target"] == 1, "num"].value_counts(normalize=True)
    # Skewed to 1, as in Cleveland (40/26/25/9 %).
    assert severity[1] == severity.max()
    assert 0.35 <= severity[1] <= 0.45
    assert severity[4] < 0.15


def test_marginals_are_like_cleveland(frame: pd.DataFrame) -> None:
    assert 52 <= frame["age"].mean() <= 56
    assert 7.5 <= frame["age"].std() <= 10.5
    assert frame["age"].between(29, 77).all()
    assert 0.63 <= frame["sex"].mean() <= 0.73
    assert 236 <= frame["chol"].mean() <= 256
    assert 40 <= frame["chol"].std() <= 62
    assert 126 <= frame["trestbps"].mean() <= 136
    assert 0.11 <= frame["fbs"].mean() <= 0.19
    assert 0.40 <= (frame["cp"] == 4).mean() <= 0.55
    assert (frame["oldpeak"] >= 0).all()


def test_codes_are_within_the_documented_ranges(frame: pd.DataFrame) -> None:
    for column, (low, high) in schema.RANGES.items():
        values = frame[column].dropna()
        assert values.between(low, high).all(), column
    assert set(frame["thal"].dropna()) == set(map(float, schema.THAL_CODES))
    assert set(frame["cp"]) == {1.0, 2.0, 3.0, 4.0}
    assert set(frame["ca"].dropna()) == {0.0, 1.0, 2.0, 3.0}
    assert set(frame["slope"]) == {1.0, 2.0, 3.0}
    assert set(frame["restecg"]) == {0.0, 1.0, 2.0}
    for column in ("sex", "fbs", "exang"):
        assert set(frame[column]) == {0.0, 1.0}, column


def test_only_a_few_ca_and_thal_are_missing(patients: pa.Table) -> None:
    nulls = {c: patients[c].null_count for c in patients.column_names}
    assert 0.005 * 3_000 <= nulls["ca"] <= 0.03 * 3_000
    assert 0.002 * 3_000 <= nulls["thal"] <= 0.025 * 3_000
    assert all(n == 0 for c, n in nulls.items() if c not in ("ca", "thal")), nulls


def test_diseased_patients_look_like_the_real_ones(frame: pd.DataFrame) -> None:
    sick, well = frame[frame["target"] == 1], frame[frame["target"] == 0]
    assert sick["thalach"].mean() < well["thalach"].mean() - 10
    assert sick["oldpeak"].mean() > well["oldpeak"].mean() + 0.5
    assert (sick["cp"] == 4).mean() > (well["cp"] == 4).mean() + 0.25
    assert sick["exang"].mean() > well["exang"].mean() + 0.2
    assert sick["ca"].mean() > well["ca"].mean() + 0.5
    assert (sick["thal"] == 7).mean() > (well["thal"] == 7).mean() + 0.25
    assert (sick["slope"] == 2).mean() > (well["slope"] == 2).mean()
    assert sick["age"].mean() > well["age"].mean()
    assert sick["sex"].mean() > well["sex"].mean()
    # The more severe the disease, the more vessels.
    by_num = frame.groupby("num")["ca"].mean()
    assert by_num[4] > by_num[1] > by_num[0]


def test_the_signal_is_learnable_but_noisy(frame: pd.DataFrame) -> None:
    """A plain logistic model reaches a ROC-AUC like on the real data: neither chance nor perfect."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    inputs = frame[list(schema.INPUTS)]
    x = pd.get_dummies(
        inputs.fillna(inputs.median()), columns=list(schema.CATEGORICAL_INPUTS)
    ).astype(float)
    x = (x - x.mean()) / x.std().replace(0, 1)
    train, test = slice(0, 2_000), slice(2_000, None)
    model = LogisticRegression(max_iter=1_000).fit(x[train], frame["target"][train])
    auc = roc_auc_score(frame["target"][test], model.predict_proba(x[test])[:, 1])
    assert 0.85 <= auc <= 0.96


# --------------------------------------------------------------------------------------------------
# The reader, on the real Cleveland file
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cleveland() -> pa.Table:
    return sources.read_uci_file(CLEVELAND)


def test_the_real_file_reads_exactly(cleveland: pa.Table) -> None:
    assert cleveland.schema.equals(schema.raw_schema(), check_metadata=True)
    assert cleveland.num_rows == 303
    assert cleveland[schema.KEY].to_pylist() == list(range(1, 304))
    target = cleveland["target"].to_pylist()
    assert target.count(1) == 139
    assert target.count(0) == 164
    num = pd.Series(cleveland["num"].to_pylist()).value_counts().to_dict()
    assert num == {0: 164, 1: 55, 2: 36, 3: 35, 4: 13}
    nulls = {c: cleveland[c].null_count for c in cleveland.column_names if cleveland[c].null_count}
    assert nulls == {"ca": 4, "thal": 2}


def test_the_real_file_values(cleveland: pa.Table) -> None:
    first = cleveland.slice(0, 1).to_pylist()[0]
    assert first == {
        "record_id": 1,
        "age": 63.0,
        "sex": 1.0,
        "cp": 1.0,
        "trestbps": 145.0,
        "chol": 233.0,
        "fbs": 1.0,
        "restecg": 2.0,
        "thalach": 150.0,
        "exang": 0.0,
        "oldpeak": 2.3,
        "slope": 3.0,
        "ca": 0.0,
        "thal": 6.0,
        "num": 0,
        "target": 0,
    }
    # The "?" of line 88 (thal) and line 167 (ca) are nulls; the rest of those rows is kept.
    frame = cleveland.to_pandas().set_index(schema.KEY)
    assert np.isnan(frame.loc[88, "thal"]) and frame.loc[88, "chol"] == 216.0
    assert np.isnan(frame.loc[167, "ca"]) and frame.loc[167, "thal"] == 3.0
    last = frame.loc[303]
    assert np.isnan(last["ca"]) and last["thal"] == 3.0 and last["num"] == 0
    assert frame.loc[2, "num"] == 2 and frame.loc[2, "target"] == 1
    assert frame["age"].mean() == pytest.approx(54.438944, abs=1e-6)
    assert frame["chol"].mean() == pytest.approx(246.693069, abs=1e-6)
    assert frame["thalach"].mean() == pytest.approx(149.607261, abs=1e-6)


def test_the_real_file_is_the_uci_original() -> None:
    data = CLEVELAND.read_bytes()
    assert len(data) == 18_461
    lines = data.decode().split("\n")
    assert lines[0] == FIRST_ROW
    assert lines[-1] == ""  # every line ends with a newline
    assert len(lines) == 304
    assert sum(line.count("?") for line in lines) == 6


# --------------------------------------------------------------------------------------------------
# The reader, on other layouts and on bad files
# --------------------------------------------------------------------------------------------------


def test_a_kaggle_csv_with_target_only(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "heart.csv",
        f"{HEADER},target\n"
        "63,1,1,145,233,1,2,150,0,2.3,3,0,6,0\n"
        "67,1,4,160,286,0,2,108,1,1.5,2,3,3,1\n"
        "57,1,4,140,192,0,0,148,0,0.4,2,,,1\n",
    )
    table = sources.read_uci_file(path)
    assert table.schema.equals(schema.raw_schema())
    assert table["record_id"].to_pylist() == [1, 2, 3]
    assert table["target"].to_pylist() == [0, 1, 1]
    assert table["num"].null_count == 3  # the severity is unknown
    assert table["age"].to_pylist() == [63.0, 67.0, 57.0]
    assert table["oldpeak"].to_pylist() == [2.3, 1.5, 0.4]
    assert table["ca"].to_pylist() == [0.0, 3.0, None]
    assert table["thal"].to_pylist() == [6.0, 3.0, None]


def test_a_csv_with_num_in_another_order_and_extra_columns(tmp_path: Path) -> None:
    columns = ["num", "note", *reversed(schema.INPUTS)]
    values = FIRST_ROW.split(",")
    second = SECOND_ROW.split(",")
    row = [values[-1], "first", *reversed(values[:-1])]
    row2 = [second[-1], "second", *reversed(second[:-1])]
    header = ",".join(c.upper() if c == "age" else c for c in columns)  # names are case-blind
    path = write(tmp_path, "mine.csv", "\n".join([header, ",".join(row), ",".join(row2)]) + "\n")
    table = sources.read_uci_file(path)
    assert table["num"].to_pylist() == [0, 2]
    assert table["target"].to_pylist() == [0, 1]
    assert table["age"].to_pylist() == [63.0, 67.0]
    assert table["thal"].to_pylist() == [6.0, 3.0]
    assert table.column_names == list(schema.RAW_COLUMNS)


def test_num_and_target_must_agree(tmp_path: Path) -> None:
    ok = write(tmp_path, "ok.csv", f"{HEADER},num,target\n{SECOND_ROW},1\n{FIRST_ROW},0\n")
    assert sources.read_uci_file(ok)["target"].to_pylist() == [1, 0]
    bad = write(tmp_path, "bad.csv", f"{HEADER},num,target\n{FIRST_ROW},0\n{SECOND_ROW},0\n")
    with pytest.raises(HeartContractError, match=r"row 2 \(num 2, target 0\)") as info:
        sources.read_uci_file(bad)
    assert info.value.bad_values == {"target": 1}


def test_blank_lines_and_windows_line_ends_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "cleveland.data"
    path.write_bytes(f"{FIRST_ROW}\r\n\r\n{SECOND_ROW}\r\n".encode())
    table = sources.read_uci_file(path)
    assert table["record_id"].to_pylist() == [1, 2]
    assert table["num"].to_pylist() == [0, 2]


def test_a_line_with_13_values_names_the_line(tmp_path: Path) -> None:
    short = FIRST_ROW.rsplit(",", 1)[0]
    path = write(tmp_path, "short.data", f"{FIRST_ROW}\n{SECOND_ROW}\n{short}\n")
    with pytest.raises(HeartContractError) as info:
        sources.read_uci_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "1 line has a wrong number of values (expected the UCI layout's 14)" in message
    assert f"line 3 (13 values) {short!r}" in message
    assert isinstance(info.value, ContractError)
    assert isinstance(info.value, ValueError)


def test_a_csv_line_with_too_many_values(tmp_path: Path) -> None:
    path = write(tmp_path, "long.csv", f"{HEADER},num\n{FIRST_ROW}\n{FIRST_ROW},9\n{FIRST_ROW},9\n")
    with pytest.raises(HeartContractError, match=r"2 lines have .*line 3 \(15 values\)"):
        sources.read_uci_file(path)


def test_text_in_chol_names_the_column_and_the_row(tmp_path: Path) -> None:
    bad = SECOND_ROW.replace("286.0", "abc")
    path = write(tmp_path, "bad.data", f"{FIRST_ROW}\n{bad}\n")
    with pytest.raises(HeartContractError) as info:
        sources.read_uci_file(path)
    assert str(info.value) == f"{path}: column 'chol' has 1 value that is not a number: row 2 'abc'"
    assert info.value.columns == ("chol",)
    assert info.value.samples == {"chol": [(2, "abc")]}


def test_num_outside_0_to_4_fails(tmp_path: Path) -> None:
    bad = FIRST_ROW[:-1] + "7"
    path = write(tmp_path, "num.data", f"{bad}\n{SECOND_ROW}\n{bad}\n")
    with pytest.raises(HeartContractError) as info:
        sources.read_uci_file(path)
    assert "column 'num' has 2 values that are not diagnoses in 0-4: row 1 '7', row 3 '7'" in str(
        info.value
    )
    assert info.value.bad_values == {"num": 2}


def test_target_outside_0_1_and_missing_columns_fail(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", f"{HEADER},target\n{FIRST_ROW[:-1]}2\n")
    with pytest.raises(HeartContractError, match=r"column 'target' has 1 value that is not 0 or 1"):
        sources.read_uci_file(path)
    no_label = write(tmp_path, "n.csv", f"{HEADER}\n{FIRST_ROW.rsplit(',', 1)[0]}\n")
    with pytest.raises(HeartContractError, match=r"missing column 'num'"):
        sources.read_uci_file(no_label)
    no_age = write(tmp_path, "a.csv", HEADER.replace("age", "years") + ",num\n" + FIRST_ROW + "\n")
    with pytest.raises(HeartContractError) as info:
        sources.read_uci_file(no_age)
    assert info.value.missing_columns == ("age",)


def test_an_empty_or_absent_file(tmp_path: Path) -> None:
    with pytest.raises(HeartContractError, match="empty"):
        sources.read_uci_file(write(tmp_path, "empty.data", "\n\n"))
    with pytest.raises(FileNotFoundError):
        sources.read_uci_file(tmp_path / "nope.data")


def test_a_header_only_csv_is_refused(tmp_path: Path) -> None:
    with pytest.raises(HeartContractError, match=r"h\.csv: the file has a header but no rows"):
        sources.read_uci_file(write(tmp_path, "h.csv", f"{HEADER},num\n\n"))
