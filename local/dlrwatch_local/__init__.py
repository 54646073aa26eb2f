"""Running dlrwatch on one machine: provider stand-ins, simulators and the local stack."""
