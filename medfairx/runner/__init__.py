"""Plan, execute and store benchmark runs."""
