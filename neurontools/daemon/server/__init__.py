"""neurond's process: the gRPC server, its servicers, the command line and the
embedded daemon the tools start when no address is given."""
