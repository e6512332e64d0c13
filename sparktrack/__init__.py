"""sparktrack."""
