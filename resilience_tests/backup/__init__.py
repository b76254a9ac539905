"""Backup and restore of a namespace: its objects in one checked archive, restored in dependency order."""
