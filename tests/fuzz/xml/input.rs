//! Generated XML documents: a prolog hiding fake roots in comments, PIs, DOCTYPEs and
//! text; a root with decision and other attributes; content after it; encodings; chunk
//! cuts and undecodable bytes. Also plain, well-formed request documents.

use bolero::TypeGenerator;

use super::XmlCase;

/// A fake root start tag, hidden where no parser looks for the root.
const FAKE_ROOT: &str = r#"<GetCapabilities service="WPS">"#;

/// How the document is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, TypeGenerator)]
pub enum Enc {
    Utf8,
    Utf8Bom,
    Utf16Le,
    Utf16LeBom,
    Utf16Be,
    Utf16BeBom,
}

impl Enc {
    /// The document's bytes in this encoding.
    pub fn encode(self, text: &str) -> Vec<u8> {
        let utf16 = |little: bool, bom: bool| {
            let mut out: Vec<u8> = Vec::new();
            let units = (bom.then_some(0xFEFF_u16))
                .into_iter()
                .chain(text.encode_utf16());
            for u in units {
                out.extend(if little {
                    u.to_le_bytes()
                } else {
                    u.to_be_bytes()
                });
            }
            out
        };
        match self {
            Enc::Utf8 => text.as_bytes().to_vec(),
            Enc::Utf8Bom => [b"\xEF\xBB\xBF", text.as_bytes()].concat(),
            Enc::Utf16Le => utf16(true, false),
            Enc::Utf16LeBom => utf16(true, true),
            Enc::Utf16Be => utf16(false, false),
            Enc::Utf16BeBom => utf16(false, true),
        }
    }
}

/// Text inside comments, PIs, DOCTYPEs and after the root.
#[derive(Debug, Clone, Copy, TypeGenerator)]
pub enum Fill {
    Word,
    Word2,
    Word3,
    Space,
    Space2,
    FakeRoot2,
    Newline,
    FakeRoot,
    FakeEmptyRoot,
    FakeExecute,
    Dash,
    DoubleDash,
    Gt,
    PiEnd,
    CommentOpen,
    CommentClose,
    Quote,
    Apos,
    Amp,
    Lt,
    CdataEnd,
    Bracket,
    NonAscii,
    Astral,
    Control,
    Nul,
    Bom,
    Doctype,
    NonCharacter,
}

impl Fill {
    fn text(self) -> &'static str {
        use Fill::*;
        match self {
            Word | Word2 | Word3 => "abc",
            Space | Space2 => " ",
            FakeRoot2 => FAKE_ROOT,
            Newline => "\n",
            FakeRoot => FAKE_ROOT,
            FakeEmptyRoot => r#"<wps:DescribeProcess service='WPS' version='1.0.0'/>"#,
            FakeExecute => r#"<Execute service="WPS" version="1.0.0">"#,
            Dash => "-",
            DoubleDash => "--",
            Gt => ">",
            PiEnd => "?>",
            CommentOpen => "<!--",
            CommentClose => "-->",
            Quote => "\"",
            Apos => "'",
            Amp => "&amp;",
            Lt => "<",
            CdataEnd => "]]>",
            Bracket => "]",
            NonAscii => "é",
            Astral => "\u{1D4B2}",
            Control => "\u{1}",
            Nul => "\0",
            Bom => "\u{FEFF}",
            Doctype => "<!DOCTYPE x>",
            NonCharacter => "\u{FFFE}\u{FFFF}",
        }
    }
}

