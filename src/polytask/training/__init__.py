"""Trainer, task schedules and checkpoints."""
