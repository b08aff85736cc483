//! Generated requests to the proxy: mostly plausible (the service `emu`, a well-formed
//! query or body, a token here or there), each part sometimes hostile (paths, duplicate
//! keys, content types and encodings, broken documents, chunking).

use bolero::TypeGenerator;

use super::GateCase;
use crate::fuzz::kvp::QueryInput;
use crate::fuzz::path::Piece;
use crate::fuzz::xml::{XmlInput, XmlRequest};

/// The request method.
#[derive(Debug, Clone, Copy, TypeGenerator)]
pub enum MethodChoice {
    Get,
    Get2,
    Get3,
    Post,
    Post2,
    Post3,
    Put,
}

/// The service name as it appears in the path.
#[derive(Debug, Clone, Copy, TypeGenerator)]
pub enum NameChoice {
    Emu,
    Emu2,
    Emu3,
    Emu4,
    Emu5,
    Emu6,
    Emu7,
    Emu8,
    Emu9,
    Emu10,
    Encoded,
    Upper,
    Other,
}

impl NameChoice {
    fn text(self) -> &'static str {
        match self {
            NameChoice::Emu
            | NameChoice::Emu2
            | NameChoice::Emu3
            | NameChoice::Emu4
            | NameChoice::Emu5
            | NameChoice::Emu6
            | NameChoice::Emu7
            | NameChoice::Emu8
            | NameChoice::Emu9
            | NameChoice::Emu10 => "emu",
            NameChoice::Encoded => "%65mu",
            NameChoice::Upper => "EMU",
            NameChoice::Other => "emu2",
        }
    }
}

/// `Content-Type`.
#[derive(Debug, Clone, Copy, TypeGenerator)]
pub enum ContentType {
    Matching,
    Matching2,
    Matching3,
    Matching4,
    Matching5,
    Matching6,
    None,
    Form,
    FormCharset,
    FormUpper,
    Xml,
    TextXml,
    Plain,
}

/// `Content-Encoding`.
#[derive(Debug, Clone, Copy, TypeGenerator)]
pub enum ContentEncoding {
    None,
    None2,
    None3,
    None4,
    None5,
    None6,
    None7,
    None8,
    None9,
    None10,
    None11,
    None12,
    Identity,
    Gzip,
    IdentityGzip,
}

/// `Authorization`.
#[derive(Debug, Clone, Copy, TypeGenerator)]
pub enum Authorization {
    None,
    None2,
    BearerGood,
    BearerLowerTab,
    BearerBad,
    BearerEmpty,
    Basic,
    GoodAlone,
}

/// `Access-Token`.
#[derive(Debug, Clone, Copy, TypeGenerator)]
pub enum AccessTokenHeader {
    None,
    None2,
    Good,
    Bad,
    Empty,
    Padded,
}

/// The extra path after the service name.
#[derive(Debug, Clone, TypeGenerator)]
pub enum ExtraChoice {
    None,
    None2,
    None3,
    Slash,
    Good,
    GoodSlash,
    Bad,
    Pieces(#[generator(bolero::produce_with::<Vec<Piece>>().len(0usize..=6))] Vec<Piece>),
}

impl ExtraChoice {
    fn render(&self) -> String {
        let pieces = match self {
            ExtraChoice::None | ExtraChoice::None2 | ExtraChoice::None3 => return String::new(),
            ExtraChoice::Slash => return "/".into(),
            ExtraChoice::Good => return "/good".into(),
            ExtraChoice::GoodSlash => return "/a/good/".into(),
            ExtraChoice::Bad => return "/bad".into(),
            ExtraChoice::Pieces(p) => p,
        };
        let extra: String = pieces
            .iter()
            .filter(|p| p.in_request_target())
            .map(|p| p.text())
            .collect();
        if extra.is_empty() || extra.starts_with('/') {
            extra
        } else {
            format!("/{extra}")
        }
    }
}

/// A token in the query.
#[derive(Debug, Clone, Copy, TypeGenerator)]
pub enum QueryToken {
    None,
    None2,
    None3,
    TokenGood,
    AccessTokenGood,
    AccessTokenUpperGood,
    TokenBad,
    BothBadFirst,
}

impl QueryToken {
    fn text(self) -> &'static str {
        match self {
            QueryToken::None | QueryToken::None2 | QueryToken::None3 => "",
            QueryToken::TokenGood => "token=good",
            QueryToken::AccessTokenGood => "access_token=good",
            QueryToken::AccessTokenUpperGood => "ACCESS_TOKEN=good",
            QueryToken::TokenBad => "token=bad",
            QueryToken::BothBadFirst => "token=bad&access_token=good",
        }
    }
}

/// Whether a POST carries the generated query.
#[derive(Debug, Clone, Copy, TypeGenerator)]
pub enum QueryOnPost {
    No,
    No2,
    No3,
    Yes,
}

