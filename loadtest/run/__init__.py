"""A load test of the real daemon against the simulator's prediction of the same scenario.

``mailsync loadtest run SCENARIO`` reads the scenario file ``mailsync simulate`` reads,
turns it into the scenario as run (``prepare``) and a concrete plan (``plan``: tenants,
mailboxes, three load levels sized from the model's predicted capacity), starts the services
(``stack``), drives the daemon with Locust (``loadgen``, one Locust user per tenant, run in
a process of its own because Locust patches the standard library with gevent), samples every
process (``sampler``), turns what it saw into figures per level (``measure``), predicts the
same levels (``predict``), derives a calibration file from the measurement (``calibrate``),
compares (``compare``) and writes ``reports/<name>/`` (``report``, with the plots of
``plots``). ``orchestrate`` runs the whole sequence, ``drive`` the levels under Locust and
``analysis`` everything after the run; ``cli`` is the command line.
"""
