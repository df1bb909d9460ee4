"""The results table's filter, sort and group-by logic (pure Python, no Textual)."""

import math

import pytest

from unettui.core.define.config import DEFAULTS, KEYS
from unettui.core.runs.export import COLUMNS
from unettui.tui.data import RunView
from unettui.tui.filtering import (
    Condition,
    FilterError,
    group_means,
    has_epochs,
    matches,
    parse_filter,
    row_of,
    sort_rows,
    varying_keys,
)

# id: (optimizer, scheduler, best_val_dice, best_epoch, final_val_dice, final_val_loss, seconds)
STUDY = {
    "adam-none": ("adam", "none", 0.8512, 17, 0.8470, 0.2104, 61.5),
    "adam-cosine": ("adam", "cosine", 0.8731, 20, 0.8731, 0.1932, 63.0),
    "rmsprop-none": ("rmsprop", "none", 0.8120, 15, 0.8011, 0.2488, 60.2),
    "rmsprop-cosine": ("rmsprop", "cosine", 0.8345, 19, 0.8302, 0.2301, 62.7),
    "sgd-none": ("sgd", "none", 0.3120, 20, 0.3120, 0.6905, 58.9),
    "sgd-cosine": ("sgd", "cosine", 0.2875, 18, 0.2799, 0.7012, 59.4),
}


def view(run_id, optimizer, scheduler, best, best_epoch, final_dice, final_loss, seconds, state="done"):
    cfg = DEFAULTS.replace(optimizer=optimizer, scheduler=scheduler, lr=1e-3, epochs=20).to_dict()
    summary = {
        "best_val_dice": best, "best_epoch": best_epoch, "best_val_loss": final_loss - 0.01,
        "final_train_loss": final_loss - 0.05, "final_train_dice": final_dice + 0.02,
        "final_val_loss": final_loss, "final_val_dice": final_dice, "final_val_iou": final_dice - 0.1,
        "epochs_done": 20, "epochs": 20, "seconds": seconds, "val_on_train": False,
    }
    metrics = [{"epoch": e, "train_loss": 0.5, "train_dice": 0.5, "val_loss": 0.5, "val_dice": 0.5, "lr": 1e-3, "seconds": 3.0}
               for e in range(1, 21)]
    return RunView(id=run_id, state=state, epoch=20, epochs=20, config=cfg, metrics=metrics, summary=summary)


def study_rows():
    return [row_of(view(i, *v)) for i, v in STUDY.items()]


def ids(rows):
    return [r["id"] for r in rows]


def select(text):
    conds = parse_filter(text)
    return [r["id"] for r in study_rows() if matches(r, conds)]


# ---- rows ------------------------------------------------------------------------------------


def test_row_of_has_every_export_column_and_the_summary():
    row = row_of(view("adam-none", *STUDY["adam-none"]))
    assert set(COLUMNS) <= set(row)
    assert row["id"] == "adam-none" and row["status"] == "done"
    assert row["optimizer"] == "adam" and row["scheduler"] == "none" and row["lr"] == 0.001
    assert row["augment.rotate"] == 0.0
    assert row["best_val_dice"] == 0.8512 and row["best_epoch"] == 17
    assert row["final_val_loss"] == 0.2104 and row["epochs_done"] == 20 and row["seconds"] == 61.5
    assert row["val_on_train"] is False and row["error"] is None


def test_row_of_derives_metrics_when_summary_is_missing():
    v = RunView(id="r", state="running", epoch=2, epochs=5, config={"optimizer": "sgd"}, metrics=[
        {"epoch": 1, "train_loss": 0.9, "train_dice": 0.1, "val_loss": 0.8, "val_dice": 0.30, "seconds": 1.25},
        {"epoch": 2, "train_loss": 0.7, "train_dice": 0.2, "val_loss": 0.6, "val_dice": 0.25, "seconds": 1.5},
    ])
    row = row_of(v)
    assert (row["best_val_dice"], row["best_epoch"]) == (0.30, 1)
    assert (row["final_val_dice"], row["final_val_loss"], row["final_train_loss"]) == (0.25, 0.6, 0.7)
    assert (row["epochs_done"], row["seconds"]) == (2, 2.75)
    assert row["lr"] is None  # not in this config
    early = row_of(RunView(id="e", state="running", epoch=1, metrics=[{"epoch": 1, "train_loss": 0.9, "seconds": 2.0}]))
    assert (early["best_val_dice"], early["best_epoch"], early["epochs_done"], early["seconds"]) == (None, None, 1, 2.0)


