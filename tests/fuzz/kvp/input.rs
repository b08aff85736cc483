//! Generated query strings: plausible requests (each decision key once, in some spelling)
//! with extra pairs mixed in, or any pairs over a biased alphabet (decision keys in mixed
//! case and encodings, tokens, `&`, `=`, `%`, `+`, `;`).

use bolero::TypeGenerator;

/// A key, in the spellings a client (or an attacker) may use.
#[derive(Debug, Clone, Copy, TypeGenerator)]
pub enum Key {
    Service,
    ServiceUpper,
    ServiceMixed,
    ServiceEncoded,
    ServicePlus,
    Request,
    RequestUpper,
    RequestMixed,
    RequestEncoded,
    Version,
    VersionUpper,
    Identifier,
    IdentifierMixed,
    Token,
    AccessToken,
    AccessTokenUpper,
    DataInputs,
    LongS,
    Empty,
}

impl Key {
    fn text(self) -> &'static str {
        use Key::*;
        match self {
            Service => "service",
            ServiceUpper => "SERVICE",
            ServiceMixed => "SeRvIcE",
            ServiceEncoded => "%73ervic%45",
            ServicePlus => "service+",
            Request => "request",
            RequestUpper => "REQUEST",
            RequestMixed => "Request",
            RequestEncoded => "re%71uest",
            Version => "version",
            VersionUpper => "VERSION",
            Identifier => "identifier",
            IdentifierMixed => "Identifier",
            Token => "token",
            AccessToken => "access_token",
            AccessTokenUpper => "ACCESS_TOKEN",
            DataInputs => "DataInputs",
            LongS => "\u{17F}ervice",
            Empty => "",
        }
    }
}

/// A value.
#[derive(Debug, Clone, Copy, TypeGenerator)]
pub enum Value {
    Wps,
    WpsLower,
    Wms,
    Execute,
    ExecuteLower,
    GetCapabilities,
    GetCapabilitiesLower,
    DescribeProcess,
    GetMap,
    V100,
    V111,
    V130,
    Empty,
    Good,
    Bad,
    EncodedCaps,
    PlusCaps,
    NulCaps,
    EncodedAmp,
    Hello,
    Kelvin,
}

impl Value {
    fn text(self) -> &'static str {
        use Value::*;
        match self {
            Wps => "WPS",
            WpsLower => "wps",
            Wms => "WMS",
            Execute => "Execute",
            ExecuteLower => "execute",
            GetCapabilities => "GetCapabilities",
            GetCapabilitiesLower => "getcapabilities",
            DescribeProcess => "DescribeProcess",
            GetMap => "GetMap",
            V100 => "1.0.0",
            V111 => "1.1.1",
            V130 => "1.3.0",
            Empty => "",
            Good => "good",
            Bad => "bad",
            EncodedCaps => "%47etCapabilities",
            PlusCaps => "GetCapabilities+",
            NulCaps => "getcapabilities%00",
            EncodedAmp => "wps%26request%3Dexecute",
            Hello => "hello",
            Kelvin => "\u{212A}",
        }
    }
}

/// What separates or follows a pair.
#[derive(Debug, Clone, Copy, TypeGenerator)]
pub enum Junk {
    None,
    None2,
    None3,
    Amp,
    Eq,
    Percent,
    Plus,
    Semicolon,
    Enc26,
    Enc3D,
}

impl Junk {
    fn text(self) -> &'static str {
        use Junk::*;
        match self {
            None | None2 | None3 => "",
            Amp => "&",
            Eq => "=",
            Percent => "%",
            Plus => "+",
            Semicolon => ";",
            Enc26 => "%26",
            Enc3D => "%3D",
        }
    }
}

/// One `key=value` pair, perhaps malformed.
#[derive(Debug, Clone, Copy, TypeGenerator)]
pub struct Pair {
    /// The key.
    pub key: Key,
    /// Whether the `=` is there.
    pub eq: bool,
    /// The value.
    pub value: Value,
    /// What follows the value.
    pub junk: Junk,
}

/// A generated query string (also used as a form body).
#[derive(Debug, Clone, TypeGenerator)]
pub struct KvpInput {
    /// The pairs, joined by `&`.
    #[generator(bolero::produce_with::<Vec<Pair>>().len(0usize..=8))]
    pub pairs: Vec<Pair>,
}

