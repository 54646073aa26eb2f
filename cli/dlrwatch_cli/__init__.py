"""dlrwatch's operator command line (``dlrwatch``): a client of the IAM-signed HTTP API and of the status bus,
depending on botocore alone."""
