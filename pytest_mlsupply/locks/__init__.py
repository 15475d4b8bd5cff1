"""Lockfile formats: each module reads (and, for our own format, writes) one of them."""
