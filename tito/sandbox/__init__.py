"""Grading untrusted submissions: student code runs in a limited process, tests run in a trusted one.

    trusted (tests, oracles, scoring)  <── framed JSON over two pipes ──>  limited (student code)

Values cross the boundary as data (numbers, strings, NumPy arrays of plain dtypes as raw bytes,
never pickle); everything else crosses as a reference, seen on the other side through a proxy. So
the tests, their assertions and NumPy itself live in a process the student's code cannot touch:
patching `numpy.allclose`, `builtins`, or the test helpers inside the submission changes nothing.
The other way round is a capability boundary (endpoint.py): the trusted side serves only what a
test handed over, and each submission's tests run in a trusted process of their own, with limits
(grader.py).
"""
