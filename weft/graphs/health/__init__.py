"""Health consultation: red-flag triage first, then specialist analyses, in a saga."""
