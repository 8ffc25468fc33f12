"""`python -m edgepipe.convert ...` is the converter's child process (see `worker`), started by
`edgepipe convert`; not a command for people. A module of its own, so that `worker` and
`onnx_worker` are imported under their package names and share one `WorkerError`."""

import sys

from .worker import main

sys.exit(main())
