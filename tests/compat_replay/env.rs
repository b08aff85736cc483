//! The environment a case is replayed in: a twitcher, the stub backends behind it, the
//! address mapping between the recording and the stubs, and the learnt dynamic values.

use std::sync::Mutex;

use twitcher::store::Service;

use crate::Res;
use crate::bytes::{find, replace_bytes};
use crate::common::TestApp;
use crate::compare::is_reserialized_caps;
use crate::group::Family;
use crate::stub::{Answer, Canned, Stub};
use crate::transcript::Exchange;
use crate::wire::Message;
use crate::xml::root_name;

/// Emu's own answers, recorded directly (not through twitcher).
#[derive(Default)]
pub struct Direct {
    /// GetCapabilities.
    pub caps: Option<Canned>,
    /// DescribeProcess.
    pub describe: Option<Canned>,
    /// Execute by GET.
    pub execute: Option<Canned>,
    /// Execute by POST (T06 only; T05 answers with `execute`).
    pub execute_post: Option<Canned>,
}

/// A twitcher with its stub backends, replaying one family's cases in order.
pub struct Env {
    /// The family whose expectations apply.
    pub family: Family,
    /// twitcher, with its store for setting up state.
    pub app: TestApp,
    /// `127.0.0.1:PORT` of twitcher.
    pub addr: String,
    /// The Emu backend.
    pub emu: Stub,
    /// The probe (T05) or helper (T06) backend.
    pub aux: Stub,
    /// Recorded addresses → the stubs' addresses.
    pub mapping: Vec<(String, String)>,
    /// The services registered (stub URLs).
    pub services: Vec<Service>,
    /// Emu's direct answers.
    pub direct: Direct,
    /// Recorded dynamic values (client ids, secrets, tokens) → ours, learnt while replaying.
    learnt: Mutex<Vec<(String, String)>>,
}

impl Env {
    /// An environment without services, Emu answers or learnt values yet.
    pub fn new(
        family: Family,
        app: TestApp,
        addr: String,
        emu: Stub,
        aux: Stub,
        mapping: Vec<(String, String)>,
    ) -> Env {
        Env {
            family,
            app,
            addr,
            emu,
            aux,
            mapping,
            services: Vec::new(),
            direct: Direct::default(),
            learnt: Mutex::default(),
        }
    }

    /// A recorded text with the stubs' addresses and the learnt values put in.
    pub fn map(&self, s: &str) -> String {
        self.mapping
            .iter()
            .chain(self.learnt().iter())
            .fold(s.to_string(), |s, (from, to)| s.replace(from.as_str(), to))
    }

    /// `map` of bytes.
    pub fn map_bytes(&self, data: &[u8]) -> Vec<u8> {
        self.mapping
            .iter()
            .chain(self.learnt().iter())
            .fold(data.to_vec(), |d, (from, to)| {
                replace_bytes(&d, from.as_bytes(), to.as_bytes())
            })
    }

