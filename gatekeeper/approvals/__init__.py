"""The approval queue: escalated calls wait for human operators, and nothing is lost."""