def test_has_epochs():
    assert has_epochs(view("a", *STUDY["adam-none"]))
    assert not has_epochs(RunView(id="p"))
    assert has_epochs(RunView(id="r", state="running", epoch=1))


# ---- parsing ---------------------------------------------------------------------------------


def test_parse_terms_aliases_and_numbers():
    conds = parse_filter("optimizer=adam, val_dice>0.8  lr<=1e-3 scheduler!=none cos")
    assert conds == [
        Condition("optimizer", "=", "adam", None),
        Condition("best_val_dice", ">", "0.8", 0.8),
        Condition("lr", "<=", "1e-3", 0.001),
        Condition("scheduler", "!=", "none", None),
        Condition("id", "~", "cos", None),
    ]
    assert parse_filter("val_loss < 0.25") == [Condition("final_val_loss", "<", "0.25", 0.25)]
    assert parse_filter("") == [] and parse_filter(" , ") == []
    assert parse_filter("optimizer==sgd") == [Condition("optimizer", "=", "sgd", None)]


@pytest.mark.parametrize(
    "text, message",
    [
        ("optimiser=adam", "unknown filter key 'optimiser': did you mean 'optimizer'?"),
        ("val_dise>0.8", "unknown filter key 'val_dise': did you mean 'val_dice'?"),
        ("zzz=1", "unknown filter key 'zzz': use a column name such as optimizer, lr, best_val_dice (or val_dice, val_loss)"),
        ("val_dice>high", "'val_dice>high': 'high' is not a number"),
        ("optimizer>adam", "'optimizer>adam': optimizer is text; compare it with = or !="),
        ("lr=fast", "'lr=fast': lr is a number; 'fast' is not"),
        ("optimizer=", "'optimizer=': missing value after '='"),
        ("augment.histeq=maybe", "'augment.histeq=maybe': augment.histeq is true or false, not 'maybe'"),
        ("=adam", "cannot read '=adam': write key=value, key!=value, key>number or key<number"),
    ],
)
def test_parse_errors_are_one_line_and_name_the_key(text, message):
    with pytest.raises(FilterError) as info:
        parse_filter(text)
    assert str(info.value) == message
    assert "\n" not in str(info.value)


# ---- matching --------------------------------------------------------------------------------


def test_filters_select_the_right_runs():
    assert select("optimizer=adam") == ["adam-none", "adam-cosine"]
    assert select("optimizer=ADAM") == ["adam-none", "adam-cosine"]
    assert select("val_dice>0.8") == ["adam-none", "adam-cosine", "rmsprop-none", "rmsprop-cosine"]
    assert select("val_dice>=0.8512") == ["adam-none", "adam-cosine"]
    assert select("val_dice>0.8 scheduler=cosine") == ["adam-cosine", "rmsprop-cosine"]
    assert select("optimizer!=sgd,val_loss<0.22") == ["adam-none", "adam-cosine"]
    assert select("lr=1e-3") == list(STUDY) and select("lr=0.001") == list(STUDY)
    assert select("lr=1e-4") == []
    assert select("best_epoch=20") == ["adam-cosine", "sgd-none"]
    assert select("sgd") == ["sgd-none", "sgd-cosine"]
    assert select("status=done time<60") == ["sgd-none", "sgd-cosine"]
    assert select("augment.histeq=false") == list(STUDY)
    assert select("val_on_train=true") == []


def test_missing_values_match_no_comparison_but_match_not_equal():
    row = {"id": "x", "best_val_dice": None, "optimizer": None, "final_val_loss": math.nan}
    assert not matches(row, parse_filter("val_dice>0"))
    assert not matches(row, parse_filter("val_dice<1"))
    assert not matches(row, parse_filter("val_loss<1"))
    assert not matches(row, parse_filter("optimizer=adam"))
    assert matches(row, parse_filter("optimizer!=adam"))


# ---- sorting, varying keys, grouping -----------------------------------------------------------


