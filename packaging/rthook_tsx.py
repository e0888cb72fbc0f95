"""PyInstaller runtime hook: runs in the frozen app before its entry point.

* First start for this user: the system-wide model is hash-checked and linked into the user's
  models folder (see ``tsx_firstrun``). ``TSX_SKIP_FIRSTRUN=1`` turns this off.

Nothing here may stop the app: any error is printed and the app starts anyway.
"""

import os
import sys


def _run() -> None:
    try:
        import tsx_firstrun

        if os.environ.get("TSX_SKIP_FIRSTRUN") != "1":
            tsx_firstrun.ensure_system_models()
    except Exception as exc:  # noqa: BLE001 - see the docstring
        print(f"tsx-medtrans: first-start step failed: {type(exc).__name__}: {exc}", file=sys.stderr)


_run()
