"""The patterns of the course, one module per section, written against small ports."""
