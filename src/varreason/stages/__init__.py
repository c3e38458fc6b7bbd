"""One function per pipeline stage; the CLI and the Snakemake rules are thin wrappers around these."""
