"""Safe filter expressions over score columns, e.g. ``gopher_pass and lang == 'en' and n_words >= 50``.

The expression is parsed with Python's ``ast`` (never ``eval``ed) and only a small grammar is accepted: column
names, numbers, strings, booleans and ``None``; ``and``/``or``/``not``; comparisons (``== != < <= > >=``,
chained); ``in`` / ``not in`` a literal list; ``+ - * /`` and unary minus; and the functions ``is_null(col)``,
``abs(x)``, ``log(x)``. It compiles to a pyarrow compute expression, evaluated vectorised on the score table.
A record whose expression is null (a missing score) does not pass.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from thresher.errors import ConfigError

_COMPARE = {ast.Eq: "equal", ast.NotEq: "not_equal", ast.Lt: "less", ast.LtE: "less_equal",
            ast.Gt: "greater", ast.GtE: "greater_equal"}
_ARITH = {ast.Add: "add", ast.Sub: "subtract", ast.Mult: "multiply", ast.Div: "divide"}
_FUNCS = {"is_null": ("is_null", 1), "abs": ("abs", 1), "log": ("ln", 1)}
#: Longest expression accepted (deep nesting would exhaust the parser's stack long before this).
MAX_LENGTH = 2000


class WhereExpression:
    """A parsed filter: ``columns`` it reads, and ``mask(table)`` -> boolean numpy array."""

    def __init__(self, text: str):
        if not isinstance(text, str) or not text.strip():
            raise ConfigError("a --where expression must be a non-empty string")
        self.text = text
        if len(text) > MAX_LENGTH:
            raise ConfigError(f"--where is {len(text):,} characters long; the limit is {MAX_LENGTH:,}")
        self.columns: list[str] = []
        try:
            tree = ast.parse(text.strip(), mode="eval")
            self.expression = self._compile(tree.body)
        except SyntaxError as e:
            raise ConfigError(f"cannot parse --where {text!r}: {e.msg} at column {e.offset}") from None
        except (RecursionError, MemoryError):
            raise ConfigError(f"--where {text[:60]!r}... is nested too deeply") from None
        except (OverflowError, pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise ConfigError(f"--where {text!r}: {e}") from None

    def check_columns(self, available: Iterable[str]) -> None:
        """Fail with the list of known columns when the expression names one that does not exist."""
        available = list(available)
        missing = [c for c in self.columns if c not in available]
        if missing:
            raise ConfigError(f"--where {self.text!r} uses unknown column(s) {', '.join(missing)}; "
                              f"the scores have: {', '.join(available)}")

    def mask(self, table: pa.Table) -> np.ndarray:
        """True for the rows that pass (null counts as not passing)."""
        self.check_columns(table.column_names)
        try:
            values = _evaluate(table.select(self.columns), self.expression)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OverflowError) as e:
            raise ConfigError(f"--where {self.text!r} cannot be evaluated on these columns: {e}") from None
        if not pa.types.is_boolean(values.type):
            raise ConfigError(f"--where {self.text!r} gives {values.type} values, not true/false")
        return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)

    def _compile(self, node: ast.AST) -> pc.Expression:
        if isinstance(node, ast.BoolOp):
            parts = [self._compile(v) for v in node.values]
            out = parts[0]
            for p in parts[1:]:
                out = (out & p) if isinstance(node.op, ast.And) else (out | p)
            return out
        if isinstance(node, ast.UnaryOp):
            operand = self._compile(node.operand)
            if isinstance(node.op, ast.Not):
                return ~operand
            if isinstance(node.op, ast.USub):
                return pc.negate(operand)
        if isinstance(node, ast.Compare):
            out, left = None, self._compile(node.left)
            for k, (op, comp) in enumerate(zip(node.ops, node.comparators)):
                if isinstance(op, (ast.In, ast.NotIn)):
                    if k != len(node.ops) - 1:
                        raise ConfigError(f"--where {self.text!r}: 'in [...]' must end a comparison chain")
                    values = self._literal_list(comp)
                    term = left.isin(values)
                    term = ~term if isinstance(op, ast.NotIn) else term
                    right = None
                elif type(op) in _COMPARE:
                    right = self._compile(comp)
                    term = getattr(pc, _COMPARE[type(op)])(left, right)
                else:
                    raise self._unsupported(op)
                out = term if out is None else out & term
                left = right
            return out
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
            return getattr(pc, _ARITH[type(node.op)])(self._compile(node.left), self._compile(node.right))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS and \
                not node.keywords:
            fn, arity = _FUNCS[node.func.id]
            if len(node.args) != arity:
                raise ConfigError(f"--where {self.text!r}: {node.func.id}() takes {arity} argument(s)")
            return getattr(pc, fn)(*[self._compile(a) for a in node.args])
        if isinstance(node, ast.Name):
            if node.id not in self.columns:
                self.columns.append(node.id)
            return pc.field(node.id)
        if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, (bool, int, float, str))):
            return pc.scalar(node.value)
        raise self._unsupported(node)

    def _literal_list(self, node: ast.AST) -> list:
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)) and all(isinstance(e, ast.Constant) for e in node.elts):
            values = [e.value for e in node.elts]
            kinds = {str if isinstance(v, str) else bool if isinstance(v, bool) else float
                     for v in values if v is not None}
            if len(kinds) > 1 or not kinds <= {str, bool, float} or \
                    any(isinstance(v, (bytes, complex)) for v in values):
                raise ConfigError(f"--where {self.text!r}: the values of an 'in' list must be all strings, all "
                                  "numbers or all booleans")
            return values
        raise ConfigError(f"--where {self.text!r}: 'in' needs a literal list, e.g. lang in ['en', 'de']")

    def _unsupported(self, node: ast.AST) -> ConfigError:
        what = type(node).__name__
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", "?")
            what = f"function {name}() (allowed: {', '.join(_FUNCS)})"
        return ConfigError(f"--where {self.text!r}: {what} is not allowed; use columns, literals, comparisons, "
                           "and/or/not, in [...], arithmetic and is_null/abs/log")


def _evaluate(table: pa.Table, expression: pc.Expression) -> pa.Array:
    """Evaluate a compute expression as a projection (keeping nulls), one value per row."""
    import pyarrow.dataset as ds

    projected = ds.dataset(table).to_table(columns={"_": expression})
    return projected.column("_").combine_chunks()


def where_mask(table: pa.Table, expression: str | None) -> np.ndarray:
    """Rows of ``table`` that pass ``expression`` (all rows when it is None)."""
    if expression is None:
        return np.ones(table.num_rows, dtype=bool)
    return WhereExpression(expression).mask(table)
