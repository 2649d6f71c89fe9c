"""The store: the system of record the runner reads and writes (schema, migrations, queries),
with the tamper-evidence chain sealed inside its transactions and retention."""
