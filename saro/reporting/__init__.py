"""Reporting: plots and tables from training logs and evaluation results."""
