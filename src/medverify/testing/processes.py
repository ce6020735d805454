"""Starting a CLI under test as a user's terminal would."""

from __future__ import annotations

import signal


def sigint_as_in_a_terminal() -> None:
    """``preexec_fn`` for a child that a test will Ctrl-C: SIGINT back to its default.

    A job started in the background by a non-interactive shell (``cmd &``: a CI step, nohup)
    has SIGINT ignored, children inherit that, and Python then installs no KeyboardInterrupt
    handler: the test's SIGINT was ignored and the run finished with exit 0. A terminal's
    Ctrl-C reaches a process whose SIGINT is the default, which is what the tests mean.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
