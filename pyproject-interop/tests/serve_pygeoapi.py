"""pygeoapi's Flask app on werkzeug's threaded development server, bound to 127.0.0.1.

Run by the pygeoapi venv's Python (not imported by the tests), as
`python serve_pygeoapi.py CONFIG.yml OPENAPI.yml PORT`: writes the OpenAPI document pygeoapi
needs from the config first, then serves."""

import os
import sys


def main() -> None:
    config, openapi, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    os.environ["PYGEOAPI_CONFIG"] = config
    os.environ["PYGEOAPI_OPENAPI"] = openapi
    from pygeoapi.openapi import generate_openapi_document

    with open(config, encoding="utf-8") as fh:
        document = generate_openapi_document(fh, "yaml")  # as its CLI calls it
    with open(openapi, "w", encoding="utf-8") as fh:
        fh.write(document)

    from pygeoapi.flask_app import APP
    from werkzeug.serving import run_simple

    run_simple("127.0.0.1", port, APP, threaded=True)


if __name__ == "__main__":
    main()
