"""Video in and out with PyAV: probe, the one reader, the writer, packet passthrough, joining
segments, and output files that are complete or absent."""
