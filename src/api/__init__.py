"""HTTP entry point: FastAPI routers, request/response models and error mapping. Thin:
parse, call a command or a query, shape the answer."""
