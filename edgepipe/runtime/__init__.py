"""Device-side package: runs on the board as well as on the host.

Rules for everything under `edgepipe/runtime/`: Python 3.7 syntax and standard library (Mendel Linux
on the Coral Dev Board), numpy and one TFLite runtime only, no host-only imports (typer, rich,
TensorFlow). A deploy bundle ships this folder as it is; `python -m edgepipe.runtime` is its CLI.
"""
