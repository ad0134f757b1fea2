"""`python -m reel_engine` prints the engine and protocol versions; the worker is `python -m reel_engine.worker`."""

from . import PROTOCOL_VERSION, __version__

if __name__ == "__main__":
    print(f"reel-engine {__version__} (worker protocol {PROTOCOL_VERSION})")
