//! Every twitcherctl command line recorded in the golden transcripts (T05 `v056`, T06
//! `v060`, the tutorial-era `071f38c`, `ctl-wire`) and written in the tutorial parses to
//! the intended operation.

use clap::error::ErrorKind;
use twitcherctl::cli::{Cli, Invocation, Operation, Registration};
use twitcherctl::client::{Config, Service};

const T05: &str = "http://127.0.0.1:18056";
const T06: &str = "http://127.0.0.1:18060";
const WIRE: &str = "http://127.0.0.1:15160/ctl";
const LOCAL: &str = "http://localhost:8000";

fn parse(args: &[&str]) -> Invocation {
    let argv = std::iter::once("twitcherctl").chain(args.iter().copied());
    Cli::try_parse_invocation(argv).unwrap_or_else(|e| panic!("{args:?} did not parse:\n{e}"))
}

fn parse_line(line: &str) -> Invocation {
    parse(&line.split_whitespace().collect::<Vec<_>>())
}

fn parse_error(line: &str) -> ErrorKind {
    let argv = std::iter::once("twitcherctl").chain(line.split_whitespace());
    Cli::try_parse_invocation(argv).expect_err(line).kind()
}

/// Connection settings: server, -u, -p, -t, -k.
fn cfg(
    server: &str,
    user: Option<&str>,
    password: Option<&str>,
    token: Option<&str>,
    insecure: bool,
) -> Config {
    Config {
        server: server.into(),
        username: user.map(Into::into),
        password: password.map(Into::into),
        token: token.map(Into::into),
        insecure,
        debug: false,
    }
}

fn plain(server: &str) -> Config {
    cfg(server, None, None, None, false)
}

fn insecure(server: &str) -> Config {
    cfg(server, None, None, None, true)
}

fn basic(server: &str, user: &str, password: &str, k: bool) -> Config {
    cfg(server, Some(user), Some(password), None, k)
}

fn bearer(server: &str, token: &str) -> Config {
    cfg(server, None, None, Some(token), true)
}

fn add(name: &str, redirect_uri: &str) -> Operation {
    Operation::AddClient {
        name: name.into(),
        redirect_uri: redirect_uri.into(),
    }
}

fn oauth(id: Option<&str>, secret: Option<&str>, scopes: &[&str], keycloak: bool) -> Operation {
    Operation::OAuthToken {
        client_id: id.map(Into::into),
        client_secret: secret.map(Into::into),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        keycloak,
    }
}

fn register(name: Option<&str>, url: &str) -> Operation {
    register_with(name, url, "wps", "", false, "token", true)
}

fn register_with(
    name: Option<&str>,
    url: &str,
    service_type: &str,
    purl: &str,
    public: bool,
    auth: &str,
    verify: bool,
) -> Operation {
    Operation::Register(Registration {
        name: name.map(Into::into),
        service: Service {
            name: String::new(),
            url: url.into(),
            service_type: service_type.into(),
            purl: purl.into(),
            public,
            auth: auth.into(),
            verify,
        },
    })
}

fn unregister(name: &str) -> Operation {
    Operation::Unregister(name.into())
}

fn check(line: &str, config: Config, operation: Operation) {
    let got = parse_line(line);
    assert_eq!(
        got,
        Invocation {
            config,
            json: false,
            operation
        },
        "{line}"
    );
}

