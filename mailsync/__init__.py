"""The ``mailsync`` command, composed from the Typer apps of the daemon, the simulator and the
load test (``mailsync.cli``). It sits above all three; none of them imports it."""
