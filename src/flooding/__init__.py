"""Flooding benchmark."""
