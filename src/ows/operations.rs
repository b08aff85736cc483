//! The OWS service types the gate reads and, per type, its operations: which exist, which
//! versions, which anyone may call, and which write to the backend (never public, not even
//! on a service registered `public`). Names are lower-cased, as requests are read.

/// OWS service types the proxy knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwsService {
    /// Web Processing Service.
    Wps,
    /// Web Map Service.
    Wms,
    /// Web Feature Service.
    Wfs,
    /// Web Coverage Service.
    Wcs,
    /// Web Map Tile Service.
    Wmts,
}

/// What the original accepted on every service, whatever its registered type.
pub const ORIGINAL_SERVICES: &[OwsService] = &[OwsService::Wps, OwsService::Wms];

impl OwsService {
    /// The service for a lower-cased `service` value.
    pub fn from_lower(value: &str) -> Option<Self> {
        match value {
            "wps" => Some(OwsService::Wps),
            "wms" => Some(OwsService::Wms),
            "wfs" => Some(OwsService::Wfs),
            "wcs" => Some(OwsService::Wcs),
            "wmts" => Some(OwsService::Wmts),
            _ => None,
        }
    }

    /// The lower-case name, as `service` values are compared.
    pub fn name(self) -> &'static str {
        match self {
            OwsService::Wps => "wps",
            OwsService::Wms => "wms",
            OwsService::Wfs => "wfs",
            OwsService::Wcs => "wcs",
            OwsService::Wmts => "wmts",
        }
    }

    /// Every request of the type.
    pub fn requests(self) -> &'static [&'static str] {
        match self {
            OwsService::Wps => &["getcapabilities", "describeprocess", "execute"],
            OwsService::Wms => &[
                "getcapabilities",
                "getmap",
                "getfeatureinfo",
                "getlegendgraphic",
                "getmetadata",
            ],
            // WFS 1.0 to 2.0 (GetGmlObject is 1.1's, the stored queries 2.0's).
            OwsService::Wfs => &[
                "getcapabilities",
                "describefeaturetype",
                "liststoredqueries",
                "describestoredqueries",
                "getfeature",
                "getpropertyvalue",
                "getgmlobject",
                "getfeaturewithlock",
                "lockfeature",
                "transaction",
                "createstoredquery",
                "dropstoredquery",
            ],
            // WCS 1.0 to 2.0, with the EO application profile's DescribeEOCoverageSet.
            OwsService::Wcs => &[
                "getcapabilities",
                "describecoverage",
                "describeeocoverageset",
                "getcoverage",
            ],
            OwsService::Wmts => &["getcapabilities", "gettile", "getfeatureinfo"],
        }
    }

    /// Supported versions (a request other than GetCapabilities must name one).
    pub fn versions(self) -> &'static [&'static str] {
        match self {
            OwsService::Wps => &["1.0.0"],
            OwsService::Wms => &["1.1.1", "1.3.0"],
            OwsService::Wfs => &["1.0.0", "1.1.0", "2.0.0", "2.0.2"],
            OwsService::Wcs => &["1.0.0", "1.1.0", "1.1.1", "1.1.2", "2.0.0", "2.0.1"],
            OwsService::Wmts => &["1.0.0"],
        }
    }

    /// Requests anyone may make, token or not: the service's description, never its data.
    pub fn public_requests(self) -> &'static [&'static str] {
        match self {
            OwsService::Wps => &["getcapabilities", "describeprocess"],
            OwsService::Wms => &["getcapabilities"],
            OwsService::Wfs => &[
                "getcapabilities",
                "describefeaturetype",
                "liststoredqueries",
                "describestoredqueries",
            ],
            OwsService::Wcs => &[
                "getcapabilities",
                "describecoverage",
                "describeeocoverageset",
            ],
            OwsService::Wmts => &["getcapabilities"],
        }
    }

    /// Requests that change what the backend holds (features, locks, stored queries):
    /// they need a credential even on a service registered `public`.
    pub fn write_requests(self) -> &'static [&'static str] {
        match self {
            OwsService::Wfs => &[
                "transaction",
                "lockfeature",
                "getfeaturewithlock",
                "createstoredquery",
                "dropstoredquery",
            ],
            OwsService::Wps | OwsService::Wms | OwsService::Wcs | OwsService::Wmts => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [OwsService; 5] = [
        OwsService::Wps,
        OwsService::Wms,
        OwsService::Wfs,
        OwsService::Wcs,
        OwsService::Wmts,
    ];

    #[test]
    fn names_round_trip() {
        for service in ALL {
            assert_eq!(OwsService::from_lower(service.name()), Some(service));
        }
    }

    #[test]
    fn public_and_write_requests_are_requests_and_never_both() {
        for service in ALL {
            for r in service
                .public_requests()
                .iter()
                .chain(service.write_requests())
            {
                assert!(service.requests().contains(r), "{service:?} {r}");
            }
            for r in service.write_requests() {
                assert!(!service.public_requests().contains(r), "{service:?} {r}");
            }
            assert!(service.public_requests().contains(&"getcapabilities"));
        }
    }
}