def test_sort_rows_both_directions_missing_last():
    rows = study_rows() + [{"id": "fresh", "best_val_dice": None}, {"id": "nan", "best_val_dice": math.nan}]
    assert ids(sort_rows(rows, "best_val_dice", descending=True)) == [
        "adam-cosine", "adam-none", "rmsprop-cosine", "rmsprop-none", "sgd-none", "sgd-cosine", "fresh", "nan"]
    assert ids(sort_rows(rows, "best_val_dice")) == [
        "sgd-cosine", "sgd-none", "rmsprop-none", "rmsprop-cosine", "adam-none", "adam-cosine", "fresh", "nan"]
    # text sorts without case, equal values keep their order
    assert ids(sort_rows(rows, "optimizer", descending=True))[:2] == ["sgd-none", "sgd-cosine"]
    assert ids(sort_rows(rows, "optimizer"))[:2] == ["adam-none", "adam-cosine"]


def test_varying_keys_compares_across_rows():
    rows = study_rows()
    assert varying_keys(rows) == ["optimizer", "scheduler"]
    rows[0] = {**rows[0], "lr": 1e-4}
    assert varying_keys(rows) == ["optimizer", "lr", "scheduler"]
    assert varying_keys(rows[:1]) == []
    assert set(varying_keys(rows)) <= set(KEYS)


def test_varying_keys_tells_values_apart_by_kind_not_by_spelling():
    base = DEFAULTS.to_dict()
    def rows(key, *values):
        return [dict(base, id=f"r{i}", **{key: v}) for i, v in enumerate(values)]
    assert varying_keys(rows("lr", 1, 1.0)) == []  # (an int in a hand-made config.json is the same number)
    assert varying_keys(rows("lr", math.nan, float("nan"))) == []  # two NaNs: one value
    assert varying_keys(rows("lr", math.nan, 0.1)) == ["lr"]
    assert varying_keys(rows("augment.histeq", True, 1.0)) == ["augment.histeq"]  # true is not 1.0
    assert varying_keys(rows("dataset", "1.0", 1.0)) == ["dataset"]
    assert varying_keys(rows("dataset", "a", None, "a")) == []  # unknown on one row: not varied
    assert varying_keys(rows("dataset", [1, 2], [1, 2])) == [] and varying_keys(rows("dataset", [1], [2])) == ["dataset"]


def test_group_means_per_scheduler_and_optimizer():
    rows = study_rows() + [{"id": "fresh", "scheduler": "none", "best_val_dice": None}]
    by_scheduler = group_means(rows, "scheduler")
    assert [(v, n) for v, n, _, _ in by_scheduler] == [("cosine", 3), ("none", 3)]
    assert by_scheduler[0][2] == pytest.approx((0.8731 + 0.8345 + 0.2875) / 3, abs=1e-12)  # 0.665033...
    assert by_scheduler[0][3] == pytest.approx((0.1932 + 0.2301 + 0.7012) / 3, abs=1e-12)  # 0.374833...
    assert by_scheduler[1][2] == pytest.approx(0.6584, abs=1e-12)
    assert by_scheduler[1][3] == pytest.approx((0.2104 + 0.2488 + 0.6905) / 3, abs=1e-12)  # 0.383233...
    by_optimizer = group_means(rows, "optimizer")
    assert [(v, n, round(d, 5), round(loss, 5)) for v, n, d, loss in by_optimizer] == [
        ("adam", 2, 0.86215, 0.2018),
        ("rmsprop", 2, 0.82325, 0.23945),
        ("sgd", 2, 0.29975, 0.69585),
    ]


def test_group_means_numbers_sort_numerically_and_unset_last():
    rows = [
        {"id": "a", "lr": 1e-3, "best_val_dice": 0.5, "final_val_loss": 0.4},
        {"id": "b", "lr": 1e-4, "best_val_dice": 0.3, "final_val_loss": None},
        {"id": "c", "lr": 0.001, "best_val_dice": 0.7, "final_val_loss": 0.2},
        {"id": "d", "lr": None, "best_val_dice": 0.1, "final_val_loss": 0.9},
    ]
    out = group_means(rows, "lr")
    assert [(v, n) for v, n, _, _ in out] == [(1e-4, 1), (1e-3, 2), (None, 1)]
    assert out[0][2:] == (0.3, None)
    assert out[1][2] == pytest.approx(0.6) and out[1][3] == pytest.approx(0.3)