    /// The pairs learnt so far (recorded → ours).
    pub fn learnt(&self) -> Vec<(String, String)> {
        self.learnt
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Adds pairs (recorded → ours); a recorded value keeps the first pair learnt for it.
    pub fn learn(&self, pairs: Vec<(String, String)>) {
        let mut learnt = self.learnt.lock().unwrap_or_else(|e| e.into_inner());
        for (recorded, ours) in pairs {
            if recorded != ours && !learnt.iter().any(|(r, _)| *r == recorded) {
                learnt.push((recorded, ours));
            }
        }
    }

    /// A recorded response as a backend answer (status, Content-Type, body).
    pub fn canned(&self, response: &Message) -> Canned {
        let mut canned = Canned::new(
            response.status(),
            response.content_type(),
            self.map_bytes(&response.body),
        );
        if let Some((_, reason)) = response
            .start
            .split_once(' ')
            .and_then(|(_, r)| r.split_once(' '))
        {
            canned.reason = reason.to_string();
        }
        canned
    }

    /// The registered service a `/ows/proxy/<name>` target names.
    pub fn service_of(&self, target: &str) -> Option<&Service> {
        let rest = target.split('?').next()?.strip_prefix("/ows/proxy/")?;
        let name = rest.split('/').next()?;
        self.services.iter().find(|s| s.name == name)
    }

    /// Re-registers a service with another `auth` (the tutorial's switch to `cert`).
    pub async fn set_auth(&self, name: &str, auth: &str) -> Res<()> {
        let Some(service) = self.services.iter().find(|s| s.name == name) else {
            return Ok(());
        };
        let service = Service {
            auth: auth.into(),
            ..service.clone()
        };
        self.app
            .store
            .save_service(&service)
            .await
            .map_err(|e| e.to_string())
    }

    /// Stores every service of `services`.
    pub async fn register_all(&self) -> Res<()> {
        for service in &self.services {
            self.app
                .store
                .save_service(service)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// Emu's answer to a POST body that is not XML (the shape pywps gives its reports).
const EMU_POST_NOT_XML: &str = concat!(
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
    "<ows:ExceptionReport xmlns:ows=\"http://www.opengis.net/ows/1.1\" version=\"1.0.0\">\n",
    "  <ows:Exception exceptionCode=\"NoApplicableCode\" locator=\"\">\n",
    "    <ows:ExceptionText>Failed to parse the request body as XML</ows:ExceptionText>\n",
    "  </ows:Exception>\n",
    "</ows:ExceptionReport>"
);

/// What the Emu stub answers to one exchange: the recorded answer when the original passed
/// Emu's answer through unchanged, else Emu's direct answer to that kind of request.
pub fn emu_answer(env: &Env, ex: &Exchange) -> Option<Answer> {
    let response = &ex.response;
    if !is_twitchers_own(response) && !is_reserialized_caps(response) {
        return Some(Answer::Canned(env.canned(response)));
    }
    if ex.method == "POST" && root_name(&ex.body).is_none() {
        // pywps reads POST bodies as XML only: a form-encoded request gets its exception
        // report (twitcher forwards such bodies, D-FORM-POST).
        return Some(Answer::Canned(Canned::new(
            400,
            Some("text/xml; charset=utf-8"),
            EMU_POST_NOT_XML,
        )));
    }
    let kind = if ex.method == "POST" {
        root_name(&ex.body).map(|n| n.to_ascii_lowercase())
    } else {
        let query = ex
            .target
            .split_once('?')
            .map(|(_, q)| q)
            .unwrap_or_default();
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k.eq_ignore_ascii_case("request"))
            .map(|(_, v)| v.to_ascii_lowercase())
    };
    let direct = &env.direct;
    let canned = match kind.as_deref() {
        Some("getcapabilities") => direct.caps.clone(),
        Some("describeprocess") => direct.describe.clone(),
        Some("execute") if ex.method == "POST" => direct
            .execute_post
            .clone()
            .or_else(|| direct.execute.clone()),
        Some("execute") => direct.execute.clone(),
        _ => None,
    };
    canned.map(Answer::Canned)
}

/// A response twitcher made itself (report, error page), not a backend's.
fn is_twitchers_own(response: &Message) -> bool {
    let ct = response.content_type().unwrap_or_default();
    response.body.starts_with(
        b"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<ExceptionReport version=\"1.0.0\"\n",
    ) || ct.starts_with("text/html")
        || (ct.starts_with("text/plain") && find(&response.body, b"waitress").is_some())
        || (response.body.is_empty() && response.status() >= 400)
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// twitcher with this `twitcher.url` and management user (`(username, password)`).
pub async fn start_app(url: &str, management: Option<(&str, &str)>) -> Res<(TestApp, String)> {
    let url = url::Url::parse(url).map_err(|e| e.to_string())?;
    let management = management.map(|(u, p)| (u.to_string(), p.to_string()));
    let app = TestApp::start_with(move |c| {
        c.url = url;
        if let Some((username, password)) = management {
            c.username = Some(username);
            c.password = Some(password);
        }
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_string();
    Ok((app, addr))
}

/// twitcher with an empty store, no stubs behind it and no address mapping: the management
/// cases, which start from what the recording's earlier steps left (`prepare`).
pub async fn plain_env(family: Family, url: &str, management: Option<(&str, &str)>) -> Res<Env> {
    let (app, addr) = start_app(url, management).await?;
    let (emu, aux) = (Stub::start().await?, Stub::start().await?);
    Ok(Env::new(family, app, addr, emu, aux, Vec::new()))
}
