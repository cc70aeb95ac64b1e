"""``python -m lowbit`` (and ``torchrun -m lowbit``): the ``lowbit`` command."""

import os
import sys

from .cli import main

rc = main()
dist = sys.modules.get("torch.distributed")  # only a command that trained has imported it
if dist is not None and dist.is_available() and dist.is_initialized():
    # A rank of a distributed run leaves without tearing objects down: a DDP reducer's destructor can deadlock
    # against gloo's worker thread at interpreter exit (tests/nn/test_nn_ddp.py saw it once).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)
sys.exit(rc)
