"""renkei's benchmarks (DESIGN §9): each one runs renkei and a reference doing the same work
in one process tree, and reports the ratio, so machine noise cancels. See bench/README.md."""
