"""The service layer: what an agent calls for one message. No Faust here, so the
same code runs in a worker, a CLI replay, or a test."""