/// A generated body.
#[derive(Debug, Clone, TypeGenerator)]
pub enum BodyChoice {
    Empty,
    Xml(XmlInput),
    Xml2(XmlInput),
    Xml3(XmlInput),
    Request(XmlRequest),
    Request2(XmlRequest),
    Form(QueryInput),
    Form2(QueryInput),
    FormWithToken(QueryInput),
    Raw(#[generator(bolero::produce_with::<Vec<u8>>().len(0usize..=16))] Vec<u8>),
}

/// A generated request to the proxy.
#[derive(Debug, Clone, TypeGenerator)]
pub struct GateInput {
    /// Method.
    pub method: MethodChoice,
    /// Service name in the path.
    pub name: NameChoice,
    /// Extra path after the name.
    pub extra: ExtraChoice,
    /// Query string.
    pub query: QueryInput,
    /// A token in the query, appended.
    pub query_token: QueryToken,
    /// Whether a POST has the query too (most do not).
    pub query_on_post: QueryOnPost,
    /// Headers.
    pub content_type: ContentType,
    /// `Content-Encoding`.
    pub content_encoding: ContentEncoding,
    /// `Authorization`.
    pub authorization: Authorization,
    /// `Access-Token`.
    pub access_token: AccessTokenHeader,
    /// `X-Ssl-Client-Verify: SUCCESS`.
    pub client_verify: bool,
    /// Body.
    pub body: BodyChoice,
    /// Chunk cuts of the body.
    #[generator(bolero::produce_with::<Vec<u16>>().len(0usize..=6))]
    pub cuts: Vec<u16>,
}

impl GateInput {
    /// The concrete request.
    pub fn render(&self) -> GateCase {
        let method = match self.method {
            MethodChoice::Get | MethodChoice::Get2 | MethodChoice::Get3 => "GET",
            MethodChoice::Post | MethodChoice::Post2 | MethodChoice::Post3 => "POST",
            MethodChoice::Put => "PUT",
        };
        let extra = self.extra.render();
        let mut headers = Vec::new();
        let is_form = matches!(
            self.body,
            BodyChoice::Form(_) | BodyChoice::Form2(_) | BodyChoice::FormWithToken(_)
        );
        let content_type = match self.content_type {
            ContentType::Matching
            | ContentType::Matching2
            | ContentType::Matching3
            | ContentType::Matching4
            | ContentType::Matching5
            | ContentType::Matching6
                if is_form =>
            {
                Some("application/x-www-form-urlencoded")
            }
            ContentType::Matching
            | ContentType::Matching2
            | ContentType::Matching3
            | ContentType::Matching4
            | ContentType::Matching5
            | ContentType::Matching6 => Some("text/xml"),
            ContentType::None => None,
            ContentType::Form => Some("application/x-www-form-urlencoded"),
            ContentType::FormCharset => Some("application/x-www-form-urlencoded; charset=utf-8"),
            ContentType::FormUpper => Some("Application/X-WWW-Form-Urlencoded"),
            ContentType::Xml => Some("application/xml"),
            ContentType::TextXml => Some("text/xml; charset=UTF-16"),
            ContentType::Plain => Some("text/plain"),
        };
        headers.extend(content_type.map(|v| ("content-type", v)));
        let encoding = match self.content_encoding {
            ContentEncoding::Identity => Some("identity"),
            ContentEncoding::Gzip => Some("gzip"),
            ContentEncoding::IdentityGzip => Some("identity, gzip"),
            _ => None,
        };
        headers.extend(encoding.map(|v| ("content-encoding", v)));
        let authorization = match self.authorization {
            Authorization::BearerGood => Some("Bearer good"),
            Authorization::BearerLowerTab => Some("bearer\t good "),
            Authorization::BearerBad => Some("Bearer bad"),
            Authorization::BearerEmpty => Some("Bearer "),
            Authorization::Basic => Some("Basic Z29vZDpnb29k"),
            Authorization::GoodAlone => Some("good"),
            _ => None,
        };
        headers.extend(authorization.map(|v| ("authorization", v)));
        let access_token = match self.access_token {
            AccessTokenHeader::Good => Some("good"),
            AccessTokenHeader::Bad => Some("bad"),
            AccessTokenHeader::Empty => Some(""),
            AccessTokenHeader::Padded => Some(" good "),
            _ => None,
        };
        headers.extend(access_token.map(|v| ("access-token", v)));
        if self.client_verify {
            headers.push(("x-ssl-client-verify", "SUCCESS"));
        }
        let body = match &self.body {
            BodyChoice::Empty => Vec::new(),
            BodyChoice::Xml(x) | BodyChoice::Xml2(x) | BodyChoice::Xml3(x) => x.render().bytes(),
            BodyChoice::Request(x) | BodyChoice::Request2(x) => x.render().bytes(),
            BodyChoice::Form(f) | BodyChoice::Form2(f) => f.render().into_bytes(),
            BodyChoice::FormWithToken(f) => {
                format!("{}&access_token=good", f.render()).into_bytes()
            }
            BodyChoice::Raw(b) => b.clone(),
        };
        let query = if method == "GET" || matches!(self.query_on_post, QueryOnPost::Yes) {
            self.query.render()
        } else {
            String::new()
        };
        GateCase {
            method,
            path: format!("/ows/proxy/{}{extra}", self.name.text()),
            query: [query, self.query_token.text().to_string()]
                .into_iter()
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
                .join("&"),
            headers,
            body,
            cuts: self.cuts.clone(),
        }
    }
}
