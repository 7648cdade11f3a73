"""``mailsync report``: the capacity report and its sections.

``plan_b`` (the Plan B report, or a report on given scenarios), ``fast`` (``--fast``: the fast
path only), ``summary`` (the first screen), ``sections``, ``plan_sections`` and
``pool_sections`` (the page's parts), ``claims`` and ``plan_claims`` (the plan's figures
checked under both assumptions).
"""

from simulator.report.claims import Check
from simulator.report.fast import fast_report
from simulator.report.plan_b import Options, open_in_browser, plan_b_report, scenario_report, write_csv
from simulator.report.plan_sections import agreement_html
from simulator.report.sections import detail_keys, summary_section
from simulator.report.summary import SUMMARY_TABLE_ID, capacity_rows, claims_sentences, provenance_html, summary_html

__all__ = ["Check", "Options", "SUMMARY_TABLE_ID", "agreement_html", "capacity_rows", "claims_sentences", "detail_keys", "fast_report", "open_in_browser", "plan_b_report", "provenance_html", "scenario_report", "summary_html", "summary_section", "write_csv"]
