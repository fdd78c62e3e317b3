"""Genotype JSON files shipped with nasseg: each file stem is a registered model name."""
