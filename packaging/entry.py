"""Entry point of the frozen app (``tsx-medtrans`` in the bundle).

``--version`` is answered here; everything else goes to the app's own command line (``desktop.cli``:
the window, ``translate``, ``attention``, and ``--self-test``, whose one entry point it is).
"""

import sys


def main() -> int:
    argv = sys.argv[1:]
    if argv[:1] == ["--version"]:
        from desktop import __version__

        print(f"tsx-medtrans {__version__}")
        return 0
    from desktop.cli import main as cli

    return cli(argv)


if __name__ == "__main__":
    sys.exit(main())
