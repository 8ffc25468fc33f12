"""Device-side package: runs on the board as well as on the host.

Rules for everything under `edgepipe/runtime/`: Python 3.7 syntax and standard library (Mendel Linux
on the Coral Dev Board), numpy and one TFLite runtime only, no host-only imports (typer, rich,
TensorFlow). A deploy bundle ships this folder as it is; `python -m edgepipe.runtime` is its CLI.

"Runtime" names three things here, so identifiers say which: this package (the device side); a *TFLite
runtime*, the Python package that provides the interpreter (`interpreters.py`, `tflite_runtime` fields,
`--runtime`); and libedgetpu's *runtime version* (Coral's own term, e.g. 14: `edgetpu.runtime_version`).

Where things are: `options.py` how to run a model (RunOptions and its choices); `session.py` opening a
model on the Edge TPU or the CPU; `interpreters.py` which TFLite runtime; `runner.py` latency and what
every result says; `accuracy.py` top-1/top-5; `edgetpu.py` finding a usable Edge TPU (`probe.py` is its
child process, `libedgetpu.py` finds the library and is what the child asks it); `os_devices.py` what
the OS sees; `doctor.py` checks with fixes; `errors.py` typed errors and error -> exit code; `report.py`
result header, JSON error envelope, atomic writes.
"""
