"""The audit report (HTML/PDF): SLA compliance, heatmaps, routing, incidents, methodology."""
