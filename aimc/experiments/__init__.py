"""Experiment plumbing: results files, runners and paper reproductions."""

from .results import machine_description, now_utc, write_results

__all__ = ["machine_description", "now_utc", "write_results"]
