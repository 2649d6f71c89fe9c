"""Auditor evidence: the export files, writing them from the store, and verifying them alone."""
