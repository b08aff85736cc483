//! The real `twitcher` binary as a child process, for what only a process shows: signals,
//! exit status, open files and memory (Linux `/proc`).

use std::io::BufRead;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `twitcher serve` on `127.0.0.1:0` with a SQLite database in a temporary
/// directory; killed (by its own handle) when dropped.
pub struct Process {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Process {
    /// Starts the binary with these extra `[app:main]` and `[server:main]` lines and waits
    /// for its "serving on" log line (written once the socket is bound).
    pub fn start(app: &str, server: &str) -> Process {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("twitcher.ini");
        std::fs::write(
            &config,
            format!(
                "[app:main]\nsqlalchemy.url = sqlite:///%(here)s/tw.sqlite\n{app}\n\n[server:main]\nhost = 127.0.0.1\nport = 0\n{server}\n"
            ),
        )
        .expect("write config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_twitcher"))
            .arg("serve")
            .arg(&config)
            .current_dir(dir.path())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
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
        // Keep reading the log so the child never blocks on a full pipe.
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                kept.lock().unwrap().push(line);
            }
        });
        let addr = base.trim_start_matches("http://").to_string();
        Process {
            child,
            base,
            addr,
            log,
            _dir: dir,
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("pid");
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
    }

    /// The exit status, when the process ends within `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + within;
        while Instant::now() < until {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Sockets the process has open (the listener and every connection; files such as
    /// the database's come and go on their own).
    pub fn open_sockets(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .expect("/proc/PID/fd")
            .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
            .filter(|target| target.to_string_lossy().starts_with("socket:"))
            .count()
    }

    /// Polls until the process has `n` sockets open; false if it does not within `within`.
    pub fn wait_open_sockets(&self, n: usize, within: Duration) -> bool {
        let until = Instant::now() + within;
        while Instant::now() < until {
            if self.open_sockets() == n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The most resident memory the process has used so far, in KiB (`VmHWM`).
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM")
    }

    /// The log lines written after "serving on".
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Registers a public service through the REST registry.
    pub async fn register(&self, name: &str, url: &str, kind: &str) {
        let response = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .post(format!("{}/services", self.base))
            .json(&serde_json::json!({"name": name, "url": url, "type": kind, "public": true}))
            .send()
            .await
            .expect("POST /services");
        assert!(
            response.status().is_success(),
            "register {name}: {}",
            response.status()
        );
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
