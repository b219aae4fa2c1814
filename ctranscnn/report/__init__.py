"""Report writers: tables (CSV/Markdown/LaTeX with provenance), figures (PNG/PDF), the paper's numbers."""
from ctranscnn.report.provenance import Provenance, git_commit
from ctranscnn.report.tables import fmt_ci, fmt_mean_sd, read_table, summarise_seeds, write_table

__all__ = ["Provenance", "fmt_ci", "fmt_mean_sd", "git_commit", "read_table", "summarise_seeds", "write_table"]
