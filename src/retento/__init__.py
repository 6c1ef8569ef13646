"""Retento: an open-source CRM-marketing engine for online retailers."""

__version__ = "0.1.0"
