//! The twitcherctl binary against our own server, in-process.
//!
//! Every twitcherctl command line of the golden transcripts (T05: `30-…`–`39-…`, `89-…`;
//! T06: `*-ctl-*`, `*-tut-*`, `ctl-wire/`; the tutorial as quoted: `071f38c/`) is run as
//! recorded, with the recorded server URL (`-s http://127.0.0.1:18056` and the like)
//! replaced by a twitcher listening on `127.0.0.1:0` with an in-memory store. What it
//! prints is compared with what the original printed there, as far as
//! `compat/DEVIATIONS.md` lets it differ:
//!
//! - results go to stdout with exit status 0, errors are one line on stderr with exit
//!   status 1 (D-CTL-OUTPUT, D-CTL-ERRORS);
//! - a result is parsed as the Python literal it is and compared with the recorded one:
//!   same structure, member order, types and values, except the members that differ from
//!   run to run (tokens, client ids and secrets, expiry times), which must be of the same
//!   kind (type, length, alphabet). Values learnt from earlier steps (our token for the
//!   recorded token, our random name for the recorded one) are substituted into later
//!   recorded command lines and results, so everything else is compared exactly;
//! - the server's state is checked through its store after each step.
//!
//! Server and CLI disagreements that are the server's fault are `#[ignore = "BUG: …"]`.

mod common;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use assert_cmd::cargo::cargo_bin_cmd;
use common::closed_port_url;
use serde_json::{Map, Number, Value, json};
use twitcher::App;
use twitcher::config::Config;
use twitcher::store::memory::MemoryStore;
use twitcher::store::{Auth, OAuthClient, OAuthToken, Service, Store};

// ================================================================ the server

/// Server URLs of the recordings, replaced by ours when a command line is replayed.
const RECORDED_SERVERS: [&str; 3] = [
    "http://127.0.0.1:18056",     // T05
    "http://127.0.0.1:18060",     // T06 and 071f38c
    "http://127.0.0.1:15160/ctl", // T06 ctl-wire (the recording helper)
];

/// A twitcher on `127.0.0.1:0`, served by its own tokio runtime (worker threads in the
/// background) until dropped.
struct Server {
    /// `http://127.0.0.1:PORT`.
    url: String,
    store: Arc<dyn Store>,
    runtime: tokio::runtime::Runtime,
}

impl Server {
    fn start(config: Config) -> Server {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let _context = runtime.enter();
        let app = App::new(config, store.clone()).expect("app");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let service = twitcher::app(app).into_make_service_with_connect_info::<SocketAddr>();
        runtime.spawn(async move { axum::serve(listener, service).await });
        Server {
            url: format!("http://{addr}"),
            store,
            runtime,
        }
    }

    /// As T05 ran for the recordings (`golden/v056/config/twitcher.ini`): no management
    /// user, so XML-RPC and REST are open (D-OPEN-MANAGEMENT).
    fn t05() -> Server {
        Server::start(Config::default())
    }

    /// T05 with `twitcher-auth.ini`: management user admin / s3cret.
    fn t05_auth() -> Server {
        Server::start(Config {
            username: Some("admin".into()),
            password: Some("s3cret".into()),
            ..Config::default()
        })
    }

    /// As T06 and 071f38c ran (`golden/v060/twitcher.ini`): management user demo / demo.
    fn t06() -> Server {
        Server::start(Server::t06_config())
    }

