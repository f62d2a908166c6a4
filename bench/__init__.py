"""Berth's benchmarks. Each prints one JSON record and measures its peer in the same run."""
