"""What code written into the workspace would do, recorded per principal (``records``)."""
