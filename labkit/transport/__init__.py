"""How requests and messages move: in-process by default, real sockets when asked."""
