"""tito: the TinyTorch course command line (export, test, progress, student edition, grading)."""

import sys

# nbformat validates notebooks with jsonschema, which imports rfc3987_syntax (an optional extra,
# pulled in by JupyterLab's dependencies) and compiles its grammar: about 1 s on every tito call,
# only to check "iri" strings, a format notebook schemas never use. jsonschema skips the check when
# the import fails, so tito opts out of it.
sys.modules.setdefault("rfc3987_syntax", None)
