"""The load generator: Locust, used as a library, one user per tenant.

Run only as ``python -m loadtest.run.loadgen {local|master|worker} CONFIG`` in a process of
its own: importing Locust patches the standard library with gevent, which the rest of the
project (asyncio, multiprocessing) must not see. ``config`` is the JSON the orchestrator
writes (``LoadgenConfig``); ``timeline`` maps instants to level names; ``lag`` follows
delivered messages into PostgreSQL; ``users`` is the tenant; ``shape`` the level steps.
"""