/// A run of filler text.
#[derive(Debug, Clone, TypeGenerator)]
pub struct Filler(#[generator(bolero::produce_with::<Vec<Fill>>().len(0usize..=5))] Vec<Fill>);

impl Filler {
    fn text(&self) -> String {
        self.0.iter().map(|f| f.text()).collect()
    }
}

/// The `encoding` of an XML declaration.
#[derive(Debug, Clone, Copy, TypeGenerator)]
pub enum DeclEncoding {
    None,
    None2,
    Matching,
    Matching2,
    Matching3,
    Utf8,
    Utf8Upper,
    Utf16,
    Utf16Le,
    Latin1,
    Ascii,
    Cp037,
    Empty,
}

impl DeclEncoding {
    fn text(self, enc: Enc) -> &'static str {
        use DeclEncoding::*;
        match self {
            None | None2 => "",
            Matching | Matching2 | Matching3 => match enc {
                Enc::Utf8 | Enc::Utf8Bom => " encoding='UTF-8'",
                _ => " encoding='UTF-16'",
            },
            Utf8 => " encoding='utf-8'",
            Utf8Upper => " encoding=\"UTF-8\"",
            Utf16 => " encoding=\"UTF-16\"",
            Utf16Le => " encoding=\"utf-16le\"",
            Latin1 => " encoding=\"ISO-8859-1\"",
            Ascii => " encoding='us-ascii'",
            Cp037 => " encoding='cp037'",
            Empty => " encoding=''",
        }
    }
}

/// Whitespace before the XML declaration (not allowed), seldom.
#[derive(Debug, Clone, Copy, TypeGenerator)]
pub enum DeclSpace {
    No,
    No2,
    No3,
    Yes,
}

/// An XML declaration.
#[derive(Debug, Clone, Copy, TypeGenerator)]
pub struct Decl {
    /// Whitespace before it.
    pub leading_space: DeclSpace,
    /// Its encoding name.
    pub encoding: DeclEncoding,
    /// `standalone='yes'`.
    pub standalone: bool,
}

impl Decl {
    fn text(self, enc: Enc) -> String {
        format!(
            "{}<?xml version=\"1.0\"{}{}?>",
            if matches!(self.leading_space, DeclSpace::Yes) {
                " "
            } else {
                ""
            },
            self.encoding.text(enc),
            if self.standalone {
                " standalone='yes'"
            } else {
                ""
            }
        )
    }
}

/// A processing instruction's target.
#[derive(Debug, Clone, Copy, TypeGenerator)]
pub enum PiTarget {
    Pi,
    Pi2,
    Stylesheet,
    Xml,
    XmlUpper,
    XmlFoo,
    Empty,
}

impl PiTarget {
    fn text(self) -> &'static str {
        match self {
            PiTarget::Pi | PiTarget::Pi2 => "pi",
            PiTarget::Stylesheet => "xml-stylesheet",
            PiTarget::Xml => "xml",
            PiTarget::XmlUpper => "XmL",
            PiTarget::XmlFoo => "xmlfoo",
            PiTarget::Empty => "",
        }
    }
}

/// What a DOCTYPE looks like.
#[derive(Debug, Clone, TypeGenerator)]
pub enum DoctypeKind {
    Plain,
    System(Filler),
    Subset(Filler),
    Entity,
    Lower,
}

impl DoctypeKind {
    fn text(&self) -> String {
        match self {
            DoctypeKind::Plain => "<!DOCTYPE Execute>".into(),
            DoctypeKind::System(f) => format!("<!DOCTYPE x SYSTEM \"{}\">", f.text()),
            DoctypeKind::Subset(f) => format!("<!DOCTYPE x [{}]>", f.text()),
            DoctypeKind::Entity => format!("<!DOCTYPE x [<!ENTITY e '{FAKE_ROOT}'>]>"),
            DoctypeKind::Lower => "<!doctype x>".into(),
        }
    }
}

/// One item of the prolog.
#[derive(Debug, Clone, TypeGenerator)]
pub enum Misc {
    Space,
    Space2,
    Newlines,
    Comment(Filler),
    Comment2(Filler),
    Comment3(Filler),
    Pi2(PiTarget, Filler),
    Pi(PiTarget, Filler),
    Doctype(DoctypeKind),
    Text(Filler),
    Decl(Decl),
}

