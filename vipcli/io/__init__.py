"""Importers and exporters (CSV, XLSX, JSON). openpyxl is imported only inside the functions that use it."""