#[test]
fn t05_command_lines() {
    // golden/v056 cases 30–39 and 89.
    let u = |o| (plain(T05), o);
    let table: Vec<(&str, (Config, Operation))> = vec![
        (
            "-s http://127.0.0.1:18056 gentoken",
            u(Operation::XmlRpcToken { valid_in_hours: 1 }),
        ),
        (
            "-s http://127.0.0.1:18056 gentoken -H 24",
            u(Operation::XmlRpcToken { valid_in_hours: 24 }),
        ),
        (
            "-s http://127.0.0.1:18056 register --name emu http://127.0.0.1:15056/wps",
            u(register(Some("emu"), "http://127.0.0.1:15056/wps")),
        ),
        (
            "-s http://127.0.0.1:18056 register --name emu_opts --type wps --purl https://example.org/emu \
             --public --auth cert --verify false http://127.0.0.1:15056/wps",
            u(register_with(
                Some("emu_opts"),
                "http://127.0.0.1:15056/wps",
                "wps",
                "https://example.org/emu",
                true,
                "cert",
                false,
            )),
        ),
        (
            "-s http://127.0.0.1:18056 register http://127.0.0.1:15056/wps",
            u(register(None, "http://127.0.0.1:15056/wps")),
        ),
        ("-s http://127.0.0.1:18056 list", u(Operation::List)),
        (
            "-s http://127.0.0.1:18056 revoke f9b76083b46b467d824cd9c7284e9e7f",
            u(Operation::Revoke("f9b76083b46b467d824cd9c7284e9e7f".into())),
        ),
        (
            "-s http://127.0.0.1:18056 revoke doesnotexist",
            u(Operation::Revoke("doesnotexist".into())),
        ),
        (
            "-s http://127.0.0.1:18056 revoke -A",
            u(Operation::RevokeAll),
        ),
        (
            "-s http://127.0.0.1:18056 unregister emu",
            u(unregister("emu")),
        ),
        (
            "-s http://127.0.0.1:18056 unregister nosuch",
            u(unregister("nosuch")),
        ),
        ("-s http://127.0.0.1:18056 clear", u(Operation::Clear)),
        ("-s http://127.0.0.1:18056", u(Operation::Nothing)),
        (
            "-s http://127.0.0.1:18056 register --name x http://127.0.0.1:15056/wps",
            u(register(Some("x"), "http://127.0.0.1:15056/wps")),
        ),
        (
            "-s http://127.0.0.1:1 list",
            (plain("http://127.0.0.1:1"), Operation::List),
        ),
        (
            "-s http://127.0.0.1:18056 -u admin -p wrong list",
            (basic(T05, "admin", "wrong", false), Operation::List),
        ),
        (
            "-s http://127.0.0.1:18056 -u admin -p s3cret list",
            (basic(T05, "admin", "s3cret", false), Operation::List),
        ),
    ];
    for (line, (config, operation)) in table {
        check(line, config, operation);
    }
}

#[test]
fn t05_help_and_usage_errors() {
    assert_eq!(parse_error("--help"), ErrorKind::DisplayHelp);
    assert_eq!(parse_error("gentoken --help"), ErrorKind::DisplayHelp);
    assert_eq!(
        parse_error("-s http://127.0.0.1:18056 --bogus list"),
        ErrorKind::UnknownArgument
    );
    // T05 sent revoke_token(None) and failed inside xmlrpc.client; we refuse it up front.
    assert_eq!(
        parse_error("-s http://127.0.0.1:18056 revoke"),
        ErrorKind::MissingRequiredArgument
    );
}

