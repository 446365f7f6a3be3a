"""The OCF resource agent: Pacemaker's environment in, OCF exit codes out."""