impl Misc {
    fn text(&self, enc: Enc) -> String {
        match self {
            Misc::Space | Misc::Space2 => " ".into(),
            Misc::Newlines => "\r\n\t\n".into(),
            Misc::Comment(f) | Misc::Comment2(f) | Misc::Comment3(f) => {
                format!("<!--{}-->", f.text())
            }
            Misc::Pi(t, f) | Misc::Pi2(t, f) => format!("<?{} {}?>", t.text(), f.text()),
            Misc::Doctype(d) => d.text(),
            Misc::Text(f) => f.text(),
            Misc::Decl(d) => d.text(enc),
        }
    }
}

/// The root element's name.
#[derive(Debug, Clone, Copy, TypeGenerator)]
pub enum RootName {
    GetCapabilities,
    GetCapabilitiesLower,
    DescribeProcess,
    Execute,
    ExecuteUpper,
    GetMap,
    Foo,
    CapabilitiesSuffix,
    Unicode,
}

impl RootName {
    fn text(self) -> &'static str {
        use RootName::*;
        match self {
            GetCapabilities => "GetCapabilities",
            GetCapabilitiesLower => "getcapabilities",
            DescribeProcess => "DescribeProcess",
            Execute => "Execute",
            ExecuteUpper => "EXECUTE",
            GetMap => "GetMap",
            Foo => "Foo",
            CapabilitiesSuffix => "GetCapabilitiesX",
            Unicode => "Exécute",
        }
    }
}

/// The root element's prefix.
#[derive(Debug, Clone, Copy, TypeGenerator)]
pub enum RootPrefix {
    None,
    Declared,
    Undeclared,
    DefaultNamespace,
    XmlnsPrefix,
}

/// An attribute name.
#[derive(Debug, Clone, Copy, TypeGenerator)]
pub enum AttrName {
    Service,
    Service2,
    ServiceUpper,
    Version,
    Version2,
    PrefixedService,
    UndeclaredPrefixService,
    XmlnsOws,
    XmlnsOws2,
    Foo,
    Language,
}

impl AttrName {
    fn text(self) -> &'static str {
        use AttrName::*;
        match self {
            Service | Service2 => "service",
            ServiceUpper => "SERVICE",
            Version | Version2 => "version",
            PrefixedService => "ows:service",
            UndeclaredPrefixService => "foo:service",
            XmlnsOws => "xmlns:ows",
            XmlnsOws2 => "xmlns:o2",
            Foo => "foo",
            Language => "xml:lang",
        }
    }
}

/// A piece of an attribute value.
#[derive(Debug, Clone, Copy, TypeGenerator)]
pub enum ValuePiece {
    Wps,
    Wps2,
    WpsLower,
    Wms,
    V100,
    V100b,
    V130,
    OwsUri,
    CharRef,
    HexCharRef,
    Amp,
    EscapedRoot,
    RawLt,
    Gt,
    Quote,
    Apos,
    Space,
    Tab,
    Newline,
    UnknownEntity,
    Nul,
    NonCharacter,
    BadCharRef,
}

impl ValuePiece {
    fn text(self) -> &'static str {
        use ValuePiece::*;
        match self {
            Wps | Wps2 => "WPS",
            WpsLower => "wps",
            Wms => "WMS",
            V100 | V100b => "1.0.0",
            V130 => "1.3.0",
            OwsUri => "http://www.opengis.net/ows/1.1",
            CharRef => "&#87;",
            HexCharRef => "&#x50;",
            Amp => "&amp;",
            EscapedRoot => "&lt;GetCapabilities service=&quot;WPS&quot;&gt;",
            RawLt => FAKE_ROOT,
            Gt => ">",
            Quote => "\"",
            Apos => "'",
            Space => " ",
            Tab => "\t",
            Newline => "\n",
            UnknownEntity => "&foo;",
            Nul => "\0",
            NonCharacter => "\u{FFFF}",
            BadCharRef => "&#0;",
        }
    }
}

