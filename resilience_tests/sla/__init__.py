"""SLA checks over load samples, the timeline and cluster snapshots."""
