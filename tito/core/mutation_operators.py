"""Mutation operators: plausible wrong versions of the code inside a module's solution blocks.

Each operator walks the AST of one implementation cell and proposes small edits to nodes that lie
wholly between `### BEGIN SOLUTION` and `### END SOLUTION` (the given code around them, such as
module 01's `@records` seam, is never mutated). An edit replaces one node's source text, so every
other byte of the cell (comments, layout) stays as written. A mutant that does not parse, or whose
AST equals the original's or an earlier mutant's, is dropped, so the set is small and deterministic.
"""

from __future__ import annotations

import ast
import copy
from dataclasses import dataclass
from typing import Callable, Iterator

from tito.core.source import without_magics
from tito.core.stubs import BEGIN, END


@dataclass(frozen=True)
class Mutant:
    number: int          # 1, 2, ... in cell, line, column, operator order: stable across runs
    operator: str
    cell: str            # grade_id of the implementation cell
    cell_index: int      # position of the cell in the notebook
    line: int            # line inside the cell (1-based)
    original: str        # the node's text before and after the edit (one line each, for reports)
    replacement: str
    source: str          # the whole mutated cell
    function: str        # the innermost def or class around the edit ("" at cell level)

    @property
    def id(self) -> str:
        return f"m{self.number:04d}"

    @property
    def description(self) -> str:
        return f"{self.operator}: {self.original} -> {self.replacement}"


@dataclass(frozen=True)
class Edit:
    node: ast.AST        # the node whose source text is replaced
    text: str            # the replacement text


# -- the operators ---------------------------------------------------------------------------------

ARITHMETIC = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
              ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult, ast.MatMult: ast.Mult}
COMPARISON = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
              ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
DTYPES = {"float32": "float64", "float64": "float32", "float16": "float32", "int64": "int32", "int32": "int64",
          "int8": "int16", "uint8": "int8", "int16": "int8"}
FUNCTIONS = {"min": "max", "max": "min", "minimum": "maximum", "maximum": "minimum", "amin": "amax", "amax": "amin",
             "sum": "mean", "mean": "sum", "any": "all", "all": "any", "prange": "range", "argmax": "argmin",
             "argmin": "argmax", "floor": "ceil", "ceil": "floor"}


def _wrap(node: ast.AST) -> str:
    """A node as source text that keeps its meaning wherever an expression may stand."""
    text = ast.unparse(node)
    return text if isinstance(node, (ast.Name, ast.Constant, ast.Attribute, ast.Call, ast.Subscript)) else f"({text})"


def _replaced(node: ast.AST, **changes) -> ast.AST:
    new = copy.copy(node)
    for key, value in changes.items():
        setattr(new, key, value)
    return new


def arithmetic(tree: ast.AST) -> Iterator[Edit]:
    """+ <-> -, * <-> /, // -> /, % -> //, ** -> *, @ -> * (also in augmented assignments)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and type(node.op) in ARITHMETIC:
            yield Edit(node, _wrap(_replaced(node, op=ARITHMETIC[type(node.op)]())))
        elif isinstance(node, ast.AugAssign) and type(node.op) in ARITHMETIC:
            yield Edit(node, ast.unparse(_replaced(node, op=ARITHMETIC[type(node.op)]())))


def comparison(tree: ast.AST) -> Iterator[Edit]:
    """< <-> <=, > <-> >=, == <-> !=, is <-> is not, in <-> not in (one comparator at a time)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for index, op in enumerate(node.ops):
                if type(op) in COMPARISON:
                    ops = list(node.ops)
                    ops[index] = COMPARISON[type(op)]()
                    yield Edit(node, _wrap(_replaced(node, ops=ops)))


def boolean(tree: ast.AST) -> Iterator[Edit]:
    """and <-> or; `not x` -> x; the test of an if / while / conditional expression negated."""
    for node in ast.walk(tree):
        if isinstance(node, ast.BoolOp):
            yield Edit(node, _wrap(_replaced(node, op=ast.Or() if isinstance(node.op, ast.And) else ast.And())))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield Edit(node, _wrap(node.operand))
        elif isinstance(node, (ast.If, ast.While, ast.IfExp)) and not isinstance(node.test, ast.UnaryOp):
            yield Edit(node.test, f"(not {_wrap(node.test)})")


def _number_variants(value) -> list:
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [1] if value == 0 else [0, 2] if value == 1 else [value + 1]
    if isinstance(value, float):
        return [1.0] if value == 0.0 else [0.0, 2.0] if value == 1.0 else [value * 2]
    return []