/// One attribute.
#[derive(Debug, Clone, TypeGenerator)]
pub struct Attr {
    /// Its name.
    pub name: AttrName,
    /// `'` instead of `"`.
    pub apos: bool,
    /// Spaces around `=`.
    pub spaced: bool,
    /// Its value.
    #[generator(bolero::produce_with::<Vec<ValuePiece>>().len(0usize..=3))]
    pub value: Vec<ValuePiece>,
}

impl Attr {
    fn text(&self) -> String {
        let q = if self.apos { '\'' } else { '"' };
        let eq = if self.spaced { " = " } else { "=" };
        let value: String = self.value.iter().map(|v| v.text()).collect();
        format!(" {}{eq}{q}{value}{q}", self.name.text())
    }
}

/// The `service` attribute written first (most roots have one).
#[derive(Debug, Clone, Copy, TypeGenerator)]
pub enum ServiceAttr {
    Wps,
    Wps2,
    WpsLower,
    Wms,
    CharRef,
    None,
}

/// The `version` attribute written second.
#[derive(Debug, Clone, Copy, TypeGenerator)]
pub enum VersionAttr {
    V100,
    V100b,
    V130,
    None,
    None2,
    Bad,
}

/// The root start tag.
#[derive(Debug, Clone, TypeGenerator)]
pub struct Root {
    /// Its prefix.
    pub prefix: RootPrefix,
    /// Its local name.
    pub name: RootName,
    /// `service`.
    pub service: ServiceAttr,
    /// `version`.
    pub version: VersionAttr,
    /// Further attributes.
    #[generator(bolero::produce_with::<Vec<Attr>>().len(0usize..=3))]
    pub attrs: Vec<Attr>,
    /// Whitespace before the `>`.
    pub space: bool,
    /// `/>` rather than `>`.
    pub empty: bool,
}

impl Root {
    /// The start tag.
    fn start_tag(&self) -> String {
        let ns = "http://www.opengis.net/wps/1.0.0";
        let (qname, decl) = match self.prefix {
            RootPrefix::None => (self.name.text().to_string(), String::new()),
            RootPrefix::Declared => (
                format!("wps:{}", self.name.text()),
                format!(" xmlns:wps=\"{ns}\""),
            ),
            RootPrefix::Undeclared => (format!("wps:{}", self.name.text()), String::new()),
            RootPrefix::DefaultNamespace => {
                (self.name.text().to_string(), format!(" xmlns=\"{ns}\""))
            }
            RootPrefix::XmlnsPrefix => (format!("xmlns:{}", self.name.text()), String::new()),
        };
        let service = match self.service {
            ServiceAttr::Wps | ServiceAttr::Wps2 => " service=\"WPS\"",
            ServiceAttr::WpsLower => " service='wps'",
            ServiceAttr::Wms => " service=\"WMS\"",
            ServiceAttr::CharRef => " service=\"&#87;PS\"",
            ServiceAttr::None => "",
        };
        let version = match self.version {
            VersionAttr::V100 | VersionAttr::V100b => " version=\"1.0.0\"",
            VersionAttr::V130 => " version='1.3.0'",
            VersionAttr::None | VersionAttr::None2 => "",
            VersionAttr::Bad => " version=\"1.0\"",
        };
        let attrs: String = [service, version]
            .into_iter()
            .map(String::from)
            .chain(self.attrs.iter().map(Attr::text))
            .collect();
        format!(
            "<{qname}{decl}{attrs}{}{}",
            if self.space { " " } else { "" },
            if self.empty { "/>" } else { ">" }
        )
    }

    fn end_tag(&self) -> String {
        if self.empty {
            return String::new();
        }
        match self.prefix {
            RootPrefix::Declared | RootPrefix::Undeclared => format!("</wps:{}>", self.name.text()),
            RootPrefix::XmlnsPrefix => format!("</xmlns:{}>", self.name.text()),
            _ => format!("</{}>", self.name.text()),
        }
    }
}

