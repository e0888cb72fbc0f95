"""Entry point of the frozen app (``tsx-medtrans`` in the bundle).

``--self-test`` runs :mod:`desktop.selftest` (exit status = its verdict); everything else goes to
the app's own command line (``desktop.cli``: the window, ``translate``, ``attention``). The
self-test is dispatched here as well as in ``desktop.cli`` so that a bundle can always test
itself, even if the command-line module changes.
"""

import sys


def main() -> int:
    argv = sys.argv[1:]
    if argv[:1] == ["--self-test"]:
        from desktop.selftest import main as selftest

        return selftest(argv[1:])
    if argv[:1] == ["--version"]:
        from desktop import __version__

        print(f"tsx-medtrans {__version__}")
        return 0
    from desktop.cli import main as cli

    return cli(argv)


if __name__ == "__main__":
    sys.exit(main())