def constant(tree: ast.AST) -> Iterator[Edit]:
    """Numbers: 0 <-> 1, n -> n + 1 (floats: x -> 2x); True <-> False. Strings are messages: left alone."""
    negated = {id(n.operand) for n in ast.walk(tree) if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub)}
    for node in ast.walk(tree):
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant) \
                and isinstance(node.operand.value, (int, float)) and not isinstance(node.operand.value, bool):
            for variant in _number_variants(-node.operand.value):
                yield Edit(node, f"({variant!r})")
        elif isinstance(node, ast.Constant) and id(node) not in negated:
            for variant in _number_variants(node.value):
                yield Edit(node, f"({variant!r})" if not isinstance(variant, bool) else repr(variant))


def axis(tree: ast.AST) -> Iterator[Edit]:
    """axis=... changed (an int moves by one, anything else becomes None); keepdims flipped or dropped."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for keyword in node.keywords:
            if keyword.arg == "axis":
                value = keyword.value
                if isinstance(value, ast.Constant) and value.value is None:
                    yield Edit(value, "0")
                elif isinstance(value, ast.Constant) and isinstance(value.value, int):
                    yield Edit(value, repr(0 if value.value != 0 else 1))
                elif isinstance(value, ast.UnaryOp) and isinstance(value.operand, ast.Constant):
                    yield Edit(value, "0")
                else:
                    yield Edit(value, "None")
            elif keyword.arg == "keepdims":
                kept = [k for k in node.keywords if k is not keyword]
                yield Edit(node, ast.unparse(_replaced(node, keywords=kept)))


def statement(tree: ast.AST) -> Iterator[Edit]:
    """A statement dropped (it becomes `pass`); `return x` becomes `return None`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Return) and node.value is not None and not (
                isinstance(node.value, ast.Constant) and node.value.value is None):
            yield Edit(node, "return None")
        elif isinstance(node, (ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Raise, ast.If, ast.For,
                               ast.While, ast.With, ast.Assert, ast.Delete)):
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                continue   # a docstring or a bare string
            yield Edit(node, "pass")


def dtype(tree: ast.AST) -> Iterator[Edit]:
    """float32 <-> float64, int64 <-> int32 (and neighbours), as `np.float32` or as "float32"."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in DTYPES:
            yield Edit(node, ast.unparse(_replaced(node, attr=DTYPES[node.attr])))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in DTYPES:
            yield Edit(node, repr(DTYPES[node.value]))
        elif isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg == "dtype":
                    kept = [k for k in node.keywords if k is not keyword]
                    yield Edit(node, ast.unparse(_replaced(node, keywords=kept)))


def off_by_one(tree: ast.AST) -> Iterator[Edit]:
    """range(a, b) -> range(a + 1, b) / range(a, b - 1); slices x[lo:hi] -> x[lo + 1:hi] / x[lo:hi - 1]."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("range", "prange") \
                and node.args and not node.keywords:
            args = node.args
            stop = 0 if len(args) == 1 else 1
            yield Edit(args[stop], f"({ast.unparse(args[stop])} - 1)")
            if len(args) >= 2:
                yield Edit(args[0], f"({ast.unparse(args[0])} + 1)")
        elif isinstance(node, ast.Slice):
            if node.upper is not None:
                yield Edit(node.upper, f"({ast.unparse(node.upper)} - 1)")
            if node.lower is not None:
                yield Edit(node.lower, f"({ast.unparse(node.lower)} + 1)")


def function(tree: ast.AST) -> Iterator[Edit]:
    """A call of one function swapped for its twin: min <-> max, sum <-> mean, any <-> all, prange -> range."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in FUNCTIONS:
                yield Edit(func, FUNCTIONS[func.id])
            elif isinstance(func, ast.Attribute) and func.attr in FUNCTIONS:
                yield Edit(func, ast.unparse(_replaced(func, attr=FUNCTIONS[func.attr])))


OPERATORS: dict[str, Callable[[ast.AST], Iterator[Edit]]] = {
    "arithmetic": arithmetic, "comparison": comparison, "boolean": boolean, "constant": constant, "axis": axis,
    "statement": statement, "dtype": dtype, "off-by-one": off_by_one, "function": function,
}
# "parameter" works on function signatures, so it has its own generator below.
OPERATOR_NAMES = (*OPERATORS, "parameter")


# -- where edits may go ----------------------------------------------------------------------------

def solution_lines(code: str) -> set[int]:
    """1-based line numbers strictly between BEGIN SOLUTION and END SOLUTION markers."""
    inside, lines = False, set()
    for number, line in enumerate(code.splitlines(), 1):
        if BEGIN in line:
            inside = True
        elif END in line:
            inside = False
        elif inside:
            lines.add(number)
    return lines


def _within(node: ast.AST, allowed: set[int]) -> bool:
    start, end = getattr(node, "lineno", None), getattr(node, "end_lineno", None)
    return start is not None and all(n in allowed for n in range(start, end + 1))


def _offsets(code: str) -> list[int]:
    """Character offset of the start of each line (index 0 is line 1)."""
    offsets, total = [], 0
    for line in code.splitlines(keepends=True):
        offsets.append(total)
        total += len(line.encode("utf-8"))
    return offsets


def _splice(code: str, node: ast.AST, text: str) -> str:
    """code with node's source segment replaced by text (ast offsets count UTF-8 bytes)."""
    raw = code.encode("utf-8")
    starts = _offsets(code)
    begin = starts[node.lineno - 1] + node.col_offset
    end = starts[node.end_lineno - 1] + node.end_col_offset
    return (raw[:begin] + text.encode("utf-8") + raw[end:]).decode("utf-8")


