"""Helpers shared by the test suite: real components, started on loopback, torn down after."""