#[test]
fn t06_command_lines() {
    // golden/v060 cases 07–52 and 127–135 (client ids and secrets as recorded).
    const ID: &str = "a485d26840b74f8da12abd35977b1be3";
    const SECRET: &str = "f8b7b611a13b453f86ad39630fdc6242";
    let demo = |k| basic(T06, "demo", "demo", k);
    let table: Vec<(String, Config, Operation)> = vec![
        (
            format!("-s {T06} -u demo -p demo"),
            demo(false),
            Operation::Nothing,
        ),
        // Case 08: the tutorial's spelling, refused by 0.6.0, accepted here.
        (
            format!("-s {T06} -k add --username demo --password demo --name demo_app"),
            demo(true),
            add("demo_app", ""),
        ),
        (
            format!("-s {T06} -k --username demo --password demo add --name demo_app"),
            demo(true),
            add("demo_app", ""),
        ),
        (
            format!("-s {T06} -k gentoken -i {ID} -s {SECRET} --scope register"),
            insecure(T06),
            oauth(Some(ID), Some(SECRET), &["register"], false),
        ),
        // Case 11: `-t` did not exist in 0.6.0.
        (
            format!("-s {T06} -k -t TOKEN register --name emu http://localhost:15060/wps"),
            bearer(T06, "TOKEN"),
            register(Some("emu"), "http://localhost:15060/wps"),
        ),
        (
            format!(
                "-s {T06} -k --username demo --password demo register --name emu http://localhost:15060/wps"
            ),
            demo(true),
            register(Some("emu"), "http://localhost:15060/wps"),
        ),
        // Cases 13 and 15: 0.6.0 prompted for Username/Password; we do not.
        (format!("-s {T06} -k list"), insecure(T06), Operation::List),
        (
            format!("-s {T06} -k --username demo --password demo list"),
            demo(true),
            Operation::List,
        ),
        (
            format!("-s {T06} -k gentoken -i {ID} -s {SECRET} --scope compute"),
            insecure(T06),
            oauth(Some(ID), Some(SECRET), &["compute"], false),
        ),
        (
            format!(
                "-s {T06} -k -t TOKEN register --name emu --auth cert http://localhost:15060/wps"
            ),
            bearer(T06, "TOKEN"),
            register_with(
                Some("emu"),
                "http://localhost:15060/wps",
                "wps",
                "",
                false,
                "cert",
                true,
            ),
        ),
        (
            format!(
                "-s {T06} -k --username demo --password demo register --name emu --auth cert http://localhost:15060/wps"
            ),
            demo(true),
            register_with(
                Some("emu"),
                "http://localhost:15060/wps",
                "wps",
                "",
                false,
                "cert",
                true,
            ),
        ),
        (
            format!("-s {T06} -k -u demo -p demo register --name emu http://localhost:15060/wps"),
            demo(true),
            register(Some("emu"), "http://localhost:15060/wps"),
        ),
        (
            format!("-s {T06} -k -u demo -p nope list"),
            basic(T06, "demo", "nope", true),
            Operation::List,
        ),
        (
            format!("-s {T06} -u demo -p demo list"),
            demo(false),
            Operation::List,
        ),
        (
            format!("-s {T06} -k gentoken -i {ID} -s wrong"),
            insecure(T06),
            oauth(Some(ID), Some("wrong"), &["compute"], false),
        ),
        (
            format!("-s {T06} -k gentoken -i nobody -s wrong"),
            insecure(T06),
            oauth(Some("nobody"), Some("wrong"), &["compute"], false),
        ),
        (
            format!("-s {T06} -k gentoken -i {ID} -s {SECRET}"),
            insecure(T06),
            oauth(Some(ID), Some(SECRET), &["compute"], false),
        ),
        // Case 39: 0.6.0 asked for an OAuth client id; without -i/-s we ask XML-RPC.
        (
            format!("-s {T06} -k gentoken"),
            insecure(T06),
            Operation::XmlRpcToken { valid_in_hours: 1 },
        ),
        // Case 40: the id is asked for on a terminal.
        (
            format!("-s {T06} -k gentoken -s {SECRET}"),
            insecure(T06),
            oauth(None, Some(SECRET), &["compute"], false),
        ),
        (
            format!(
                "-s {T06} -k -u demo -p demo add --name app2 --redirect-uri http://localhost/app2"
            ),
            demo(true),
            add("app2", "http://localhost/app2"),
        ),
        (
            format!("-s {T06} -k -u demo -p demo add"),
            demo(true),
            add("", ""),
        ),
        (
            format!("-s {T06} -k -u demo -p x add --name x"),
            basic(T06, "demo", "x", true),
            add("x", ""),
        ),
        (
            format!(
                "-s {T06} -k -u demo -p demo register --name Opt-Service.1 --type wms --purl http://public.example/wms \
                 --auth public --verify false http://127.0.0.1:15160/h?x=1&y=2"
            ),
            demo(true),
            register_with(
                Some("Opt-Service.1"),
                "http://127.0.0.1:15160/h?x=1&y=2",
                "wms",
                "http://public.example/wms",
                false,
                "public",
                false,
            ),
        ),
        (
            format!("-s {T06} -k -u demo -p demo register --name ftpsvc ftp://host/x"),
            demo(true),
            register(Some("ftpsvc"), "ftp://host/x"),
        ),
        (
            format!("-s {T06} -k -u demo -p x register --name x1 http://127.0.0.1:15160/h"),
            basic(T06, "demo", "x", true),
            register(Some("x1"), "http://127.0.0.1:15160/h"),
        ),
        (
            format!("-s {T06} -k -u demo -p demo unregister boring_grouse"),
            demo(true),
            unregister("boring_grouse"),
        ),
        (
            format!("-s {T06} -k -u demo -p demo unregister doesnotexist"),
            demo(true),
            unregister("doesnotexist"),
        ),
        (
            "-s http://127.0.0.1:1 -k -u demo -p demo list".into(),
            basic("http://127.0.0.1:1", "demo", "demo", true),
            Operation::List,
        ),
        (
            "-s http://127.0.0.1:1 -k gentoken -i a -s b".into(),
            insecure("http://127.0.0.1:1"),
            oauth(Some("a"), Some("b"), &["compute"], false),
        ),
        (
            format!("-s {T06} -k -u demo -p demo clear"),
            demo(true),
            Operation::Clear,
        ),
    ];
    for (line, config, operation) in table {
        check(&line, config, operation);
    }
}

