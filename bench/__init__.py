"""Speed goals, measured: ``make bench`` prints a table and writes ``bench/results.json``."""
