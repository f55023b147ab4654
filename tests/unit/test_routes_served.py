"""The security matrix (tests/integration/test_security.py) walks /openapi.json; this
checks that /openapi.json names every route the web server answers, so the matrix
sees them all (Faust's own pages included: none may be served)."""
import json
import subprocess
import sys

SERVED = """
import json
from spice.app import app
from spice.web.routes import openapi
app.web.init_server()
served = sorted({(r.method.lower(), r.resource.canonical) for r in app.web.web_app.router.routes()
                 if r.method not in ("HEAD", "OPTIONS", "*")})
print(json.dumps({"served": served, "documented": sorted(
    [method, path] for path, item in openapi()["paths"].items() for method in item)}))
"""


def test_every_served_route_is_in_the_openapi_document():
    done = subprocess.run([sys.executable, "-c", SERVED], capture_output=True, text=True,
                          timeout=120, check=True)
    routes = json.loads(done.stdout.strip().splitlines()[-1])
    # Faust binds every method of a view; those a view does not have answer 405 in
    # ApiView.dispatch, before authentication: the paths are what must all be known.
    served = {path for _, path in routes["served"]}
    documented = {path for _, path in routes["documented"]}
    assert served - documented == set()
    assert documented - served == set()  # and nothing documented that is not served
    assert not any(path == "/" or path.startswith(("/router", "/table", "/stats", "/graph"))
                   for path in served)
