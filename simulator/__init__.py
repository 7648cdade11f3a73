"""Capacity simulator of the mailsync daemon.

Event simulation (``engine``), analytic fast path (``analytic``), scenarios (``scenario``,
``loader``), sweeps (``sweep``) and the capacity report (``report``, ``cli``). Every policy
decision and value comes from ``daemon.policy``.
"""
