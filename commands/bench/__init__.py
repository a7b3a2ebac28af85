"""Benchmarks behind `lora-router bench …`. They print a table and write JSON; they are never timed tests."""
