"""The domain library: vault, tasks, audit, resilience, config. Depends on nothing else here."""
