"""The run report (self-contained HTML) and the progress display with its end-of-run summary."""
