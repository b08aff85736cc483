"""MapProxy's WSGI app on werkzeug's threaded development server, bound to 127.0.0.1.

Run by the mapproxy venv's Python (not imported by the tests), as
`python serve_mapproxy.py CONFIG.yaml PORT`. Unlike `mapproxy-util serve-develop` it starts no
reloader process that polls the configuration files."""

import sys

from mapproxy.wsgiapp import make_wsgi_app
from werkzeug.serving import run_simple


def main() -> None:
    config, port = sys.argv[1], int(sys.argv[2])
    run_simple("127.0.0.1", port, make_wsgi_app(config), threaded=True)


if __name__ == "__main__":
    main()
