"""A real WMS behind the proxy: MapProxy 7.0.0 (its `debug` source, no network) registered as a
`wms` service over XML-RPC, used with OWSLib's WebMapService (1.1.1 and 1.3.0) and requests.

GetCapabilities is public and every URL in it (service OnlineResource, the DCPType URLs of
GetCapabilities, GetMap, GetFeatureInfo and GetLegendGraphic, the LegendURL) names the proxy,
not MapProxy; GetMap and GetLegendGraphic need a token. With
`twitcher.ows_proxy_rewrite_wms = false` the capabilities pass through unchanged, as the
original passed them."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from owslib.util import ServiceException
from owslib.wms import WebMapService

from interop import XLINK_HREF, NS, c14n, ows_exception_report, parse_xml, png_size

NAME = "mapproxy"
VERSIONS = ["1.1.1", "1.3.0"]
CAPS_MEDIA_TYPE = {"1.1.1": "application/vnd.ogc.wms_xml", "1.3.0": "text/xml"}
# The whole Web Mercator square, drawn 300 × 200 (MapProxy stretches it; the size proves the
# image is the one asked for).
MERCATOR = 20037508.342789244
GETMAP = {"layers": ["debug"], "styles": [""], "srs": "EPSG:3857",
          "bbox": (-MERCATOR, -MERCATOR, MERCATOR, MERCATOR), "size": (300, 200),
          "format": "image/png"}
TOKEN_REQUIRED = ows_exception_report(
    "NoApplicableCode", "AccessForbidden", "Access token is required to access this service.")
OWS_ERROR_TYPE = "text/xml; charset=UTF-8"


def register(server, mapproxy) -> None:
    registered = server.rpc().register_service(NAME, mapproxy.url, {"type": "wms"})
    assert registered == {"url": mapproxy.url, "name": NAME, "type": "wms", "purl": "",
                          "public": False, "auth": "token", "verify": True}


@pytest.fixture(scope="module")
def proxy(module_twitcher, mapproxy):
    """A twitcher with MapProxy registered as `mapproxy` (type wms, token protected)."""
    server = module_twitcher()
    register(server, mapproxy)
    return server


@pytest.fixture(scope="module")
def passthrough(module_twitcher, mapproxy):
    """The same, with `twitcher.ows_proxy_rewrite_wms = false`."""
    server = module_twitcher(twitcher__ows_proxy_rewrite_wms="false")
    register(server, mapproxy)
    return server


@pytest.fixture
def token(proxy):
    return proxy.rpc().generate_token()["access_token"]


def caps_query(version: str) -> str:
    return f"SERVICE=WMS&REQUEST=GetCapabilities&VERSION={version}"


def getmap_query(version: str) -> str:
    srs_key = "SRS" if version == "1.1.1" else "CRS"
    bbox = ",".join(str(v) for v in GETMAP["bbox"])
    return (f"SERVICE=WMS&REQUEST=GetMap&VERSION={version}&LAYERS=debug&STYLES=&"
            f"{srs_key}=EPSG:3857&BBOX={bbox}&WIDTH=300&HEIGHT=200&FORMAT=image/png")


def canonical(url: str) -> str:
    """`url` without an empty query (`…/service?` is `…/service`) or a fragment: the
    rewriter, like the original's, drops both."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))


def is_proxy_url(url: str, proxy_url: str) -> bool:
    """`url` is the proxy URL, with or without a query."""
    url = canonical(url)
    return url == proxy_url or url.startswith(proxy_url + "?")


def media_type(response: requests.Response) -> str:
    return response.headers.get("Content-Type", "").split(";")[0].strip()


def href_elements(doc) -> list:
    return doc.xpath("//*[@xlink:href]", namespaces=NS)


def operation_hrefs(doc, operation: str) -> list[str]:
    """The xlink:href values under the element of `operation` (GetMap, …) in Capability/Request."""
    return doc.xpath(f"//*[local-name()='Request']/*[local-name()='{operation}']//@xlink:href",
                     namespaces=NS)


def legend_hrefs(doc) -> list[str]:
    return doc.xpath("//*[local-name()='LegendURL']//@xlink:href", namespaces=NS)


