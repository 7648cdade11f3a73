"""``python -m mailsync``: the same command as the ``mailsync`` console script."""

from mailsync.cli import main

if __name__ == "__main__":
    main()
