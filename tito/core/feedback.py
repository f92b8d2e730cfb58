"""Feedback without hidden tests: an nbgrader preprocessor used by grading/nbgrader_config.py."""

from __future__ import annotations

from nbgrader.preprocessors import ClearHiddenTests, NbGraderPreprocessor

HIDDEN_MARK = "BEGIN HIDDEN TESTS"
NOTE = "# (hidden tests ran here; their source is not shown)"


class HideHiddenTests(NbGraderPreprocessor):
    """Remove hidden-test regions from graded cells, and their tracebacks (which quote the source)."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code" or HIDDEN_MARK not in cell.source:
            return cell, resources
        clearer = ClearHiddenTests(enforce_metadata=False)
        clearer._remove_hidden_test_region(cell)
        cell.source = cell.source.rstrip() + "\n" + NOTE
        outputs = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                # The traceback would quote hidden lines; keep only the kind of failure.
                output["traceback"] = [f"{output.get('ename', 'Error')}: a test in this cell failed "
                                       "(hidden tests do not show their details)"]
                output["evalue"] = ""
            outputs.append(output)
        cell["outputs"] = outputs
        return cell, resources