def assert_token_required(response: requests.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["Content-Type"] == OWS_ERROR_TYPE
    assert response.content == TOKEN_REQUIRED


def assert_png(response: requests.Response, size: tuple[int, int] | None = None) -> None:
    assert response.status_code == 200, response.text
    assert media_type(response) == "image/png"
    width_height = png_size(response.content)
    if size is not None:
        assert width_height == size


# --- GetCapabilities (public) -----------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_getcapabilities_every_url_names_the_proxy(proxy, mapproxy, version):
    proxy_url = proxy.proxy_url(NAME)
    direct = requests.get(f"{mapproxy.url}?{caps_query(version)}", timeout=30)
    proxied = requests.get(f"{proxy_url}?{caps_query(version)}", timeout=30)
    assert direct.status_code == 200, direct.text
    assert proxied.status_code == 200, proxied.text
    assert media_type(proxied) == media_type(direct) == CAPS_MEDIA_TYPE[version]

    got = parse_xml(proxied.content)
    hrefs = [e.get(XLINK_HREF) for e in href_elements(got)]
    # Service, GetCapabilities, GetMap, GetFeatureInfo, GetLegendGraphic, LegendURL
    assert len(hrefs) >= 6, hrefs
    stray = [h for h in hrefs if not is_proxy_url(h, proxy_url)]
    assert stray == [], f"URLs not naming the proxy {proxy_url}: {stray}"
    assert f"127.0.0.1:{mapproxy.port}".encode() not in proxied.content
    for operation in ["GetCapabilities", "GetMap", "GetFeatureInfo", "GetLegendGraphic"]:
        assert [canonical(h) for h in operation_hrefs(got, operation)] == [proxy_url], operation
    [legend] = legend_hrefs(got)
    assert legend.startswith(proxy_url + "?") and "request=GetLegendGraphic" in legend

    # Everything else is MapProxy's document: the backend URL replaced, queries kept.
    expected = parse_xml(direct.content)
    backend_hrefs = href_elements(expected)
    assert len(backend_hrefs) == len(hrefs)
    for element in backend_hrefs:
        value = element.get(XLINK_HREF)
        assert value.startswith(mapproxy.url), value
        element.set(XLINK_HREF, canonical(proxy_url + value[len(mapproxy.url):]))
    for element in href_elements(got):
        element.set(XLINK_HREF, canonical(element.get(XLINK_HREF)))
    assert c14n(got) == c14n(expected)


@pytest.mark.parametrize("version", VERSIONS)
def test_owslib_capabilities_through_the_proxy(proxy, version):
    proxy_url = proxy.proxy_url(NAME)
    wms = WebMapService(proxy_url, version=version, timeout=60)  # no token: public
    assert wms.identification.title == "Twitcher interop MapProxy"
    assert "debug" in wms.contents
    assert {op.name for op in wms.operations} >= {
        "GetCapabilities", "GetMap", "GetFeatureInfo", "GetLegendGraphic"}
    urls = {canonical(m["url"]) for op in wms.operations for m in op.methods}
    assert urls == {proxy_url}
    assert wms["debug"].styles["default"]["legend"].startswith(proxy_url + "?")


# --- GetMap / GetLegendGraphic (token protected) ----------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_owslib_getmap_without_token_is_refused(proxy, version):
    wms = WebMapService(proxy.proxy_url(NAME), version=version, timeout=60)
    with pytest.raises(ServiceException) as info:
        wms.getmap(**GETMAP)
    # OWSLib raises with the response text of a 401: twitcher's report, byte for byte.
    assert str(info.value).encode() == TOKEN_REQUIRED
    assert_token_required(requests.get(f"{proxy.proxy_url(NAME)}?{getmap_query(version)}",
                                       timeout=30))


@pytest.mark.parametrize("version", VERSIONS)
def test_owslib_getmap_with_token(proxy, token, version):
    wms = WebMapService(proxy.proxy_url(NAME), version=version, timeout=60,
                        headers={"Access-Token": token})
    image = wms.getmap(**GETMAP)
    assert image.info()["Content-Type"] == "image/png"
    assert png_size(image.read()) == GETMAP["size"]
    assert wms.request.startswith(proxy.proxy_url(NAME) + "?")  # the GetMap went through us


@pytest.mark.parametrize("version", VERSIONS)
def test_getmap_with_token_in_the_query(proxy, token, version):
    url = f"{proxy.proxy_url(NAME)}?{getmap_query(version)}"
    assert_png(requests.get(f"{url}&access_token={token}", timeout=30), GETMAP["size"])
    assert_png(requests.get(url, headers={"Access-Token": token}, timeout=30), GETMAP["size"])


def test_legend_url_needs_a_token(proxy, token):
    caps = requests.get(f"{proxy.proxy_url(NAME)}?{caps_query('1.1.1')}", timeout=30)
    [legend] = legend_hrefs(parse_xml(caps.content))
    assert_token_required(requests.get(legend, timeout=30))
    assert_png(requests.get(legend, headers={"Access-Token": token}, timeout=30))


# --- twitcher.ows_proxy_rewrite_wms = false ---------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_rewrite_off_passes_capabilities_unchanged(passthrough, mapproxy, version):
    direct = requests.get(f"{mapproxy.url}?{caps_query(version)}", timeout=30)
    proxied = requests.get(f"{passthrough.proxy_url(NAME)}?{caps_query(version)}", timeout=30)
    assert proxied.status_code == 200, proxied.text
    assert media_type(proxied) == CAPS_MEDIA_TYPE[version]
    assert proxied.content == direct.content
    hrefs = [e.get(XLINK_HREF) for e in href_elements(parse_xml(proxied.content))]
    assert len(hrefs) >= 6 and all(h.startswith(mapproxy.url) for h in hrefs), hrefs


def test_rewrite_off_still_guards_getmap(passthrough):
    url = f"{passthrough.proxy_url(NAME)}?{getmap_query('1.3.0')}"
    assert_token_required(requests.get(url, timeout=30))
    token = passthrough.rpc().generate_token()["access_token"]
    assert_png(requests.get(url, headers={"Access-Token": token}, timeout=30), GETMAP["size"])
