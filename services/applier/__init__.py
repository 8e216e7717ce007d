"""The applier: enacts decisions (memory pools, resource limits) and exports metrics."""
