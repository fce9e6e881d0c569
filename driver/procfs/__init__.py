"""A container-true /proc: the FUSE server of a root and what supervisors do with it."""
