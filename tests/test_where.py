"""Safe --where expressions: parsed into pyarrow compute, never evaluated as Python."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from thresher.errors import ConfigError
from thresher.selectors.where import WhereExpression, where_mask


@pytest.fixture
def table() -> pa.Table:
    return pa.table({"gopher_pass": [True, False, True, None], "lang": ["en", "en", "de", "en"],
                     "n_words": [10, 60, 70, 80], "score": [1.0, None, 2.0, 3.0]})


@pytest.mark.parametrize("expr, expected", [
    ("gopher_pass and lang == 'en'", [True, False, False, False]),  # null gopher_pass does not pass
    ("lang in ['en', 'de'] and 5 < n_words <= 70", [True, True, True, False]),  # chained comparison
    ("not is_null(score) and score * 2 > 3", [False, False, True, True]),
    ("n_words >= 50 or -score < -2.5", [False, True, True, True]),
    ("lang not in ('de',) and not gopher_pass", [False, True, False, False]),
    ("abs(score - 2) <= 1 and log(n_words) > 4", [False, False, True, True]),
])
def test_expressions_select_the_right_rows(table, expr, expected):
    assert where_mask(table, expr).tolist() == expected


def test_no_expression_keeps_everything(table):
    assert where_mask(table, None).all()


@pytest.mark.parametrize("expr, message", [
    ("__import__('os').system('true')", "not allowed"),
    ("open('x')", "function open"),
    ("lang.upper() == 'EN'", "not allowed"),
    ("missing > 1", "unknown column.*missing.*gopher_pass"),
    ("n_words >", "cannot parse"),
    ("n_words", "not true/false"),
    ("lang in other_column", "literal list"),
    ("", "non-empty"),
    ("lang in ['en', 1]", "all strings, all numbers"),
    ("n_words in [1] < 3", "must end a comparison chain"),
    ("n_words > 99999999999999999999999", "too large"),
    (" + ".join(["n_words"] * 600) + " > 1", "limit is 2,000"),
])
def test_bad_expressions_are_clear_errors(table, expr, message):
    with pytest.raises(ConfigError, match=message):
        where_mask(table, expr)


def test_columns_are_reported_for_validation():
    assert WhereExpression("a > 1 and (b == 'x' or a < 0)").columns == ["a", "b"]


def test_empty_table():
    empty = pa.table({"n": pa.array([], pa.int64())})
    assert where_mask(empty, "n > 1").dtype == np.bool_ and len(where_mask(empty, "n > 1")) == 0