#[test]
fn t06_help_command_lines() {
    for line in [
        "-h",
        "add -h",
        "gentoken -h",
        "register -h",
        "list -h",
        "unregister -h",
    ] {
        assert_eq!(parse_error(line), ErrorKind::DisplayHelp, "{line}");
    }
}

#[test]
fn tutorial_as_written_and_as_run_at_071f38c() {
    // tutorial.md verbatim (default server) and golden/v060/transcripts/071f38c.
    let table: Vec<(String, Config, Operation)> = vec![
        (
            "-k add --username demo --password demo --name demo_app".into(),
            basic(LOCAL, "demo", "demo", true),
            add("demo_app", ""),
        ),
        (
            "-k gentoken -i client_id -s client_secret --scope register".into(),
            insecure(LOCAL),
            oauth(
                Some("client_id"),
                Some("client_secret"),
                &["register"],
                false,
            ),
        ),
        (
            "-k -t TOKEN register --name emu http://localhost:5000/wps".into(),
            bearer(LOCAL, "TOKEN"),
            register(Some("emu"), "http://localhost:5000/wps"),
        ),
        ("-k list".into(), insecure(LOCAL), Operation::List),
        (
            "-k gentoken -i client_id -s client_secret --scope compute".into(),
            insecure(LOCAL),
            oauth(
                Some("client_id"),
                Some("client_secret"),
                &["compute"],
                false,
            ),
        ),
        (
            "-k -t TOKEN register --name emu --auth cert http://localhost:5000/wps".into(),
            bearer(LOCAL, "TOKEN"),
            register_with(
                Some("emu"),
                "http://localhost:5000/wps",
                "wps",
                "",
                false,
                "cert",
                true,
            ),
        ),
        // 071f38c cases 16–20.
        (
            format!(
                "-s {T06} -k -t 8sD92SEESuHd3qALv5yolkzYYa7xz4 register --name other http://localhost:15060/wps"
            ),
            bearer(T06, "8sD92SEESuHd3qALv5yolkzYYa7xz4"),
            register(Some("other"), "http://localhost:15060/wps"),
        ),
        (
            format!("-s {T06} -k register --name other2 http://localhost:15060/wps"),
            insecure(T06),
            register(Some("other2"), "http://localhost:15060/wps"),
        ),
        (
            format!("-s {T06} -k --username demo --password demo add --name x"),
            basic(T06, "demo", "demo", true),
            add("x", ""),
        ),
        (
            format!("-s {T06} -k unregister emu"),
            insecure(T06),
            unregister("emu"),
        ),
        (
            format!("-s {T06} -k clear"),
            insecure(T06),
            Operation::Clear,
        ),
    ];
    for (line, config, operation) in table {
        check(&line, config, operation);
    }
}

