//! The `twitcher` binary's start: broken configs stop it with one line naming file and key
//! (exit status 2) before anything is opened or bound.

use std::process::Command;

fn run(args: &[&str], dir: &std::path::Path) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_twitcher"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run twitcher");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn config(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("twitcher.ini");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn broken_configs_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[app:main]\ntwitcher.ows_security = maybe\n",
            "twitcher.ows_security: \"maybe\" is not a boolean",
        ),
        (
            "[app:main]\n[server:main]\nport = http\n",
            "[server:main] port: \"http\" is not a port number",
        ),
        (
            "[app:main]\ntwitcher.token.type = custom_token\n",
            "twitcher.token.secret: required for custom_token",
        ),
        (
            "[app:main]\n[server:main]\nhttps_listen = 127.0.0.1:8443\ncertfile = c.pem\nkeyfile = k.pem\n",
            "[server:main] certfile: ",
        ),
        (
            "[server:main]\nport = 8000\n",
            "[app:main]: section missing",
        ),
    ];
    for (text, expected) in cases {
        let path = config(&dir, text);
        let (code, stderr) = run(&["serve", &path], dir.path());
        assert_eq!(code, 2, "{text:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(
            stderr.starts_with(&format!("twitcher: {path}: ")),
            "names the file: {stderr}"
        );
        assert!(stderr.contains(expected), "{expected:?} in {stderr}");
        assert!(
            !dir.path().join("twitcher.sqlite").exists(),
            "nothing opened for {text:?}"
        );
    }
    let (code, stderr) = run(&["serve", "/nonexistent/twitcher.ini"], dir.path());
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot read the file"), "{stderr}");
}

#[test]
fn initdb_creates_the_database_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let path = config(
        &dir,
        "[app:main]\nsqlalchemy.url = sqlite:///%(here)s/tw.sqlite\n",
    );
    let output = Command::new(env!("CARGO_BIN_EXE_twitcher"))
        .args(["initdb", &path])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(dir.path().join("tw.sqlite").exists());
    assert!(String::from_utf8_lossy(&output.stdout).contains("tw.sqlite is ready"));
}

#[test]
fn usage_errors_are_claps() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = run(&["serve", "--bogus"], dir.path());
    assert_eq!(code, 2);
    assert!(stderr.contains("Usage"), "{stderr}");
}

/// A running `twitcher serve` child: killed (by its own handle) when dropped.
struct Server {
    child: std::process::Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `twitcher serve CONFIG` and waits for its "serving on" log line (no sleeps:
/// the line is written once the socket is bound).
fn serve(config: &str, dir: &std::path::Path) -> Server {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_twitcher"))
        .args(["serve", config])
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start twitcher");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = std::io::BufReader::new(stderr).lines();
    let base = loop {
        let Some(Ok(line)) = lines.next() else {
            let status = child.wait().expect("wait");
            panic!("twitcher stopped ({status}) before serving");
        };
        if let Some((_, addr)) = line.split_once("serving on ") {
            break addr.trim().to_string();
        }
    };
    // Keep draining the log so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Server { child, base }
}

/// `GET path` over a plain socket; returns the raw response.
fn http_get(base: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).expect("read");
    out
}

#[test]
fn twitcher_url_without_a_scheme_starts_the_server_as_http() {
    // The original took `twitcher.url = localhost` as it was; it means http://localhost.
    for (url, base) in [
        ("localhost", "http://localhost"),
        ("localhost:8000", "http://localhost:8000"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = config(
            &dir,
            &format!(
                "[app:main]\nsqlalchemy.url = sqlite:///%(here)s/tw.sqlite\ntwitcher.url = {url}\n\n[server:main]\nhost = 127.0.0.1\nport = 0\n"
            ),
        );
        let server = serve(&path, dir.path());
        let response = http_get(&server.base, "/");
        assert!(response.starts_with("HTTP/1.1 200"), "{url}: {response}");
        assert!(
            response.contains(&format!(
                r#""information_uri": "{base}/info", "versions_uri": "{base}/versions""#
            )),
            "{url}: {response}"
        );
    }
}
