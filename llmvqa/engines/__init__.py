"""Engines that run llmvqa work beyond one process (Ray)."""
