"""Grading untrusted submissions: student code runs in a limited process, tests run in a trusted one.

    trusted (tests, oracles, scoring)  <── framed JSON over two pipes ──>  limited (student code)

Values cross the boundary as data (numbers, strings, NumPy arrays via .npy without pickle);
everything else crosses as a reference, seen on the other side through a proxy. So the tests,
their assertions and NumPy itself live in a process the student's code cannot touch: patching
`numpy.allclose`, `builtins`, or the test helpers inside the submission changes nothing.
"""
