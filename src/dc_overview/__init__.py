"""dc-overview: see and run a fleet of GPU servers."""
