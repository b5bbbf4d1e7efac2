from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("nas-service")
except PackageNotFoundError:  # running from a source tree that was not installed
    VERSION = "0+unknown"
