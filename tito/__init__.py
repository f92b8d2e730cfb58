"""tito: the TinyTorch course command line (export, test, progress, student edition, grading)."""