    fn t06_config() -> Config {
        Config {
            username: Some("demo".into()),
            password: Some("demo".into()),
            ..Config::default()
        }
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    fn services(&self) -> Vec<Service> {
        self.block_on(self.store.list_services()).expect("list")
    }

    fn service(&self, name: &str) -> Option<Service> {
        self.block_on(self.store.service_by_name(name))
            .expect("lookup")
    }

    fn save(&self, service: &Service) {
        self.block_on(self.store.save_service(service))
            .expect("save");
    }

    fn xmlrpc_token_expiry(&self, token: &str) -> Option<i64> {
        self.block_on(self.store.access_token(token))
            .expect("lookup")
            .map(|t| t.expires_at)
    }

    fn client(&self, id: &str) -> Option<OAuthClient> {
        self.block_on(self.store.client(id)).expect("lookup")
    }

    fn oauth_token(&self, token: &str) -> Option<OAuthToken> {
        self.block_on(self.store.oauth_token(token))
            .expect("lookup")
    }

    /// Runs `twitcherctl -s URL ARGS…`.
    fn run(&self, args: &[&str]) -> Outcome {
        let mut argv = vec!["-s".to_string(), self.url.clone()];
        argv.extend(args.iter().map(|a| a.to_string()));
        run_ctl(&argv, "")
    }

    /// Runs a recorded command line, our server in place of the recorded one.
    fn replay(&self, recorded: &Recorded) -> Outcome {
        let argv: Vec<String> = recorded
            .argv
            .iter()
            .map(|arg| {
                if RECORDED_SERVERS.contains(&arg.as_str()) {
                    self.url.clone()
                } else {
                    arg.clone()
                }
            })
            .collect();
        run_ctl(&argv, &recorded.stdin)
    }

    /// A proxy request, for what tokens unlock.
    fn proxy_get(&self, path_and_query: &str, bearer: Option<&str>) -> u16 {
        let http = reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let mut request = http.get(format!("{}{path_and_query}", self.url));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        request.send().expect("proxy request").status().as_u16()
    }
}

// ================================================================ running the CLI

/// What one twitcherctl run did.
#[derive(Debug)]
struct Outcome {
    /// The command line, shown when an assertion fails.
    #[allow(dead_code)]
    command: String,
    code: i32,
    stdout: String,
    stderr: String,
}

fn run_ctl(argv: &[String], stdin: &str) -> Outcome {
    let mut cmd = cargo_bin_cmd!("twitcherctl");
    // Requests must reach the test server directly, whatever the machine's settings.
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env_remove(var);
    }
    let output = cmd
        .args(argv)
        .write_stdin(stdin.to_owned())
        .timeout(Duration::from_secs(60))
        .output()
        .expect("run twitcherctl");
    Outcome {
        command: format!("twitcherctl {}", argv.join(" ")),
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

impl Outcome {
    /// A success (exit 0, nothing on stderr) printing one Python literal: that value.
    fn result(&self) -> Value {
        assert!(
            self.code == 0 && self.stderr.is_empty(),
            "{self:#?}\nexpected a result on stdout and exit status 0"
        );
        let line = self
            .stdout
            .strip_suffix('\n')
            .unwrap_or_else(|| panic!("{self:#?}\nno line on stdout"));
        assert!(!line.contains('\n'), "{self:#?}\nmore than one line");
        py(line).unwrap_or_else(|e| panic!("{self:#?}\nnot a Python literal: {e}"))
    }

    /// A success printing JSON (`--json`): that value.
    fn json(&self) -> Value {
        assert!(
            self.code == 0 && self.stderr.is_empty(),
            "{self:#?}\nexpected JSON on stdout and exit status 0"
        );
        let line = self.stdout.strip_suffix('\n').expect("newline");
        assert!(!line.contains('\n'), "{self:#?}\nmore than one line");
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{self:#?}\nnot JSON: {e}"))
    }

    /// A failure: exit status 1, nothing on stdout, one line on stderr reading
    /// `twitcherctl: could not {what}: …`. Returns the line.
    fn error(&self, what: &str) -> String {
        assert_eq!(self.code, 1, "{self:#?}\nexpected exit status 1");
        assert!(
            self.stdout.is_empty(),
            "{self:#?}\nexpected nothing on stdout"
        );
        let line = self
            .stderr
            .strip_suffix('\n')
            .unwrap_or_else(|| panic!("{self:#?}\nno line on stderr"));
        assert!(
            !line.contains('\n'),
            "{self:#?}\nexpected one line on stderr"
        );
        let prefix = format!("twitcherctl: could not {what}: ");
        assert!(line.starts_with(&prefix), "{self:#?}\nexpected {prefix:?}");
        line.to_owned()
    }

    /// A usage error (exit status 2, clap's message), nothing sent.
    fn usage_error(&self) {
        assert_eq!(self.code, 2, "{self:#?}\nexpected exit status 2");
        assert!(self.stdout.is_empty(), "{self:#?}");
        assert!(self.stderr.contains("Usage: twitcherctl"), "{self:#?}");
    }
}

/// `error` contains each of `fragments`.
#[track_caller]
fn assert_mentions(error: &str, fragments: &[&str]) {
    for fragment in fragments {
        assert!(
            error.contains(fragment),
            "{error:?} does not mention {fragment:?}"
        );
    }
}

// ================================================================ the recordings

/// One recorded twitcherctl run.
#[derive(Debug, Clone)]
struct Recorded {
    /// Transcript and run, for messages.
    case: String,
    /// The arguments after `twitcherctl`.
    argv: Vec<String>,
    stdin: String,
    stderr: String,
    /// The original's exit status (0.5 and 0.6 exited 1 after printing a result).
    exit: i32,
}

fn golden(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../compat/golden")
        .join(path)
}

/// The twitcherctl runs of a T05 transcript (`v056/transcripts/NAME.txt`), in order.
fn t05(name: &str) -> Vec<Recorded> {
    let path = golden(&format!("v056/transcripts/{name}.txt"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut runs: Vec<Recorded> = Vec::new();
    for (label, payload) in t05_sections(&bytes) {
        match label.as_str() {
            "COMMAND" => {
                let mut words = payload.split_whitespace();
                assert_eq!(words.next(), Some("twitcherctl"), "{name}: {payload}");
                runs.push(Recorded {
                    case: format!("{name} #{}", runs.len()),
                    argv: words.map(str::to_owned).collect(),
                    stdin: String::new(),
                    stderr: String::new(),
                    exit: -1,
                });
            }
            "STDERR" => runs.last_mut().expect("command first").stderr = payload,
            "EXIT STATUS" => {
                runs.last_mut().expect("command first").exit = payload.trim().parse().unwrap();
            }
            _ => {}
        }
    }
    assert!(!runs.is_empty(), "{name}: no runs");
    runs
}

/// `==== LABEL (N bytes) ====` sections: exactly N bytes of payload each.
fn t05_sections(bytes: &[u8]) -> Vec<(String, String)> {
    let mut sections = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let end = bytes[at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| at + i);
        let line = String::from_utf8_lossy(&bytes[at..end]);
        at = end + 1;
        let header = line
            .strip_prefix("==== ")
            .and_then(|l| l.strip_suffix(" bytes) ===="))
            .and_then(|l| l.rsplit_once(" ("));
        let Some((label, count)) = header else {
            continue;
        };
        let count: usize = count.parse().expect("byte count");
        let payload = &bytes[at..at + count];
        sections.push((
            label.to_owned(),
            String::from_utf8_lossy(payload).into_owned(),
        ));
        at += count;
        if !payload.ends_with(b"\n") {
            at += 1;
        }
        assert!(bytes[at..].starts_with(b"==== END ===="), "section {label}");
    }
    sections
}

/// A T06 run (`v060/transcripts/NAME.json`; `071f38c/NAME` and `ctl-wire/NAME` too).
fn t06(name: &str) -> Recorded {
    let path = golden(&format!("v060/transcripts/{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let run: Value = serde_json::from_str(&text).expect("transcript JSON");
    let text_of = |key: &str| run[key].as_str().unwrap_or_default().to_owned();
    let argv: Vec<String> = match run["argv"].as_array() {
        Some(argv) => argv[1..]
            .iter()
            .map(|a| a.as_str().expect("argument").to_owned())
            .collect(),
        // ctl-wire keeps only the command line.
        None => {
            let words = shell_words(&text_of("command"));
            assert_eq!(words[0], "twitcherctl", "{name}");
            words[1..].to_vec()
        }
    };
    Recorded {
        case: name.to_owned(),
        argv,
        stdin: text_of("stdin"),
        stderr: text_of("stderr"),
        exit: run["exit_status"].as_i64().expect("exit status") as i32,
    }
}

/// A POSIX shell command line split into words (plain words and '…' quoting).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                word.get_or_insert_with(String::new);
            }
            c if c.is_whitespace() && !quoted => words.extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

impl Recorded {
    /// What the original printed as the result: T05 logged `INFO:Result: …`, T06 printed
    /// it as the last line on stderr (after its `WARNING:` about `-k`).
    fn result(&self) -> Value {
        let text = self
            .stderr
            .lines()
            .find_map(|l| l.strip_prefix("INFO:Result: "))
            .or_else(|| self.stderr.lines().rfind(|l| !l.starts_with("WARNING:")))
            .unwrap_or_else(|| panic!("{}: no result recorded", self.case));
        py(text).unwrap_or_else(|e| panic!("{}: {e}: {text}", self.case))
    }

    /// The value after option `option` on the command line (e.g. the client id after `-i`).
    fn option(&self, option: &str) -> &str {
        let at = self
            .argv
            .iter()
            .rposition(|a| a == option)
            .unwrap_or_else(|| panic!("{}: no {option}", self.case));
        &self.argv[at + 1]
    }

    /// This run with recorded values replaced by ours (in the command line and output).
    fn with(&self, substitutions: &[(String, String)]) -> Recorded {
        let apply = |text: &str| {
            substitutions
                .iter()
                .fold(text.to_owned(), |t, (from, to)| t.replace(from, to))
        };
        Recorded {
            case: self.case.clone(),
            argv: self.argv.iter().map(|a| apply(a)).collect(),
            stdin: apply(&self.stdin),
            stderr: apply(&self.stderr),
            exit: self.exit,
        }
    }
}

// ================================================================ comparing results

/// How our result may differ from the recorded one.
#[derive(Clone, Copy)]
struct Masked<'a> {
    /// Members whose values differ between runs; compared by kind only.
    dynamic: &'a [&'a str],
    /// Members may come in another order (another interface answered: D-CTL-TRANSPORT).
    any_order: bool,
}

const EXACT: Masked<'static> = Masked {
    dynamic: &[],
    any_order: false,
};
/// `generate_token` (XML-RPC).
const XMLRPC_TOKEN: Masked<'static> = Masked {
    dynamic: &["access_token", "expires_at"],
    any_order: false,
};
/// An OAuth2 token answer.
const OAUTH_TOKEN: Masked<'static> = Masked {
    dynamic: &["access_token", "expires_at"],
    any_order: false,
};
/// An `/oauth/client` answer.
const NEW_CLIENT: Masked<'static> = Masked {
    dynamic: &["client_id", "client_secret"],
    any_order: false,
};
/// A service listing answered by the other interface than the original's.
const SERVICES_OTHER_ORDER: Masked<'static> = Masked {
    dynamic: &[],
    any_order: true,
};

#[track_caller]
fn assert_like(ours: &Value, recorded: &Value, mask: Masked<'_>, case: &str) {
    if let Err(difference) = compare(ours, recorded, mask, "result", false) {
        panic!(
            "{case}: {difference}\n ours:     {}\n recorded: {}",
            twitcherctl::pyrepr::repr(ours),
            twitcherctl::pyrepr::repr(recorded)
        );
    }
}

fn compare(
    ours: &Value,
    recorded: &Value,
    mask: Masked<'_>,
    at: &str,
    dynamic: bool,
) -> Result<(), String> {
    match (ours, recorded) {
        (Value::Object(o), Value::Object(r)) => {
            let ours_keys: Vec<&String> = o.keys().collect();
            let mut recorded_keys: Vec<&String> = r.keys().collect();
            if mask.any_order {
                let mut sorted = ours_keys.clone();
                sorted.sort();
                recorded_keys.sort();
                if sorted != recorded_keys {
                    return Err(format!(
                        "{at}: members {sorted:?}, recorded {recorded_keys:?}"
                    ));
                }
            } else if ours_keys != recorded_keys {
                return Err(format!(
                    "{at}: members {ours_keys:?}, recorded {recorded_keys:?}"
                ));
            }
            for (key, value) in o {
                let dynamic = mask.dynamic.contains(&key.as_str());
                compare(value, &r[key], mask, &format!("{at}.{key}"), dynamic)?;
            }
            Ok(())
        }
        (Value::Array(o), Value::Array(r)) => {
            if o.len() != r.len() {
                return Err(format!("{at}: {} items, recorded {}", o.len(), r.len()));
            }
            for (i, (o, r)) in o.iter().zip(r).enumerate() {
                compare(o, r, mask, &format!("{at}[{i}]"), false)?;
            }
            Ok(())
        }
        _ if dynamic => {
            if kind(ours) == kind(recorded) {
                Ok(())
            } else {
                Err(format!(
                    "{at}: {} {ours}, recorded {} {recorded}",
                    kind(ours),
                    kind(recorded)
                ))
            }
        }
        (Value::Number(o), Value::Number(r)) if o.is_f64() != r.is_f64() => Err(format!(
            "{at}: {ours} ({}), recorded {recorded} ({})",
            kind(ours),
            kind(recorded)
        )),
        _ if ours == recorded => Ok(()),
        _ => Err(format!("{at}: {ours}, recorded {recorded}")),
    }
}

