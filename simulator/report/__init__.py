"""``mailsync report``: the capacity report and its sections.

``plan_b`` (the Plan B report, or a report on given scenarios) and ``plan_runs`` (what it
simulates), ``fast`` (``--fast``: the fast path only), ``summary`` (the first screen),
``sections``, ``plan_sections`` and ``pool_sections`` (the page's parts), ``claims`` and
``plan_claims`` (the plan's figures checked under both assumptions).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulator.exports import lazy

if TYPE_CHECKING:
    from simulator.report.claims import Check
    from simulator.report.fast import fast_report
    from simulator.report.plan_b import (
        Options,
        open_in_browser,
        plan_b_report,
        scenario_report,
        write_csv,
    )
    from simulator.report.plan_sections import agreement_html
    from simulator.report.sections import detail_keys, summary_section
    from simulator.report.summary import (
        SUMMARY_TABLE_ID,
        capacity_rows,
        claims_sentences,
        provenance_html,
        summary_html,
    )

# Where each public name lives; imported on first use (``simulator.exports``).
_WHERE = {
    "Check": "claims",
    "Options": "plan_b",
    "SUMMARY_TABLE_ID": "summary",
    "agreement_html": "plan_sections",
    "capacity_rows": "summary",
    "claims_sentences": "summary",
    "detail_keys": "sections",
    "fast_report": "fast",
    "open_in_browser": "plan_b",
    "plan_b_report": "plan_b",
    "provenance_html": "summary",
    "scenario_report": "plan_b",
    "summary_html": "summary",
    "summary_section": "sections",
    "write_csv": "plan_b",
}

__all__ = [
    "SUMMARY_TABLE_ID",
    "Check",
    "Options",
    "agreement_html",
    "capacity_rows",
    "claims_sentences",
    "detail_keys",
    "fast_report",
    "open_in_browser",
    "plan_b_report",
    "provenance_html",
    "scenario_report",
    "summary_html",
    "summary_section",
    "write_csv",
]

__getattr__ = lazy(__name__, _WHERE)
