"""Studies: configs, runners, reports."""