#[test]
fn ctl_wire_command_lines() {
    // golden/v060/transcripts/ctl-wire 01–13.
    let demo = basic(WIRE, "demo", "demo", true);
    let prefix = format!("-s {WIRE} -k -u demo -p demo");
    let table: Vec<(String, Config, Operation)> = vec![
        (
            format!("{prefix} add --name demo_app"),
            demo.clone(),
            add("demo_app", ""),
        ),
        (format!("{prefix} add"), demo.clone(), add("", "")),
        (
            format!("-s {WIRE} -k gentoken -i CID -s CSECRET --scope compute"),
            insecure(WIRE),
            oauth(Some("CID"), Some("CSECRET"), &["compute"], false),
        ),
        (
            format!("-s {WIRE} -k gentoken -i CID -s CSECRET"),
            insecure(WIRE),
            oauth(Some("CID"), Some("CSECRET"), &["compute"], false),
        ),
        (
            format!("-s {WIRE} -k gentoken -i CID -s CSECRET --scope compute register"),
            insecure(WIRE),
            oauth(
                Some("CID"),
                Some("CSECRET"),
                &["compute", "register"],
                false,
            ),
        ),
        (
            format!("-s {WIRE} -k gentoken -i CID -s CSECRET --keycloak"),
            insecure(WIRE),
            oauth(Some("CID"), Some("CSECRET"), &["compute"], true),
        ),
        (format!("{prefix} list"), demo.clone(), Operation::List),
        (
            format!("{prefix} register --name emu http://localhost:5000/wps"),
            demo.clone(),
            register(Some("emu"), "http://localhost:5000/wps"),
        ),
        (
            format!(
                "{prefix} register --name x --type wms --purl http://p/wms --auth cert --verify false http://h/wms?a=1"
            ),
            demo.clone(),
            register_with(
                Some("x"),
                "http://h/wms?a=1",
                "wms",
                "http://p/wms",
                false,
                "cert",
                false,
            ),
        ),
        (
            format!("{prefix} register http://localhost:5000/wps"),
            demo.clone(),
            register(None, "http://localhost:5000/wps"),
        ),
        (
            format!("{prefix} unregister emu"),
            demo.clone(),
            unregister("emu"),
        ),
        (format!("{prefix} clear"), demo.clone(), Operation::Clear),
    ];
    for (line, config, operation) in table {
        check(&line, config, operation);
    }
    // Case 02 has arguments with spaces and '?'.
    let got = parse(&[
        "-s",
        WIRE,
        "-k",
        "-u",
        "demo",
        "-p",
        "demo",
        "add",
        "--name",
        "a b",
        "--redirect-uri",
        "http://x/cb?q=1",
    ]);
    assert_eq!(got.operation, add("a b", "http://x/cb?q=1"));
}

#[test]
fn short_and_long_spellings_agree() {
    let pairs = [
        (
            "-s http://h:1 -u a -p b -k -t T list",
            "--serverurl http://h:1 --username a --password b --insecure --token T list",
        ),
        (
            "add -n app -r http://cb",
            "add --name app --redirect-uri http://cb",
        ),
        ("gentoken -H 5", "gentoken --valid-in-hours 5"),
        (
            "gentoken -i a -s b -S compute register -K",
            "gentoken --client-id a --client-secret b --scope compute register --keycloak",
        ),
        ("revoke -A", "revoke --all"),
    ];
    for (short, long) in pairs {
        assert_eq!(parse_line(short), parse_line(long), "{short} / {long}");
    }
}

#[test]
fn global_options_may_follow_the_command() {
    let before = parse_line("--debug --json -k -u a -p b -t T list");
    let after = parse_line("list --debug --json -k -u a -p b -t T");
    assert_eq!(before, after);
    assert!(after.json && after.config.debug && after.config.insecure);
}

#[test]
fn s_is_the_server_before_gentoken_and_the_secret_inside() {
    let got = parse_line("-s https://example.org gentoken -i ID -s SECRET");
    assert_eq!(got.config.server, "https://example.org");
    assert_eq!(
        got.operation,
        oauth(Some("ID"), Some("SECRET"), &["compute"], false)
    );
}

#[test]
fn usage_errors() {
    for (line, kind) in [
        ("--bogus list", ErrorKind::UnknownArgument),
        ("frobnicate", ErrorKind::InvalidSubcommand),
        ("revoke", ErrorKind::MissingRequiredArgument),
        ("revoke T -A", ErrorKind::ArgumentConflict),
        ("gentoken -H 2 -i ID", ErrorKind::ArgumentConflict),
        ("gentoken -H many", ErrorKind::ValueValidation),
        ("register", ErrorKind::MissingRequiredArgument),
        (
            "register --verify maybe http://h/wps",
            ErrorKind::ValueValidation,
        ),
        ("unregister", ErrorKind::MissingRequiredArgument),
        ("completion tcsh", ErrorKind::InvalidValue),
    ] {
        assert_eq!(parse_error(line), kind, "{line}");
    }
}
