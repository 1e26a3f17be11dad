"""Processes of the embedded mode must not outlive the process that started them."""

from __future__ import annotations

import contextlib
import os
import signal

PR_SET_PDEATHSIG = 1


def exit_with_parent_if_asked() -> None:
    """With DSPEX_EXIT_WITH_PARENT=1, asks Linux to SIGTERM this process when its parent dies, so embedded
    workers and the local LM server they host never outlive the CLI (even after its `kill -9`)."""
    if os.environ.get("DSPEX_EXIT_WITH_PARENT") != "1":
        return
    with contextlib.suppress(Exception):  # not Linux: nothing to ask for
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