/// What a masked value must share with the recorded one: its type and, for text, its
/// length and alphabet (32 hex digits, 30 letters and digits, …).
fn kind(value: &Value) -> String {
    match value {
        Value::String(s) => {
            let alphabet = if s
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            {
                "hex"
            } else if s.bytes().all(|b| b.is_ascii_alphanumeric()) {
                "alphanumeric"
            } else {
                "text"
            };
            format!("{}-char {alphabet} str", s.chars().count())
        }
        Value::Number(n) if n.is_f64() => "float".into(),
        Value::Number(_) => "int".into(),
        Value::Bool(_) => "bool".into(),
        Value::Null => "None".into(),
        Value::Array(_) => "list".into(),
        Value::Object(_) => "dict".into(),
    }
}

/// A text member of a result.
#[track_caller]
fn text(value: &Value, key: &str) -> String {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("no text {key} in {value}"))
        .to_owned()
}

/// `(recorded, ours)` pairs for the members `keys` of two results.
fn learnt(recorded: &Value, ours: &Value, keys: &[&str]) -> Vec<(String, String)> {
    keys.iter()
        .map(|k| (text(recorded, k), text(ours, k)))
        .collect()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `expires_at` is about `now + seconds`.
#[track_caller]
fn assert_expires_in(expires_at: f64, seconds: i64, started: i64) {
    let range = (started + seconds - 2) as f64..=(now() + seconds + 2) as f64;
    assert!(
        range.contains(&expires_at),
        "expires_at {expires_at} not in {range:?}"
    );
}

/// A random service name as twitcherctl makes them (D-CTL-NAMES).
#[track_caller]
fn assert_random_name(name: &str) {
    let parts: Vec<&str> = name.split('_').collect();
    assert!(
        parts.len() == 2
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase())),
        "{name:?} is not an adjective_bird name"
    );
}

/// A service as listed in a recording, for seeding the store.
fn service_from(value: &Value) -> Service {
    Service {
        name: text(value, "name"),
        url: text(value, "url"),
        service_type: text(value, "type").into(),
        purl: text(value, "purl"),
        public: value["public"].as_bool().expect("public"),
        auth: text(value, "auth").into(),
        verify: value["verify"].as_bool().expect("verify"),
    }
}

fn service(name: &str, url: &str, service_type: &str) -> Service {
    Service {
        service_type: service_type.into(),
        ..Service::new(name, url)
    }
}

// ================================================================ Python literals

/// Parses a Python literal as `str()` prints it (dict, list, str, int, float, True,
/// False, None) into JSON, dict member order kept.
fn py(text: &str) -> Result<Value, String> {
    let mut parser = Py {
        chars: text.chars().collect(),
        at: 0,
    };
    let value = parser.value()?;
    parser.blank();
    if parser.at != parser.chars.len() {
        return Err(format!("trailing text at {}", parser.at));
    }
    Ok(value)
}

struct Py {
    chars: Vec<char>,
    at: usize,
}

impl Py {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn next(&mut self) -> Result<char, String> {
        let c = self.peek().ok_or("unexpected end")?;
        self.at += 1;
        Ok(c)
    }

    fn blank(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
    }

    fn expect(&mut self, wanted: char) -> Result<(), String> {
        self.blank();
        match self.next()? {
            c if c == wanted => Ok(()),
            c => Err(format!(
                "expected {wanted:?} at {}, found {c:?}",
                self.at - 1
            )),
        }
    }

