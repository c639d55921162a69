"""Scans in, prepared slice pairs out: load, check, register, pair (the only writer of prepared/)."""
