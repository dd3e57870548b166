"""Helpers for the exchange-format tests: test clips and scripts run inside real readers."""