def _enclosing(tree: ast.AST) -> dict[int, str]:
    """id(node) -> the qualified name of the innermost def or class holding it."""
    names: dict[int, str] = {}

    def visit(node: ast.AST, scope: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = scope
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                inner = f"{scope}.{child.name}" if scope else child.name
            names[id(child)] = inner
            visit(child, inner)

    visit(tree, "")
    return names


def _parameter_edits(code: str, tree: ast.AST, allowed: set[int]) -> Iterator[tuple[ast.AST, str, str]]:
    """A parameter with a default ignored: every use of it inside the solution reads the default instead.

    Yields (anchor node, description of the edit, the mutated cell)."""
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        args = node.args
        positional = args.posonlyargs + args.args
        defaults = dict(zip([a.arg for a in positional[len(positional) - len(args.defaults):]], args.defaults))
        defaults.update({a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None})
        for name, default in defaults.items():
            uses = [n for n in ast.walk(node) if isinstance(n, ast.Name) and n.id == name
                    and isinstance(n.ctx, ast.Load) and _within(n, allowed)]
            if not uses:
                continue
            mutated = code
            for use in sorted(uses, key=lambda n: (n.lineno, n.col_offset), reverse=True):
                mutated = _splice(mutated, use, f"({ast.unparse(default)})")
            yield uses[0], f"{name} ignored (always {ast.unparse(default)})", mutated


def _one_line(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def cell_mutants(code: str, cell: str, cell_index: int, operators: tuple[str, ...] = OPERATOR_NAMES
                 ) -> list[tuple[str, int, str, str, str, str]]:
    """(operator, line, original, replacement, mutated cell, enclosing function) for one cell's solution blocks."""
    allowed = solution_lines(code)
    if not allowed:
        return []
    plain = without_magics(code)
    try:
        tree = ast.parse(plain)
    except SyntaxError:
        return []
    scopes = _enclosing(tree)
    found = []
    for name in operators:
        if name == "parameter":
            for anchor, what, mutated in _parameter_edits(plain, tree, allowed):
                found.append((name, anchor.lineno, anchor.col_offset, what.split(" ignored")[0], what, mutated,
                              scopes.get(id(anchor), "")))
            continue
        for edit in OPERATORS[name](tree):
            if not _within(edit.node, allowed):
                continue
            original = ast.get_source_segment(plain, edit.node) or ast.unparse(edit.node)
            found.append((name, edit.node.lineno, edit.node.col_offset, _one_line(original), _one_line(edit.text),
                          _splice(plain, edit.node, edit.text), scopes.get(id(edit.node), "")))
    found.sort(key=lambda f: (f[1], f[2], OPERATOR_NAMES.index(f[0]), f[4]))
    return [(op, line, original, replacement, mutated, scope)
            for op, line, _col, original, replacement, mutated, scope in found]


def normalised(code: str) -> str | None:
    """The AST dump of code (comments and layout gone), or None when it does not parse."""
    try:
        return ast.dump(ast.parse(code))
    except SyntaxError:
        return None


def generate_mutants(cells: list[tuple[int, str, str]], operators: tuple[str, ...] = OPERATOR_NAMES) -> list[Mutant]:
    """Every distinct, parseable mutant of the given (cell index, grade_id, source) implementation cells."""
    unknown = sorted(set(operators) - set(OPERATOR_NAMES))
    if unknown:
        raise ValueError(f"unknown mutation operator(s) {', '.join(unknown)}; known: {', '.join(OPERATOR_NAMES)}")
    mutants: list[Mutant] = []
    for cell_index, grade_id, code in cells:
        seen = {normalised(without_magics(code))}
        for op, line, original, replacement, mutated, scope in cell_mutants(code, grade_id, cell_index, operators):
            key = normalised(mutated)
            if key is None or key in seen:
                continue            # does not compile, or behaves like the original / an earlier mutant
            seen.add(key)
            mutants.append(Mutant(len(mutants) + 1, op, grade_id, cell_index, line, original, replacement,
                                  _restore_magics(code, mutated), scope))
    return mutants


def _restore_magics(original: str, mutated: str) -> str:
    """Magic lines were blanked for parsing; put them back (edits never touch them)."""
    before, after = original.splitlines(), mutated.splitlines()
    if len(before) != len(after):
        return mutated
    return "\n".join(o if o.lstrip().startswith(("%", "!")) else m for o, m in zip(before, after)) + \
        ("\n" if mutated.endswith("\n") else "")
