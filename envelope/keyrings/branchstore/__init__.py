"""Branch key stores for the hierarchical keyring: embedded (SQLite) and DynamoDB, the ESDK's item schema."""
