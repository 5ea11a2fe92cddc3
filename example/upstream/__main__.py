"""``python -m upstream``: serve the stand-in shipping provider with uvicorn."""

import argparse

import uvicorn

from upstream import create_app

parser = argparse.ArgumentParser(prog="python -m upstream", description=__doc__)
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=8001)
parser.add_argument("--latency", type=float, default=0.0, help="seconds before each quote")
parser.add_argument("--status", type=int, default=200, help="answer every quote with it")
args = parser.parse_args()
uvicorn.run(
    create_app(args.latency, args.status),
    host=args.host,
    port=args.port,
    lifespan="off",
    timeout_graceful_shutdown=1,  # do not wait out a --latency on the way down
    log_level="warning",
    access_log=False,
)
