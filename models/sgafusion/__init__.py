"""SGAFusion networks: the release variant (release names) and the working variant (reserved)."""