impl KvpInput {
    /// The query string.
    pub fn render(&self) -> String {
        self.pairs
            .iter()
            .map(|p| {
                let eq = if p.eq { "=" } else { "" };
                format!("{}{eq}{}{}", p.key.text(), p.value.text(), p.junk.text())
            })
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// How a decision key is spelt.
#[derive(Debug, Clone, Copy, TypeGenerator)]
pub enum Spelling {
    Lower,
    Lower2,
    Lower3,
    Upper,
    Capitalized,
    Encoded,
}

impl Spelling {
    fn spell(self, key: &str) -> String {
        match self {
            Spelling::Lower | Spelling::Lower2 | Spelling::Lower3 => key.to_string(),
            Spelling::Upper => key.to_uppercase(),
            Spelling::Capitalized => format!("{}{}", key[..1].to_uppercase(), &key[1..]),
            Spelling::Encoded => format!("%{:02X}{}", key.as_bytes()[0], &key[1..]),
        }
    }
}

/// The `service` of a plausible request.
#[derive(Debug, Clone, Copy, TypeGenerator)]
pub enum ServiceValue {
    Wps,
    Wps2,
    WpsLower,
    Wms,
    Missing,
    Empty,
    Other,
}

/// The `request` of a plausible request.
#[derive(Debug, Clone, Copy, TypeGenerator)]
pub enum RequestValue {
    GetCapabilities,
    GetCapabilities2,
    DescribeProcess,
    DescribeProcess2,
    Execute,
    Execute2,
    GetMap,
    Missing,
    Other,
}

/// The `version` of a plausible request.
#[derive(Debug, Clone, Copy, TypeGenerator)]
pub enum VersionValue {
    V100,
    V100b,
    V130,
    V111,
    Missing,
    Missing2,
    Bad,
}

/// A plausible request (the decision keys once each, in some spelling), with extra pairs
/// (duplicates, tokens, junk) mixed in.
#[derive(Debug, Clone, TypeGenerator)]
pub struct RequestQuery {
    /// `service`.
    pub service: (Spelling, ServiceValue),
    /// `request`.
    pub request: (Spelling, RequestValue),
    /// `version`.
    pub version: (Spelling, VersionValue),
    /// `identifier=hello`.
    pub identifier: bool,
    /// Extra pairs.
    #[generator(bolero::produce_with::<Vec<Pair>>().len(0usize..=3))]
    pub extras: Vec<Pair>,
    /// Where the extra pairs go.
    pub order: u8,
}

impl RequestQuery {
    /// The query string.
    pub fn render(&self) -> String {
        let mut pairs: Vec<String> = Vec::new();
        let (spelling, service) = self.service;
        let service = match service {
            ServiceValue::Wps | ServiceValue::Wps2 => Some("WPS"),
            ServiceValue::WpsLower => Some("wps"),
            ServiceValue::Wms => Some("WMS"),
            ServiceValue::Missing => None,
            ServiceValue::Empty => Some(""),
            ServiceValue::Other => Some("WFS"),
        };
        pairs.extend(service.map(|v| format!("{}={v}", spelling.spell("service"))));
        let (spelling, request) = self.request;
        let request = match request {
            RequestValue::GetCapabilities | RequestValue::GetCapabilities2 => {
                Some("GetCapabilities")
            }
            RequestValue::DescribeProcess | RequestValue::DescribeProcess2 => {
                Some("DescribeProcess")
            }
            RequestValue::Execute | RequestValue::Execute2 => Some("Execute"),
            RequestValue::GetMap => Some("GetMap"),
            RequestValue::Missing => None,
            RequestValue::Other => Some("Foo"),
        };
        pairs.extend(request.map(|v| format!("{}={v}", spelling.spell("request"))));
        let (spelling, version) = self.version;
        let version = match version {
            VersionValue::V100 | VersionValue::V100b => Some("1.0.0"),
            VersionValue::V130 => Some("1.3.0"),
            VersionValue::V111 => Some("1.1.1"),
            VersionValue::Missing | VersionValue::Missing2 => None,
            VersionValue::Bad => Some("2.0.0"),
        };
        pairs.extend(version.map(|v| format!("{}={v}", spelling.spell("version"))));
        if self.identifier {
            pairs.push("identifier=hello".into());
        }
        for (i, extra) in self.extras.iter().enumerate() {
            let at = (usize::from(self.order) + 7 * i) % (pairs.len() + 1);
            pairs.insert(
                at,
                KvpInput {
                    pairs: vec![*extra],
                }
                .render(),
            );
        }
        pairs.join("&")
    }
}

/// A query string: mostly a plausible request, sometimes any pairs.
#[derive(Debug, Clone, TypeGenerator)]
pub enum QueryInput {
    Request(RequestQuery),
    Request2(RequestQuery),
    Request3(RequestQuery),
    Pairs(KvpInput),
}

impl QueryInput {
    /// The query string.
    pub fn render(&self) -> String {
        match self {
            QueryInput::Request(q) | QueryInput::Request2(q) | QueryInput::Request3(q) => {
                q.render()
            }
            QueryInput::Pairs(p) => p.render(),
        }
    }
}
