"""The entry point of ``interlink`` and ``python -m interlink``.

gevent must patch the standard library before anything imports ``socket``, ``ssl``, ``threading``,
``requests`` or ``redis``: these lines come first, on purpose.
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    from interlink.cli import run

    return run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