/// What follows the root start tag.
#[derive(Debug, Clone, TypeGenerator)]
pub enum After {
    Content(Filler),
    Child,
    EndTag,
    WrongEndTag,
    Comment(Filler),
    SecondRoot,
}

/// A generated document.
#[derive(Debug, Clone, TypeGenerator)]
pub struct XmlInput {
    /// Its encoding.
    pub enc: Enc,
    /// An XML declaration first.
    pub decl: Option<Decl>,
    /// The prolog after it.
    #[generator(bolero::produce_with::<Vec<Misc>>().len(0usize..=4))]
    pub prolog: Vec<Misc>,
    /// The root start tag.
    pub root: Root,
    /// What follows.
    #[generator(bolero::produce_with::<Vec<After>>().len(0usize..=3))]
    pub after: Vec<After>,
    /// Where the bytes are cut into chunks.
    #[generator(bolero::produce_with::<Vec<u16>>().len(0usize..=8))]
    pub cuts: Vec<u16>,
    /// Bytes that do not decode, seldom.
    pub corrupt: Corrupt,
}

/// Where to put a byte (UTF-8) or code unit (UTF-16) that does not decode.
#[derive(Debug, Clone, Copy, TypeGenerator)]
pub enum Corrupt {
    None,
    None2,
    None3,
    None4,
    None5,
    None6,
    At(u16),
}

/// A well-formed request document (only the root's name and attributes vary): what
/// clients send.
#[derive(Debug, Clone, TypeGenerator)]
pub struct XmlRequest {
    /// Its encoding.
    pub enc: Enc,
    /// `<?xml version="1.0"?>` first.
    pub decl: bool,
    /// `wps:` prefix (declared) rather than the default namespace.
    pub prefixed: bool,
    /// The root's local name.
    pub name: RootName,
    /// `service`.
    pub service: ServiceAttr,
    /// `version`.
    pub version: VersionAttr,
}

impl XmlRequest {
    /// The concrete document.
    pub fn render(&self) -> XmlCase {
        let decl = if self.decl {
            "<?xml version=\"1.0\"?>\n"
        } else {
            ""
        };
        let root = Root {
            prefix: if self.prefixed {
                RootPrefix::Declared
            } else {
                RootPrefix::DefaultNamespace
            },
            name: self.name,
            service: self.service,
            version: self.version,
            attrs: Vec::new(),
            space: false,
            empty: false,
        };
        XmlCase {
            enc: self.enc,
            text: format!(
                "{decl}{}<ows:Identifier xmlns:ows=\"http://www.opengis.net/ows/1.1\">hello</ows:Identifier>{}",
                root.start_tag(),
                root.end_tag()
            ),
            cuts: Vec::new(),
            corrupt: None,
        }
    }
}

impl XmlInput {
    /// The concrete document.
    pub fn render(&self) -> XmlCase {
        let mut text: String = self.decl.map(|d| d.text(self.enc)).unwrap_or_default();
        text.extend(self.prolog.iter().map(|m| m.text(self.enc)));
        let root = &self.root;
        text.push_str(&root.start_tag());
        let mut open = !root.empty;
        for after in &self.after {
            match after {
                After::Content(f) if open => text.push_str(&f.text()),
                After::Child if open => text.push_str("<ows:Identifier>x</ows:Identifier>"),
                After::EndTag if open => {
                    text.push_str(&root.end_tag());
                    open = false;
                }
                After::WrongEndTag => text.push_str("</Other>"),
                After::Comment(f) => text.push_str(&format!("<!--{}-->", f.text())),
                After::SecondRoot => text.push_str(FAKE_ROOT),
                _ => {}
            }
        }
        if open {
            text.push_str(&root.end_tag());
        }
        XmlCase {
            enc: self.enc,
            text,
            cuts: self.cuts.clone(),
            corrupt: match self.corrupt {
                Corrupt::At(at) => Some(at),
                _ => None,
            },
        }
    }
}
