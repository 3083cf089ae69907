"""Jobs: the end-to-end stages behind each CLI verb."""
