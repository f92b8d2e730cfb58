"""`tito test` applies cell_timeout (settings.ini [grading], module.yaml `grading:` on top) and
names the cell and the line that ran out of time; `[grading]` survives rich's markup."""

from __future__ import annotations

import toy
from tito_support import edit, run_tito

ENDLESS = "while True:  # spins forever\n        pass"


def _spin(ws) -> int:
    """Make double() loop forever; returns the source line of the loop's body."""
    edit(ws / toy.ALPHA_SRC, toy.ALPHA_SOLUTION_DOUBLE, ENDLESS)
    lines = (ws / toy.ALPHA_SRC).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if "spins forever" in line)


def test_an_endless_loop_stops_at_the_cell_limit_and_is_named(exported_ws):
    edit(exported_ws / "settings.ini", "cell_timeout = 120", "cell_timeout = 3")
    loop_line = _spin(exported_ws)
    # Without the limit this would run until submission_timeout (600 s) and the call below would
    # time out; with it the run ends after 3 s.
    result = run_tito(exported_ws, "test", "01_alpha", timeout=240)
    assert result.returncode == 1, str(result)
    text = " ".join(result.stdout.split())     # rich wraps the table cell
    assert "cell 6 (test-double) of alpha_dev.py reached the cell time limit (3 s, settings.ini [grading] cell_timeout" in text, text
    assert f"alpha_dev.py:{loop_line}" in text or f"alpha_dev.py:{loop_line + 1}" in text, text
    assert "in double" in text


def test_module_yaml_overrides_the_cell_limit(exported_ws):
    with (exported_ws / "modules/01_alpha/module.yaml").open("a") as handle:
        handle.write("grading:\n  cell_timeout: 2\n")
    _spin(exported_ws)
    result = run_tito(exported_ws, "test", "01_alpha", timeout=240)
    assert result.returncode == 1, str(result)
    assert "reached the cell time limit (2 s" in " ".join(result.stdout.split()), str(result)


def test_a_paired_notebook_names_the_line_inside_the_cell(exported_ws):
    import jupytext

    _spin(exported_ws)
    edit(exported_ws / "settings.ini", "cell_timeout = 120", "cell_timeout = 3")
    source = exported_ws / toy.ALPHA_SRC
    jupytext.write(jupytext.read(source), source.with_suffix(".ipynb"), fmt="ipynb")
    result = run_tito(exported_ws, "test", "01_alpha", timeout=240)
    text = " ".join(result.stdout.split())
    assert "cell 6 (test-double) of alpha_dev.ipynb reached the cell time limit" in text, text
    cells = jupytext.read(source).cells
    index = next(i for i, c in enumerate(cells) if "spins forever" in c.source)
    line = next(n for n, text in enumerate(cells[index].source.splitlines(), 1) if "spins forever" in text)
    assert f"it was running cell {index + 1}, line {line} in double" in text or \
        f"it was running cell {index + 1}, line {line + 1} in double" in text, text