    /// Items up to `close`, separated by commas.
    fn items(
        &mut self,
        close: char,
        mut item: impl FnMut(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        self.blank();
        if self.peek() == Some(close) {
            self.at += 1;
            return Ok(());
        }
        loop {
            item(self)?;
            self.blank();
            match self.next()? {
                ',' => {}
                c if c == close => return Ok(()),
                c => return Err(format!("expected ',' or {close:?}, found {c:?}")),
            }
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        self.blank();
        match self.peek().ok_or("unexpected end")? {
            '{' => {
                self.at += 1;
                let mut map = Map::new();
                self.items('}', |p| {
                    p.blank();
                    let key = p.string()?;
                    p.expect(':')?;
                    let value = p.value()?;
                    map.insert(key, value);
                    Ok(())
                })?;
                Ok(Value::Object(map))
            }
            '[' => {
                self.at += 1;
                let mut list = Vec::new();
                self.items(']', |p| {
                    list.push(p.value()?);
                    Ok(())
                })?;
                Ok(Value::Array(list))
            }
            '\'' | '"' => Ok(Value::String(self.string()?)),
            c if c.is_ascii_alphabetic() => {
                let start = self.at;
                while self.peek().is_some_and(|c| c.is_ascii_alphanumeric()) {
                    self.at += 1;
                }
                match self.chars[start..self.at]
                    .iter()
                    .collect::<String>()
                    .as_str()
                {
                    "True" => Ok(Value::Bool(true)),
                    "False" => Ok(Value::Bool(false)),
                    "None" => Ok(Value::Null),
                    word => Err(format!("unknown name {word}")),
                }
            }
            _ => {
                let start = self.at;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_digit() || "+-.eE".contains(c))
                {
                    self.at += 1;
                }
                let number: String = self.chars[start..self.at].iter().collect();
                if number.contains(['.', 'e', 'E']) {
                    let f: f64 = number.parse().map_err(|e| format!("{number}: {e}"))?;
                    Number::from_f64(f)
                        .map(Value::Number)
                        .ok_or_else(|| format!("{number}: not finite"))
                } else {
                    let i: i64 = number.parse().map_err(|e| format!("{number:?}: {e}"))?;
                    Ok(Value::from(i))
                }
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let quote = self.next()?;
        if quote != '\'' && quote != '"' {
            return Err(format!("expected a string at {}", self.at - 1));
        }
        let mut out = String::new();
        loop {
            match self.next()? {
                c if c == quote => return Ok(out),
                '\\' => match self.next()? {
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'x' => out.push(self.hex(2)?),
                    'u' => out.push(self.hex(4)?),
                    'U' => out.push(self.hex(8)?),
                    c => out.push(c),
                },
                c => out.push(c),
            }
        }
    }

    fn hex(&mut self, digits: usize) -> Result<char, String> {
        let mut code = 0u32;
        for _ in 0..digits {
            code = code * 16 + self.next()?.to_digit(16).ok_or("bad escape")?;
        }
        char::from_u32(code).ok_or_else(|| "bad escape".into())
    }
}

#[test]
fn python_literals_parse() {
    let value = py("{'a': [1, 2.5, True, None], 'b\\'c': \"it's\", 'd': {}, 'e': []}").unwrap();
    assert_eq!(
        value,
        json!({"a": [1, 2.5, true, null], "b'c": "it's", "d": {}, "e": []})
    );
    let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["a", "b'c", "d", "e"]);
    assert!(py("{'a': 1").is_err());
    assert!(py("[1] x").is_err());
}

#[test]
fn comparison_is_strict_outside_the_mask() {
    let recorded = py("{'access_token': '5ba95cee9ce34a8197132b1fc586610f', 'expires_at': 1795899866, 'public': False}").unwrap();
    let ok = py("{'access_token': '0123456789abcdef0123456789abcdef', 'expires_at': 1700000000, 'public': False}").unwrap();
    assert!(compare(&ok, &recorded, XMLRPC_TOKEN, "r", false).is_ok());
    for bad in [
        // member order
        "{'expires_at': 1700000000, 'access_token': '0123456789abcdef0123456789abcdef', 'public': False}",
        // a fixed value
        "{'access_token': '0123456789abcdef0123456789abcdef', 'expires_at': 1700000000, 'public': True}",
        // a masked value of another kind: length, alphabet, int vs float
        "{'access_token': '0123456789abcdef', 'expires_at': 1700000000, 'public': False}",
        "{'access_token': 'ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ', 'expires_at': 1700000000, 'public': False}",
        "{'access_token': '0123456789abcdef0123456789abcdef', 'expires_at': 1700000000.5, 'public': False}",
        // a missing member
        "{'access_token': '0123456789abcdef0123456789abcdef', 'expires_at': 1700000000}",
    ] {
        assert!(
            compare(&py(bad).unwrap(), &recorded, XMLRPC_TOKEN, "r", false).is_err(),
            "{bad}"
        );
    }
    let reordered = py("[{'b': 1, 'a': 2}]").unwrap();
    assert!(
        compare(
            &reordered,
            &py("[{'a': 2, 'b': 1}]").unwrap(),
            SERVICES_OTHER_ORDER,
            "r",
            false
        )
        .is_ok()
    );
    assert!(
        compare(
            &reordered,
            &py("[{'a': 2, 'b': 1}]").unwrap(),
            EXACT,
            "r",
            false
        )
        .is_err()
    );
    assert!(
        compare(
            &reordered,
            &py("[{'a': 1, 'b': 2}]").unwrap(),
            SERVICES_OTHER_ORDER,
            "r",
            false
        )
        .is_err()
    );
}

// ================================================================ T05: XML-RPC (0.5 CLI)

/// Cases 30, 31: `gentoken`, `gentoken -H 24`.
#[test]
fn t05_gentoken() {
    let server = Server::t05();
    for (case, hours) in [("30-ctl-gentoken", 1), ("31-ctl-gentoken-H24", 24)] {
        let recorded = &t05(case)[0];
        let started = now();
        let ours = server.replay(recorded).result();
        assert_like(&ours, &recorded.result(), XMLRPC_TOKEN, case);
        let expires_at = ours["expires_at"].as_i64().unwrap();
        assert_expires_in(expires_at as f64, hours * 3600, started);
        assert_eq!(
            server.xmlrpc_token_expiry(&text(&ours, "access_token")),
            Some(expires_at),
            "{case}: the token is stored with the printed expiry"
        );
    }
}

/// Cases 32, 33, 34, 37, 38: register (plain, every option, no name), list, unregister,
/// clear, in the recorded order.
#[test]
fn t05_registry() {
    let server = Server::t05();
    // Registered before case 32 in the recording, over XML-RPC without data.
    server.save(&Service::new("untyped", "http://h/w"));

    let r32 = &t05("32-ctl-register")[0];
    assert_like(
        &server.replay(r32).result(),
        &r32.result(),
        EXACT,
        &r32.case,
    );
    assert_eq!(
        server.service("emu"),
        Some(service("emu", "http://127.0.0.1:15056/wps", "wps"))
    );

    let r33 = t05("33-ctl-register-options");
    assert_like(
        &server.replay(&r33[0]).result(),
        &r33[0].result(),
        EXACT,
        &r33[0].case,
    );
    assert_eq!(
        server.service("emu_opts"),
        Some(Service {
            purl: "https://example.org/emu".into(),
            public: true,
            auth: "cert".into(),
            verify: false,
            ..service("emu_opts", "http://127.0.0.1:15056/wps", "wps")
        })
    );
    let ours = server.replay(&r33[1]).result();
    let name = text(&ours, "name");
    assert_random_name(&name);
    let random = [("amazing_snowfinch".to_owned(), name.clone())];
    assert_like(&ours, &r33[1].with(&random).result(), EXACT, &r33[1].case);
    assert_eq!(
        server.service(&name),
        Some(service(&name, "http://127.0.0.1:15056/wps", "wps"))
    );

    let r34 = t05("34-ctl-list")[0].with(&random);
    assert_like(
        &server.replay(&r34).result(),
        &r34.result(),
        EXACT,
        &r34.case,
    );

    // The originals logged True/False; we print them (D-CTL-OUTPUT).
    let r37 = t05("37-ctl-unregister");
    assert_like(
        &server.replay(&r37[0]).result(),
        &r37[0].result(),
        EXACT,
        &r37[0].case,
    );
    assert_eq!(server.service("emu"), None);
    assert_like(
        &server.replay(&r37[1]).result(),
        &r37[1].result(),
        EXACT,
        &r37[1].case,
    );
    assert_eq!(server.services().len(), 3);

    let r38 = t05("38-ctl-clear");
    assert_like(
        &server.replay(&r38[0]).result(),
        &r38[0].result(),
        EXACT,
        &r38[0].case,
    );
    assert_eq!(server.services(), []);
    assert_like(
        &server.replay(&r38[1]).result(),
        &r38[1].result(),
        EXACT,
        &r38[1].case,
    );
}

/// Cases 35, 36: revoke a token, an unknown one, all of them; `revoke` alone.
#[test]
fn t05_revoke() {
    let server = Server::t05();
    let token = text(&server.run(&["gentoken"]).result(), "access_token");
    let r35 = t05("35-ctl-revoke");
    // The recorded token came from generate_token() (the transcript's SETUP).
    let mine = [(r35[0].argv.last().unwrap().clone(), token.clone())];
    let revoke = r35[0].with(&mine);
    assert_like(
        &server.replay(&revoke).result(),
        &revoke.result(),
        EXACT,
        &revoke.case,
    );
    assert_eq!(server.xmlrpc_token_expiry(&token), None, "revoked");
    assert_like(
        &server.replay(&r35[1]).result(),
        &r35[1].result(),
        EXACT,
        &r35[1].case,
    );

    let tokens: Vec<String> = (0..2)
        .map(|_| text(&server.run(&["gentoken"]).result(), "access_token"))
        .collect();
    let r36 = t05("36-ctl-revoke-all");
    assert_like(
        &server.replay(&r36[0]).result(),
        &r36[0].result(),
        EXACT,
        &r36[0].case,
    );
    for token in &tokens {
        assert_eq!(server.xmlrpc_token_expiry(token), None, "all revoked");
    }
    // `revoke` with neither token nor -A: a usage error (D-CTL-SYNTAX); 0.5 crashed.
    server.replay(&r36[1]).usage_error();
}

/// Case 39: no command, a one-character name, the server down, help, a bad option.
#[test]
fn t05_errors() {
    let server = Server::t05();
    let r39 = t05("39-ctl-errors");

    // No command: nothing to do (0.5 logged `None`).
    let nothing = server.replay(&r39[0]);
    assert_eq!(
        (nothing.code, nothing.stdout.as_str()),
        (0, ""),
        "{nothing:#?}"
    );

    // A too short name is an XML-RPC fault (D-RPC-FAULTS), reported in one line.
    let error = server.replay(&r39[1]).error("register the service");
    assert_mentions(
        &error,
        &["name must have at least 2 chars.", "XML-RPC fault -32500"],
    );
    assert_eq!(server.services(), []);

    // Port 1: connection refused.
    assert_eq!(r39[2].argv[1], "http://127.0.0.1:1");
    let error = server.replay(&r39[2]).error("list services");
    assert_mentions(
        &error,
        &["cannot reach http://127.0.0.1:1/RPC2", "-s/--serverurl"],
    );

    // Help texts are clap's (D-CTL-SYNTAX).
    for run in &r39[3..5] {
        let help = server.replay(run);
        assert_eq!(help.code, run.exit, "{help:#?}");
        assert!(help.stdout.contains("Usage: twitcherctl"), "{help:#?}");
        assert!(help.stderr.is_empty(), "{help:#?}");
    }
    assert!(
        server
            .replay(&r39[4])
            .stdout
            .contains("-H, --valid-in-hours <HOURS>")
    );

    let bogus = server.replay(&r39[5]);
    assert_eq!(r39[5].exit, 2);
    bogus.usage_error();
    assert!(bogus.stderr.contains("--bogus"), "{bogus:#?}");
}

/// Case 89, first and last runs: against `twitcher-auth.ini` (admin / s3cret).
#[test]
fn t05_auth_list() {
    let server = Server::t05_auth();
    let r89 = t05("89-ctl-auth");
    for listed in r89[0].result().as_array().unwrap() {
        server.save(&service_from(listed));
    }
    assert_eq!(server.services().len(), 34);

    // Without credentials: 0.5 sent nouser:nopass, which T05 took; /RPC2 now wants the
    // real ones (D-RPC-AUTH, D-CTL-PROMPTS), so twitcherctl reads over REST, which is
    // open (D-REST-TOKENS) and lists members in the REST order (D-CTL-TRANSPORT).
    let ours = server.replay(&r89[0]).result();
    assert_like(&ours, &r89[0].result(), SERVICES_OTHER_ORDER, &r89[0].case);

    // The right credentials: REST (D-CTL-TRANSPORT), the same services.
    let ours = server.replay(&r89[2]).result();
    assert_like(&ours, &r89[2].result(), SERVICES_OTHER_ORDER, &r89[2].case);
    assert_eq!(
        ours.as_array().unwrap()[0]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["url", "name", "type", "purl", "auth", "public", "verify"]
    );
}

/// Case 89, second run: `-u admin -p wrong list` (T05 accepted any credentials).
#[test]
fn t05_auth_wrong_password_is_an_error() {
    let server = Server::t05_auth();
    server.save(&Service::new("emu", "http://127.0.0.1:15056/wps"));
    let r89 = t05("89-ctl-auth");
    let error = server.replay(&r89[1]).error("list services");
    assert_mentions(&error, &["bad or missing credentials", "401 Unauthorized"]);
    assert!(!error.contains("wrong"), "no password in messages: {error}");
}

/// Every XML-RPC-era command with `-u/-p` against `twitcher-auth.ini`: the right
/// credentials work, none or wrong ones give a one-line error and change nothing.
#[test]
fn t05_auth_every_command() {
    let server = Server::t05_auth();
    let right = ["-u", "admin", "-p", "s3cret"];
    let with = |credentials: &[&str], args: &[&str]| {
        let argv: Vec<&str> = credentials.iter().chain(args).copied().collect();
        server.run(&argv)
    };

    let started = now();
    let token = with(&right, &["gentoken", "-H", "2"]).result();
    assert_like(
        &token,
        &t05("31-ctl-gentoken-H24")[0].result(),
        XMLRPC_TOKEN,
        "gentoken",
    );
    assert_expires_in(token["expires_at"].as_f64().unwrap(), 7200, started);
    let token = text(&token, "access_token");
    assert!(server.xmlrpc_token_expiry(&token).is_some());

    let registered = with(
        &right,
        &["register", "--name", "emu", "http://127.0.0.1:15056/wps"],
    )
    .result();
    assert_like(
        &registered,
        &t05("32-ctl-register")[0].result(),
        SERVICES_OTHER_ORDER,
        "register",
    );
    assert!(server.service("emu").is_some());

    for (credentials, problem) in [
        (&[][..], "no credentials"),
        (&["-u", "admin", "-p", "wrong"][..], "wrong password"),
    ] {
        for (args, what) in [
            (&["gentoken"][..], "generate an XML-RPC token"),
            (&["revoke", "-A"], "revoke all tokens"),
            (
                &["register", "--name", "other", "http://h/w"],
                "register the service",
            ),
            (&["unregister", "emu"], "unregister the service"),
            (&["clear"], "clear the services"),
        ] {
            let error = with(credentials, args).error(what);
            assert_mentions(&error, &["bad or missing credentials", "401 Unauthorized"]);
            assert!(
                !error.contains("wrong"),
                "{problem}: no password in messages: {error}"
            );
        }
    }
    assert_eq!(server.services().len(), 1, "nothing changed");
    assert!(
        server.xmlrpc_token_expiry(&token).is_some(),
        "nothing revoked"
    );

    assert_eq!(with(&right, &["revoke", &token]).result(), json!(true));
    assert_eq!(server.xmlrpc_token_expiry(&token), None);
    assert_eq!(with(&right, &["revoke", "-A"]).result(), json!(true));
    assert_eq!(with(&right, &["unregister", "emu"]).result(), json!(true));
    assert_eq!(with(&right, &["unregister", "emu"]).result(), json!(false));
    with(&right, &["register", "http://h/w"]).result();
    assert_eq!(server.services().len(), 1);
    assert_eq!(with(&right, &["clear"]).result(), json!(true));
    assert_eq!(server.services(), []);
    assert_eq!(with(&right, &["list"]).result(), json!([]));
}

// ================================================================ T06: OAuth2 and REST (0.6 CLI)

/// New clients get the scopes `compute register` (D-OAUTH-SCOPES); 0.6 gave `compute`.
fn with_our_scopes(mut client: Value) -> Value {
    client["scope"] = json!(["compute", "register"]);
    client
}

/// Registers a client through the CLI; returns `(client_id, client_secret)`.
fn add_client(server: &Server) -> (String, String) {
    let client = server
        .run(&["-u", "demo", "-p", "demo", "add", "--name", "demo_app"])
        .result();
    (text(&client, "client_id"), text(&client, "client_secret"))
}

/// An OAuth2 token through the CLI.
fn oauth_token(server: &Server, (id, secret): &(String, String), scopes: &[&str]) -> String {
    let mut args = vec!["gentoken", "-i", id, "-s", secret];
    if !scopes.is_empty() {
        args.push("--scope");
        args.extend(scopes);
    }
    text(&server.run(&args).result(), "access_token")
}

/// A recorded gentoken run with our client in place of the recorded one.
fn with_client(recorded: &Recorded, (id, secret): &(String, String)) -> Recorded {
    recorded.with(&[
        (recorded.option("-i").to_owned(), id.clone()),
        (recorded.option("-s").to_owned(), secret.clone()),
    ])
}

/// Cases 09 (the tutorial's `add` in 0.6.0 syntax), 41 (`--redirect-uri`), 42 (no
/// name), 43 (wrong password), 07 (credentials but no command), and `add -r URI`.
#[test]
fn t06_add() {
    let server = Server::t06();
    for case in ["09-tut-add", "41-ctl-add-redirect", "42-ctl-add-noname"] {
        let recorded = t06(case);
        let ours = server.replay(&recorded).result();
        let expected = with_our_scopes(recorded.result());
        assert_like(&ours, &expected, NEW_CLIENT, case);
        let stored = server
            .client(&text(&ours, "client_id"))
            .expect("client stored");
        assert_eq!(stored.client_secret, text(&ours, "client_secret"), "{case}");
        assert_eq!(stored.name, text(&expected, "name"), "{case}");
        assert_eq!(
            stored.redirect_uris,
            text(&expected, "redirect_uri"),
            "{case}"
        );
        assert_eq!(stored.default_scope, "compute register", "{case}");
    }

    let ours = server
        .run(&[
            "-u",
            "demo",
            "-p",
            "demo",
            "add",
            "-r",
            "http://localhost/app2",
            "-n",
            "app2",
        ])
        .result();
    assert_like(
        &ours,
        &with_our_scopes(t06("41-ctl-add-redirect").result()),
        NEW_CLIENT,
        "add -r",
    );

    let error = server
        .replay(&t06("43-ctl-add-wrongpw"))
        .error("add the client application");
    assert_mentions(
        &error,
        &[
            "bad or missing credentials",
            "/oauth/client",
            "401 Unauthorized",
        ],
    );
    let error = server
        .run(&["add", "--name", "x"])
        .error("add the client application");
    assert_mentions(&error, &["bad or missing credentials", "-u/--username"]);

    let nothing = server.replay(&t06("07-ctl-no-command"));
    assert_eq!(
        (nothing.code, nothing.stdout.as_str()),
        (0, ""),
        "{nothing:#?}"
    );
}

/// Cases 37 (default scope), 135 (`--scope register`), ctl-wire 06 (`--scope compute
/// register`), 10 and 19 (the tutorial's scopes), 35 (wrong secret), 36 (unknown client),
/// 39 and 40 (missing id), 52 (server down).
#[test]
fn t06_gentoken() {
    let server = Server::t06();
    let client = add_client(&server);
    // The run whose result each case is compared with.
    let granted = t06("37-ctl-gentoken-default-scope").result();
    let with_scope = |scope: &[&str]| {
        let mut expected = granted.clone();
        expected["scope"] = json!(scope);
        expected
    };
    let cases = [
        ("37-ctl-gentoken-default-scope", granted.clone(), "compute"),
        (
            "135-ctl-gentoken-register-ok",
            t06("135-ctl-gentoken-register-ok").result(),
            "register",
        ),
        // Recorded against the wire helper, which answered an error.
        (
            "ctl-wire/06-gentoken-two-scopes",
            with_scope(&["compute", "register"]),
            "compute register",
        ),
        // T06 refused: its client had only `compute` (D-OAUTH-SCOPES).
        (
            "10-tut-gentoken-register",
            with_scope(&["register"]),
            "register",
        ),
        (
            "19-tut-gentoken-compute",
            t06("19-tut-gentoken-compute").result(),
            "compute",
        ),
    ];
    for (case, expected, scope) in cases {
        let recorded = with_client(&t06(case), &client);
        let started = now();
        let ours = server.replay(&recorded).result();
        assert_like(&ours, &expected, OAUTH_TOKEN, case);
        assert_expires_in(ours["expires_at"].as_f64().unwrap(), 3600, started);
        let stored = server
            .oauth_token(&text(&ours, "access_token"))
            .expect("token stored");
        assert_eq!(
            (stored.scope.as_str(), stored.client_id.as_str()),
            (scope, client.0.as_str()),
            "{case}"
        );
    }

    // -S is --scope.
    let ours = server
        .run(&[
            "gentoken", "-i", &client.0, "-s", &client.1, "-S", "register", "compute",
        ])
        .result();
    assert_like(
        &ours,
        &with_scope(&["register", "compute"]),
        OAUTH_TOKEN,
        "-S",
    );

    // OAuth errors read as 0.6 printed them, without the trailing space (D-CTL-ERRORS).
    let wrong_secret = t06("35-ctl-gentoken-wrongsecret");
    let wrong_secret =
        wrong_secret.with(&[(wrong_secret.option("-i").to_owned(), client.0.clone())]);
    assert_eq!(wrong_secret.option("-s"), "wrong");
    for recorded in [wrong_secret, t06("36-ctl-gentoken-unknownclient")] {
        let error = server.replay(&recorded).error("generate an OAuth2 token");
        assert_eq!(
            error,
            "twitcherctl: could not generate an OAuth2 token: (invalid_client)"
        );
    }

    // `gentoken` alone is XML-RPC's (D-CTL-TRANSPORT), which wants the management user.
    let error = server
        .replay(&t06("39-ctl-gentoken-prompt-eof"))
        .error("generate an XML-RPC token");
    assert_mentions(&error, &["bad or missing credentials", "/RPC2"]);
    // A missing client id is asked for on a terminal only (D-CTL-PROMPTS).
    let stdin = t06("40-ctl-gentoken-stdin").with(&[(
        t06("37-ctl-gentoken-default-scope").option("-i").to_owned(),
        client.0.clone(),
    )]);
    assert_eq!(stdin.stdin, format!("{}\n", client.0));
    let error = server.replay(&stdin).error("generate an OAuth2 token");
    assert_mentions(&error, &["client ID is missing", "-i/--client-id"]);

    let error = server
        .replay(&t06("52-ctl-gentoken-server-down"))
        .error("generate an OAuth2 token");
    assert_mentions(&error, &["cannot reach http://127.0.0.1:1/oauth/token"]);
}

/// The tutorial in 0.6.0's own syntax (`--username demo --password demo` before the
/// command): cases 12, 14, 23, 32, then 34 (no `-k`) and 15 (no credentials).
#[test]
fn t06_tutorial_in_060_syntax() {
    let server = Server::t06();
    let emu = |auth: &str| Service {
        auth: auth.into(),
        ..service("emu", "http://localhost:15060/wps", "wps")
    };
    for (case, auth) in [
        ("12-tut-register", "token"),
        ("14-tut-list", "token"),
        ("23-tut-register-cert", "cert"),
        ("32-tut-register-token-again", "token"),
        ("34-ctl-list-nok", "token"),
    ] {
        let recorded = t06(case);
        assert_like(
            &server.replay(&recorded).result(),
            &recorded.result(),
            EXACT,
            case,
        );
        assert_eq!(server.services(), [emu(auth)], "{case}");
    }
    // 0.6 asked for a username and password; we do not prompt (D-CTL-PROMPTS) and read
    // anonymously: XML-RPC wants the management user, REST reads are open.
    let recorded = t06("15-ctl-list-prompt-stdin");
    assert_like(
        &server.replay(&recorded).result(),
        &recorded.result(),
        EXACT,
        "15-ctl-list-prompt-stdin",
    );
}

/// Case 33: `-u demo -p nope list`.
#[test]
fn t06_list_with_wrong_password_is_an_error() {
    let server = Server::t06();
    server.save(&Service::new("emu", "http://localhost:15060/wps"));
    let error = server
        .replay(&t06("33-ctl-list-wrongpw"))
        .error("list services");
    assert_mentions(&error, &["bad or missing credentials", "401 Unauthorized"]);
    assert!(!error.contains("nope"), "no password in messages: {error}");
}

/// Cases 127 (empty list), 129 (register emu), 45 (every option), 47 (ftp URL), 48
/// (wrong password), ctl-wire 11 (no name), 49 and 50 (unregister), 128 (clear), 51
/// (server down).
#[test]
fn t06_registry() {
    let server = Server::t06();
    let empty = t06("127-ctl-list-empty");
    assert_like(
        &server.replay(&empty).result(),
        &empty.result(),
        EXACT,
        &empty.case,
    );

    let emu = t06("129-ctl-register-emu");
    assert_like(
        &server.replay(&emu).result(),
        &emu.result(),
        EXACT,
        &emu.case,
    );
    assert_eq!(
        server.services(),
        [service("emu", "http://localhost:15060/wps", "wps")]
    );

    // Name sanitized, query dropped, `--auth public` makes it public.
    let options = t06("45-ctl-register-options");
    assert_like(
        &server.replay(&options).result(),
        &options.result(),
        EXACT,
        &options.case,
    );
    let stored = server.service("opt_service_1").expect("stored");
    assert_eq!(
        stored,
        Service {
            purl: "http://public.example/wms".into(),
            auth: "public".into(),
            verify: false,
            ..service("opt_service_1", "http://127.0.0.1:15160/h", "wms")
        }
    );
    assert!(stored.is_public());

    // Not an http(s) URL: nothing registered, `{}`.
    let ftp = t06("47-ctl-register-badurl");
    assert_like(
        &server.replay(&ftp).result(),
        &ftp.result(),
        EXACT,
        &ftp.case,
    );
    assert_eq!(server.service("ftpsvc"), None);

    let error = server
        .replay(&t06("48-ctl-register-wrongpw"))
        .error("register the service");
    assert_mentions(
        &error,
        &[
            "bad or missing credentials",
            "/services",
            "401 Unauthorized",
        ],
    );
    assert_eq!(server.service("x1"), None);

    let noname = server.replay(&t06("ctl-wire/11-register-noname")).result();
    let name = text(&noname, "name");
    assert_random_name(&name);
    let mut expected = emu.result();
    expected["name"] = json!(name);
    expected["url"] = json!("http://localhost:5000/wps");
    assert_like(&noname, &expected, EXACT, "ctl-wire/11-register-noname");
    assert!(server.service(&name).is_some());

    // 0.6 printed nothing for True/False (exit 1 / 0); we print them (D-CTL-OUTPUT).
    let unregister = t06("49-ctl-unregister");
    let unregister = unregister.with(&[(unregister.argv.last().unwrap().clone(), name.clone())]);
    assert_eq!(server.replay(&unregister).result(), json!(true));
    assert_eq!(server.service(&name), None);
    assert_eq!(
        server.replay(&t06("50-ctl-unregister-missing")).result(),
        json!(false)
    );
    assert_eq!(server.services().len(), 2);

    assert_eq!(server.replay(&t06("128-ctl-clear")).result(), json!(true));
    assert_eq!(server.services(), []);

    let error = server
        .replay(&t06("51-ctl-server-down"))
        .error("list services");
    assert_mentions(&error, &["cannot reach http://127.0.0.1:1/services"]);
}

/// Cases 01–06: help (clap's texts, D-CTL-SYNTAX).
#[test]
fn t06_help() {
    let server = Server::t06();
    for case in [
        "01-ctl-help",
        "02-ctl-help-add",
        "03-ctl-help-gentoken",
        "04-ctl-help-register",
        "05-ctl-help-list",
        "06-ctl-help-unregister",
    ] {
        let recorded = t06(case);
        let help = server.replay(&recorded);
        assert_eq!(help.code, recorded.exit, "{help:#?}");
        assert!(help.stdout.contains("Usage: twitcherctl"), "{help:#?}");
        assert!(help.stderr.is_empty(), "{help:#?}");
    }
}

// ================================================================ the tutorial as quoted (071f38c)

/// The tutorial verbatim (`071f38c/` 01, 02, 03, 04, 09, 12) and what that CLI refused
/// or the server would not do (16–20); also 0.6.0's runs of the quoted form (08, 11, 22),
/// which 0.6.0's CLI rejected (D-CTL-SYNTAX).
#[test]
fn tutorial_as_quoted() {
    let server = Server::t06();
    let mut learnt_values: Vec<(String, String)> = Vec::new();

    // twitcherctl -k add --username demo --password demo --name demo_app
    let add = t06("071f38c/01-tut-add");
    let client = server.replay(&add).result();
    assert_like(&client, &add.result(), NEW_CLIENT, &add.case);
    learnt_values.extend(learnt(
        &add.result(),
        &client,
        &["client_id", "client_secret"],
    ));
    assert!(server.client(&text(&client, "client_id")).is_some());

    // twitcherctl -k gentoken -i ID -s SECRET --scope register
    let gentoken = t06("071f38c/02-tut-gentoken-register").with(&learnt_values);
    let register_token = server.replay(&gentoken).result();
    assert_like(
        &register_token,
        &gentoken.result(),
        OAUTH_TOKEN,
        &gentoken.case,
    );
    learnt_values.extend(learnt(
        &gentoken.result(),
        &register_token,
        &["access_token"],
    ));
    let register_token = text(&register_token, "access_token");
    assert_eq!(
        server.oauth_token(&register_token).expect("stored").scope,
        "register"
    );

    // twitcherctl -k -t TOKEN register --name emu URL
    let register = t06("071f38c/03-tut-register").with(&learnt_values);
    assert_eq!(register.option("-t"), register_token);
    assert_like(
        &server.replay(&register).result(),
        &register.result(),
        EXACT,
        &register.case,
    );
    assert_eq!(
        server.services(),
        [service("emu", "http://localhost:15060/wps", "wps")]
    );

    // twitcherctl -k list: XML-RPC wants the management user, REST reads are open, so the
    // list comes over REST, in REST's member order, as recorded.
    let list = t06("071f38c/04-tut-list");
    assert_like(
        &server.replay(&list).result(),
        &list.result(),
        EXACT,
        &list.case,
    );

    // twitcherctl -k gentoken -i ID -s SECRET --scope compute
    let gentoken = t06("071f38c/09-tut-gentoken-compute").with(&learnt_values);
    let compute_token = server.replay(&gentoken).result();
    assert_like(
        &compute_token,
        &gentoken.result(),
        OAUTH_TOKEN,
        &gentoken.case,
    );
    learnt_values.extend(learnt(
        &gentoken.result(),
        &compute_token,
        &["access_token"],
    ));
    let compute_token = text(&compute_token, "access_token");
    assert_eq!(
        server.oauth_token(&compute_token).expect("stored").scope,
        "compute"
    );

    // twitcherctl -k -t TOKEN register --name emu --auth cert URL
    let cert = t06("071f38c/12-tut-register-cert").with(&learnt_values);
    assert_like(
        &server.replay(&cert).result(),
        &cert.result(),
        EXACT,
        &cert.case,
    );
    assert_eq!(server.service("emu").expect("emu").auth, Auth::Cert);

    // A compute token cannot change the registry; 071f38c printed {"success": False} and
    // exited 1, we say why (exit 1).
    let wrong_scope = t06("071f38c/16-register-compute-token").with(&learnt_values);
    assert_eq!(wrong_scope.option("-t"), compute_token);
    let error = server.replay(&wrong_scope).error("register the service");
    assert_mentions(&error, &["401 Unauthorized", "-t/--token", "register"]);
    assert!(
        !error.contains(&compute_token),
        "no token in messages: {error}"
    );
    assert_eq!(server.service("other"), None);

    // Without any credentials, writes are refused (071f38c: {"success": False}).
    for (case, what) in [
        ("071f38c/17-register-no-token", "register the service"),
        ("071f38c/19-unregister-no-token", "unregister the service"),
        ("071f38c/20-clear-no-token", "clear the services"),
    ] {
        let error = server.replay(&t06(case)).error(what);
        assert_mentions(
            &error,
            &["bad or missing credentials", "-u/--username", "-t/--token"],
        );
    }
    assert_eq!(server.services().len(), 1, "emu still there");
    assert_eq!(server.service("emu").expect("emu").auth, Auth::Cert);

    // 0.6.0's syntax on the 071f38c CLI (rejected there).
    let v060 = t06("071f38c/18-v060-syntax-add");
    let mut expected = add.result();
    expected["name"] = json!("x");
    assert_like(
        &server.replay(&v060).result(),
        &expected,
        NEW_CLIENT,
        &v060.case,
    );

    // 0.6.0's CLI rejected the quoted forms (exit 2); ours runs them (D-CTL-SYNTAX).
    let add = t06("08-tut-add-071f38c-form");
    assert_like(
        &server.replay(&add).result(),
        &t06("071f38c/01-tut-add").result(),
        NEW_CLIENT,
        &add.case,
    );
    let subst = [("TOKEN".to_owned(), register_token.clone())];
    for (case, like) in [
        ("11-tut-register-071f38c-form", "12-tut-register"),
        ("22-tut-register-cert-071f38c-form", "23-tut-register-cert"),
    ] {
        let recorded = t06(case).with(&subst);
        assert_like(
            &server.replay(&recorded).result(),
            &t06(like).result(),
            EXACT,
            case,
        );
    }
    assert_eq!(server.service("emu").expect("emu").auth, Auth::Cert);
    // 0.6.0's run of `-k list` prompted and crashed on the closed stdin.
    let list = t06("13-tut-list-071f38c-form");
    let expected = json!([t06("23-tut-register-cert").result()]);
    assert_like(&server.replay(&list).result(), &expected, EXACT, &list.case);
}

/// The tutorial's compute token unlocks Execute on the proxy; without it, or with a
/// register-scope token (071f38c case 08), Execute is refused.
#[test]
fn compute_token_unlocks_execute() {
    let server = Server::t06();
    let client = add_client(&server);
    let register_token = oauth_token(&server, &client, &["register"]);
    let compute_token = oauth_token(&server, &client, &["compute"]);
    // Nothing listens there: a request that passes the security check gets 502.
    let backend = format!("{}/wps", closed_port_url());
    server
        .run(&["-t", &register_token, "register", "--name", "emu", &backend])
        .result();

    let execute = "/ows/proxy/emu?service=WPS&version=1.0.0&request=Execute&identifier=hello&DataInputs=name=tux";
    assert_eq!(server.proxy_get(execute, None), 401, "no token");
    assert_eq!(
        server.proxy_get(execute, Some(&register_token)),
        401,
        "register scope"
    );
    assert_eq!(
        server.proxy_get(execute, Some("not-a-token")),
        401,
        "unknown token"
    );
    assert_eq!(
        server.proxy_get(execute, Some(&compute_token)),
        502,
        "Bearer compute token"
    );
    assert_eq!(
        server.proxy_get(&format!("{execute}&access_token={compute_token}"), None),
        502,
        "access_token parameter"
    );
    // GetCapabilities needs no token at all.
    assert_eq!(
        server.proxy_get("/ows/proxy/emu?service=WPS&request=GetCapabilities", None),
        502
    );
}

/// A `register` token changes the registry; a `compute` token or an unknown one is
/// refused with a clear error; reads need no token.
#[test]
fn registry_writes_need_a_register_token() {
    let server = Server::t06();
    let client = add_client(&server);
    let register_token = oauth_token(&server, &client, &["register"]);
    let both = oauth_token(&server, &client, &["compute", "register"]);
    let compute_token = oauth_token(&server, &client, &[]);
    assert_eq!(
        server.oauth_token(&compute_token).expect("stored").scope,
        "compute"
    );

    let with = |token: &str, args: &[&str]| {
        let argv: Vec<&str> = ["-t", token].iter().chain(args).copied().collect();
        server.run(&argv)
    };
    let emu = with(
        &register_token,
        &["register", "--name", "emu", "http://localhost:5000/wps"],
    )
    .result();
    assert_eq!(text(&emu, "name"), "emu");
    with(
        &both,
        &["register", "--name", "emu2", "http://localhost:5000/wps"],
    )
    .result();
    assert_eq!(server.services().len(), 2);

    for token in [compute_token.as_str(), "not-a-token"] {
        for (args, what) in [
            (
                &["register", "--name", "other", "http://h/w"][..],
                "register the service",
            ),
            (&["unregister", "emu"], "unregister the service"),
            (&["clear"], "clear the services"),
        ] {
            let error = with(token, args).error(what);
            assert_mentions(
                &error,
                &["401 Unauthorized", "-t/--token", "scope register"],
            );
            assert!(!error.contains(token), "no token in messages: {error}");
        }
    }
    // Reads are open to any valid token (D-REST-TOKENS); an unknown one is refused.
    assert_eq!(
        with(&compute_token, &["list"])
            .result()
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let error = with("not-a-token", &["list"]).error("list services");
    assert_mentions(&error, &["401 Unauthorized", "-t/--token"]);
    assert_eq!(server.services().len(), 2, "nothing changed");

    assert_eq!(
        with(&register_token, &["unregister", "emu2"]).result(),
        json!(true)
    );
    assert_eq!(
        with(&register_token, &["unregister", "emu2"]).result(),
        json!(false)
    );
    assert_eq!(with(&register_token, &["clear"]).result(), json!(true));
    assert_eq!(server.services(), []);
}

// ================================================================ interfaces, output, errors

/// `rpcinterface = false`: the registry commands fall back to REST, and `--debug` says so;
/// XML-RPC-only commands fail with a clear message.
#[test]
fn without_xmlrpc_the_registry_falls_back_to_rest() {
    let server = Server::start(Config {
        rpcinterface: false,
        ..Config::default()
    });
    let register = server.run(&[
        "--debug",
        "register",
        "--name",
        "emu",
        "http://127.0.0.1:15056/wps",
    ]);
    assert_eq!(register.code, 0, "{register:#?}");
    // REST's answer, in REST's member order.
    let mut expected = t06("129-ctl-register-emu").result();
    expected["url"] = json!("http://127.0.0.1:15056/wps");
    assert_like(
        &py(register.stdout.trim_end()).unwrap(),
        &expected,
        EXACT,
        "register over REST",
    );
    assert_mentions(
        &register.stderr,
        &[
            &format!(
                "twitcherctl: debug: POST {}/RPC2 (no credentials)",
                server.url
            ),
            "-> 404 Not Found",
            "the XML-RPC interface is not available on this server",
            "trying the REST interface",
            &format!(
                "twitcherctl: debug: POST {}/services (no credentials)",
                server.url
            ),
            "-> 200 OK",
        ],
    );
    assert_eq!(
        server.services(),
        [service("emu", "http://127.0.0.1:15056/wps", "wps")]
    );

    let list = server.run(&["--debug", "list"]);
    assert_eq!(list.code, 0, "{list:#?}");
    assert_eq!(
        py(list.stdout.trim_end()).unwrap().as_array().map(Vec::len),
        Some(1)
    );
    assert_mentions(
        &list.stderr,
        &[
            "trying the REST interface",
            &format!("GET {}/services", server.url),
        ],
    );

    // Without --debug, nothing on stderr.
    assert_eq!(server.run(&["unregister", "emu"]).result(), json!(true));
    assert_eq!(server.run(&["clear"]).result(), json!(true));

    for (args, what) in [
        (&["gentoken"][..], "generate an XML-RPC token"),
        (&["revoke", "-A"], "revoke all tokens"),
        (&["revoke", "abc"], "revoke the token"),
    ] {
        let error = server.run(args).error(what);
        assert_mentions(
            &error,
            &[
                "the XML-RPC interface is not available on this server",
                "/RPC2 answered 404",
            ],
        );
    }

    // With credentials, REST is the first choice: no detour.
    let server = Server::start(Config {
        rpcinterface: false,
        ..Server::t06_config()
    });
    let list = server.run(&["--debug", "-u", "demo", "-p", "demo", "list"]);
    assert_eq!(list.code, 0, "{list:#?}");
    assert!(!list.stderr.contains("RPC2"), "{list:#?}");
    let list = server.run(&["--debug", "list"]);
    assert_eq!(list.code, 0, "{list:#?}");
    assert_mentions(&list.stderr, &["trying the REST interface"]);
}

/// `--json` prints the same results as JSON.
#[test]
fn json_output() {
    let server = Server::t06();
    let demo = ["--json", "-u", "demo", "-p", "demo"];
    let with = |args: &[&str]| {
        let argv: Vec<&str> = demo.iter().chain(args).copied().collect();
        server.run(&argv).json()
    };
    let client = with(&["add", "--name", "demo_app"]);
    assert_like(
        &client,
        &t06("071f38c/01-tut-add").result(),
        NEW_CLIENT,
        "add --json",
    );

    let token = server
        .run(&[
            "--json",
            "gentoken",
            "-i",
            &text(&client, "client_id"),
            "-s",
            &text(&client, "client_secret"),
            "-S",
            "register",
        ])
        .json();
    assert_like(
        &token,
        &t06("135-ctl-gentoken-register-ok").result(),
        OAUTH_TOKEN,
        "gentoken --json",
    );

    let emu = with(&["register", "--name", "emu", "http://localhost:15060/wps"]);
    assert_like(
        &emu,
        &t06("129-ctl-register-emu").result(),
        EXACT,
        "register --json",
    );
    assert_eq!(
        server.run(&["list", "--json"]).stdout,
        "[{\"url\":\"http://localhost:15060/wps\",\"name\":\"emu\",\"type\":\"wps\",\"purl\":\"\",\"auth\":\"token\",\"public\":false,\"verify\":true}]\n"
    );
    assert_eq!(with(&["unregister", "nosuch"]), json!(false));
    let xmlrpc = with(&["gentoken"]);
    assert_like(
        &xmlrpc,
        &t05("30-ctl-gentoken")[0].result(),
        XMLRPC_TOKEN,
        "XML-RPC gentoken --json",
    );
}

/// Nothing listening: every command fails with one line naming the URL, exit status 1.
#[test]
fn connection_refused() {
    let url = closed_port_url();
    for (args, what, path) in [
        (&["list"][..], "list services", "/RPC2"),
        (
            &["-u", "demo", "-p", "demo", "list"],
            "list services",
            "/services",
        ),
        (
            &["-t", "T", "register", "--name", "emu", "http://h/w"],
            "register the service",
            "/services",
        ),
        (
            &["-u", "demo", "-p", "demo", "add", "--name", "x"],
            "add the client application",
            "/oauth/client",
        ),
        (
            &["gentoken", "-i", "a", "-s", "b"],
            "generate an OAuth2 token",
            "/oauth/token",
        ),
        (&["gentoken"], "generate an XML-RPC token", "/RPC2"),
        (&["revoke", "-A"], "revoke all tokens", "/RPC2"),
    ] {
        let mut argv = vec!["-s".to_owned(), url.clone()];
        argv.extend(args.iter().map(|a| a.to_string()));
        let error = run_ctl(&argv, "").error(what);
        assert_mentions(
            &error,
            &[&format!("cannot reach {url}{path}"), "-s/--serverurl"],
        );
    }
}

/// Every recorded twitcherctl run is replayed above (this list is kept in step with the
/// transcripts' directories).
#[test]
fn every_recorded_command_line_is_covered() {
    const COVERED: &[&str] = &[
        // T05
        "30-ctl-gentoken",
        "31-ctl-gentoken-H24",
        "32-ctl-register",
        "33-ctl-register-options",
        "34-ctl-list",
        "35-ctl-revoke",
        "36-ctl-revoke-all",
        "37-ctl-unregister",
        "38-ctl-clear",
        "39-ctl-errors",
        "89-ctl-auth",
        // T06
        "01-ctl-help",
        "02-ctl-help-add",
        "03-ctl-help-gentoken",
        "04-ctl-help-register",
        "05-ctl-help-list",
        "06-ctl-help-unregister",
        "07-ctl-no-command",
        "08-tut-add-071f38c-form",
        "09-tut-add",
        "10-tut-gentoken-register",
        "11-tut-register-071f38c-form",
        "12-tut-register",
        "13-tut-list-071f38c-form",
        "14-tut-list",
        "15-ctl-list-prompt-stdin",
        "19-tut-gentoken-compute",
        "22-tut-register-cert-071f38c-form",
        "23-tut-register-cert",
        "32-tut-register-token-again",
        "33-ctl-list-wrongpw",
        "34-ctl-list-nok",
        "35-ctl-gentoken-wrongsecret",
        "36-ctl-gentoken-unknownclient",
        "37-ctl-gentoken-default-scope",
        "39-ctl-gentoken-prompt-eof",
        "40-ctl-gentoken-stdin",
        "41-ctl-add-redirect",
        "42-ctl-add-noname",
        "43-ctl-add-wrongpw",
        "45-ctl-register-options",
        "47-ctl-register-badurl",
        "48-ctl-register-wrongpw",
        "49-ctl-unregister",
        "50-ctl-unregister-missing",
        "51-ctl-server-down",
        "52-ctl-gentoken-server-down",
        "127-ctl-list-empty",
        "128-ctl-clear",
        "129-ctl-register-emu",
        "135-ctl-gentoken-register-ok",
        // 071f38c
        "01-tut-add",
        "02-tut-gentoken-register",
        "03-tut-register",
        "04-tut-list",
        "09-tut-gentoken-compute",
        "12-tut-register-cert",
        "16-register-compute-token",
        "17-register-no-token",
        "18-v060-syntax-add",
        "19-unregister-no-token",
        "20-clear-no-token",
    ];
    let mut missing = Vec::new();
    for dir in [
        "v056/transcripts",
        "v060/transcripts",
        "v060/transcripts/071f38c",
    ] {
        for entry in std::fs::read_dir(golden(dir)).expect("transcripts") {
            let path = entry.expect("entry").path();
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            let is_run = match path.extension().and_then(|e| e.to_str()) {
                Some("json") => std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                    .and_then(|v| v["command"].as_str().map(|c| c.starts_with("twitcherctl")))
                    .unwrap_or(false),
                Some("txt") if dir.starts_with("v056") => {
                    std::fs::read_to_string(&path).is_ok_and(|t| t.contains("\ntwitcherctl "))
                }
                _ => false,
            };
            if is_run && !COVERED.contains(&stem.as_str()) {
                missing.push(format!("{dir}/{stem}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "recorded twitcherctl runs not replayed: {missing:?}"
    );
}
