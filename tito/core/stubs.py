"""Solutions out: nbgrader's own ClearSolutions / ClearHiddenTests preprocessors, and the leak check.

The stub is nbgrader's: `# YOUR CODE HERE` / `raise NotImplementedError()`, so the student edition
and the nbgrader release read the same.
"""

from __future__ import annotations

import copy
from pathlib import Path

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
MIN_SECRET_LENGTH = 16   # shorter lines (`return out`, `pass`) are too generic to count as a leak


def strip_solutions(notebook):
    """A copy of the notebook with solution regions stubbed and hidden tests removed."""
    from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions   # seconds to import: only when used

    stripped = copy.deepcopy(notebook)
    stripped, _ = ClearSolutions().preprocess(stripped, {})
    stripped, _ = ClearHiddenTests().preprocess(stripped, {})
    return stripped


def split_regions(notebook, begin: str, end: str) -> tuple[set[str], set[str]]:
    """(stripped lines inside begin/end regions, stripped lines outside them), over all cells."""
    inside, outside = set(), set()
    for cell in notebook.cells:
        within = False
        for line in cell.source.splitlines():
            if begin in line:
                within = True
            elif end in line:
                within = False
            else:
                (inside if within else outside).add(line.strip())
    return inside, outside


def solution_lines(notebooks) -> set[str]:
    """Solution lines distinctive enough to identify a solution: long, not comments, and not also
    written in the open part of any module (an idiom every chapter shows is no secret)."""
    secret, public = set(), set()
    for notebook in notebooks:
        s, p = split_regions(notebook, BEGIN, END)
        secret |= s
        public |= p
    return {l for l in secret - public if len(l) >= MIN_SECRET_LENGTH and not l.startswith("#")}


def find_leaks(folder: Path, secrets: set[str]) -> list[str]:
    """'path:line: text' for every line under folder that is, once stripped, a secret line (grep -Fx)."""
    if not secrets:
        return []
    leaks = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip() in secrets:
                leaks.append(f"{path.relative_to(folder)}:{number}: {line.strip()}")
    return leaks


def hidden_test_lines(notebook) -> set[str]:
    """Distinctive stripped lines of hidden-test regions whose text appears nowhere else in the
    module, not even inside a longer line or a markdown table (what feedback must never show)."""
    hidden, shown = split_regions(notebook, "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
    public_text = "\n".join(shown)
    return {l for l in hidden - shown if len(l) >= MIN_SECRET_LENGTH and l not in public_text}
